"""Fetching sources into the download cache: local copies first, then mirrors and upstream; nothing unverified.

Cache layout (cache_dir):
  files/<file>          verified files only
  tmp/<file>.part       downloads in progress; scratch space for tree hashes
  locks/<file>.lock     flock per entry, so builds sharing the cache never download or rename the same entry at once
  verified/<file>.json  what a file was proved to be: its SHA-256, tree hash and URL, so a cached archive is not
                        unpacked again on every fetch just to recompute its tree hash
  rejected/<file>.<sha> files that failed verification, kept for inspection and never used
"""
import contextlib
import errno
import fcntl
import importlib
import os
import posixpath
import re
import socket
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import requests
import urllib3

from mkdump import stamp
from mkdump.errors import MkdumpError, NoSpace
from mkdump.logs import log_default
from mkdump.sources import check_file_name, glob_candidates, mirror_url
from mkdump.unidiff import PatchFormatError, parse_patch, strip_name
from mkdump.unpack import ArchiveError, tree_sha256_of_archive, unpacked

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Fetched:
    name: str                   # the source's name in the manifest
    file: str                   # the file name actually used (an alternative's, for a tree-pinned source)
    path: str                   # where the verified file is
    sha256: str
    tree_sha256: str | None     # the proved tree hash, for a tree-pinned source
    url: str | None             # where it was downloaded from, when known
    origin: str                 # "sources", "cache" or "download"


# The archives checked before trust on first use: the module whose missing_parts(tree) names what an unpacked one
# lacks, and how messages call such an archive.
_ARCHIVE_KINDS = {"mkexec-archive": ("mkdump.mkexec", "an mkexec archive"),
                  "mkdutils-archive": ("mkdump.mkdutils", "an mkdutils archive")}


class _Mismatch(Exception):
    """A file that is not the one the manifest or the lock file asks for."""

    def __init__(self, reason, sha256):
        super().__init__(reason)
        self.sha256 = sha256


class _UrlFailed(Exception):
    """A URL that gave no file; the fetcher goes on to the next one."""


class _Retry(Exception):
    """A transient failure worth another attempt at the same URL."""


class _Progress:
    """A progress bar redrawn in place on a terminal; silent otherwise (the caller logs plain lines)."""

    def __init__(self, stream, name, have, total):
        self.stream = stream if stream is not None and stream.isatty() else None
        self.name, self.have, self.total = name, have, total
        self.shown = 0.0

    def update(self, n):
        self.have += n
        now = time.monotonic()
        if self.stream is not None and now - self.shown >= 0.1:
            self.shown = now
            self._draw()

    def _draw(self):
        mb = self.have / 1e6
        if self.total:
            done = min(self.have / self.total, 1.0)
            bar = "#" * int(done * 30)
            text = f"\r  {self.name} [{bar:<30}] {mb:.1f}/{self.total / 1e6:.1f} MB {done * 100:3.0f}%"
        else:
            text = f"\r  {self.name} {mb:.1f} MB"
        self.stream.write(text)
        self.stream.flush()

    def close(self):
        if self.stream is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


class Fetcher:
    """Finds, downloads and verifies sources. See the module docstring for the cache layout.

    sources_dirs: read-only directories of pre-downloaded files, looked in first and never written; for a
        tree-pinned source with a sources_glob, archives under other names there are tried too (_local_names).
    mirrors: base URLs tried (base/<file>) before a source's own URLs.
    offline: never touch the network.
    lock: the LockFile for trust on first use of files without a pin.
    log: a callable taking one line; progress bars go to `progress` (default stderr) when it is a terminal.
    session: a requests.Session-like object (tests inject one); retries/backoff/timeout: per URL, seconds.
    """

    def __init__(self, cache_dir, *, sources_dirs=(), mirrors=(), offline=False, lock=None, log=None,
                 session=None, retries=4, backoff=1.0, timeout=30, progress=None):
        self.cache_dir = os.path.abspath(os.fspath(cache_dir))
        self.sources_dirs = tuple(os.path.abspath(os.fspath(d)) for d in sources_dirs)
        for d in self.sources_dirs:
            if not os.path.isdir(d):
                raise MkdumpError(f"sources={d} is not a directory; give a directory that holds downloaded "
                                  "source files.")
        self.mirrors = tuple(mirror_url(base) for base in mirrors)
        self.offline = offline
        self.lock = lock
        self.log = log_default if log is None else log
        self._session = session
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.progress = sys.stderr if progress is None else progress

    def _dir(self, name):
        path = os.path.join(self.cache_dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def session(self):
        if self._session is None:
            self._session = requests.Session()
        return self._session

    # -- lookup ------------------------------------------------------------------------------------------------

    def fetch(self, source):
        """Return a Fetched for `source`, from a sources dir, the cache or the network, verified.

        Raises MkdumpError when no location yields a file that verifies, listing each one tried and why.
        """
        for name in source.names:
            check_file_name(name, f"source [{source.name}]")
        failures = []
        for directory in self.sources_dirs:
            for name in self._local_names(source, directory):
                path = os.path.join(directory, name)
                try:
                    sha, tree = self._verify(source, name, path)
                except _Mismatch as e:
                    failures.append(f"{path}: {e}")
                    self.log(f"WARNING: not using {path}: {e}")
                    continue
                if name not in source.names:
                    self.log(f"Using {path} for source [{source.name}]: its unpacked tree has the pinned hash")
                self._trust(source, name, sha, path)
                self._record(name, sha, tree, None)
                return Fetched(source.name, name, path, sha, tree, None, "sources")
        for name in source.names:
            if os.path.exists(os.path.join(self.cache_dir, "files", name)):
                with self._entry_lock(name):
                    found = self._from_cache(source, name, failures)
                if found:
                    return found
        if self.offline:
            raise MkdumpError(self._offline_message(source, failures))
        for name, url in self._candidates(source):
            with self._entry_lock(name):
                # Another build sharing the cache may have fetched it while this one waited for the lock.
                found = self._from_cache(source, name, failures)
                if found:
                    return found
                try:
                    part = self._download(name, url, source.max_bytes)
                except _UrlFailed as e:
                    failures.append(f"{url}: {e}")
                    self.log(f"  {name}: {url}: {e}")
                    continue
                try:
                    sha, tree = self._verify(source, name, part)
                except _Mismatch as e:
                    kept = self._reject(part, name, e.sha256)
                    failures.append(f"{url}: {e} (kept in {kept})")
                    self.log(f"WARNING: {url}: {e}; the file is kept in {kept} and will not be used.")
                    continue
                except BaseException:
                    # No verdict (interrupted, or the machine at fault): an unjudged download is neither kept
                    # nor set aside, and the next fetch starts it afresh anyway.
                    os.unlink(part)
                    raise
                path = os.path.join(self._dir("files"), name)
                os.replace(part, path)
                self._trust(source, name, sha, url)
                self._record(name, sha, tree, url)
                return Fetched(source.name, name, path, sha, tree, url, "download")
        raise MkdumpError(f"could not fetch {source.file} for source [{source.name}]: " + "; ".join(failures)
                          + ". Check the network and any mirror= URLs, or put the file in a sources= directory.")

    def _local_names(self, source, directory):
        """The files of a sources= directory worth verifying for `source`: its listed names, then (a tree-pinned
        source only, and only if none of those verified) the archives its sources_glob matches, so a packager's
        renamed or recompressed tarball needs no renaming. Lazy: the directory is listed only when needed."""
        yield from (n for n in source.names if os.path.isfile(os.path.join(directory, n)))
        try:
            listing = os.listdir(directory)
        except OSError as e:
            raise MkdumpError(f"cannot list sources={directory} ({e.strerror}); fix its permissions.") from None
        found = [n for n in glob_candidates(source, listing) if os.path.isfile(os.path.join(directory, n))]
        if found:
            self.log(f"No listed file for source [{source.name}] in {directory} was usable; trying "
                     f"{', '.join(found)} (named like {source.sources_glob}), each unpacked once to compare its "
                     "tree hash with the pin")
        yield from found

    def _candidates(self, source):
        seen = set()
        pairs = [(name, base + "/" + quote(name)) for base in self.mirrors for name in source.names]
        for url in source.urls:
            # An upstream URL for another compression stores the file under that name, if it is one we accept.
            base = unquote(posixpath.basename(urlsplit(url).path))
            pairs.append((base if base in source.names else source.file, url))
        for name, url in pairs:
            if url not in seen:
                seen.add(url)
                yield name, url

    def _offline_message(self, source, failures):
        others = list(source.names[1:])
        if source.tree_sha256 and source.sources_glob:
            others.append(f"or in a sources= directory any archive named like {source.sources_glob}")
        names = source.file + (f" (or {', '.join(others)})" if others else "")
        where = ", ".join(self.sources_dirs) or "none given"
        message = (f"{names} for source [{source.name}] is not in the download cache "
                   f"({os.path.join(self.cache_dir, 'files', source.file)}) or in any sources= directory ({where}), "
                   "and offline=1 forbids downloading it: run `scons fetch` online first, or put the file in a "
                   "sources= directory")
        if failures:
            message += "; files found but refused: " + "; ".join(failures)
        return message + "."

    @contextlib.contextmanager
    def _entry_lock(self, name):
        fd = os.open(os.path.join(self._dir("locks"), name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log(f"Waiting for another build to finish fetching {name}")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _from_cache(self, source, name, failures):
        """The verified cache entry, or None. Call with the entry lock held: a bad entry is moved aside."""
        path = os.path.join(self.cache_dir, "files", name)
        if not os.path.isfile(path):
            return None
        try:
            sha, tree = self._verify(source, name, path)
        except _Mismatch as e:
            kept = self._reject(path, name, e.sha256)
            failures.append(f"{path}: {e} (moved to {kept})")
            self.log(f"WARNING: the cached {path} failed verification: {e}; moved to {kept}.")
            return None
        self._trust(source, name, sha, path)
        url = self._record(name, sha, tree, None)
        return Fetched(source.name, name, path, sha, tree, url, "cache")

    # -- verification ------------------------------------------------------------------------------------------

    def _verify(self, source, name, path):
        """(sha256, tree hash or None) of a file that is the one asked for; raises _Mismatch otherwise."""
        try:
            sha = stamp.sha256_file(path)
        except OSError as e:
            raise MkdumpError(f"cannot read {path} ({e.strerror}); fix its permissions or remove it.") from None
        if source.sha256 and name == source.file and sha != source.sha256:
            raise _Mismatch(f"SHA-256 is {sha}, expected {source.sha256}", sha)
        tree = None
        if source.tree_sha256:
            tree = self._tree_hash(name, path, sha)
            if tree != source.tree_sha256:
                raise _Mismatch(f"its unpacked tree hashes to {tree}, expected {source.tree_sha256}", sha)
        elif not source.sha256:
            recorded = self.lock.get(name) if self.lock is not None else None
            if recorded is None:
                self._check_kind(source, path, sha)
            elif recorded != sha:
                raise _Mismatch(f"SHA-256 is {sha}, but {self.lock.path} records {recorded} from its first use",
                                sha)
        return sha, tree

    def _check_kind(self, source, path, sha):
        """Before trust on first use: a file must at least be what its source's kind says, or an error page that
        came first (with status 200 and no HTML type) would be recorded, and the genuine file refused forever."""
        if source.kind == "patch":
            why = _not_a_kernel_patch(path)
            if why:
                raise _Mismatch(f"it is not a kernel patch ({why})", sha)
        elif source.kind in _ARCHIVE_KINDS:
            module, what = _ARCHIVE_KINDS[source.kind]
            self.log(f"Unpacking {path} to check that it is {what}")
            try:
                with unpacked(path, self._dir("tmp")) as (tree, _):
                    missing = importlib.import_module(module).missing_parts(tree)
            except ArchiveError as e:
                raise _Mismatch(f"it cannot be unpacked ({e})", sha) from None
            except NoSpace as e:
                raise self._no_space_to_unpack(path, e) from None
            if missing:
                listed = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
                raise _Mismatch(f"it is not {what} (it lacks {listed})", sha)

    def _tree_hash(self, name, path, sha):
        known = self._read_record(name)
        if known.get("sha256") == sha and known.get("tree_sha256"):
            return known["tree_sha256"]
        self.log(f"Unpacking {path} to check its tree hash")
        # Only a fault of the archive is a verdict on it; a full disk or permissions propagate and leave it alone.
        try:
            return tree_sha256_of_archive(path, self._dir("tmp"))
        except ArchiveError as e:
            raise _Mismatch(f"it cannot be unpacked ({e})", sha) from None
        except NoSpace as e:
            raise self._no_space_to_unpack(path, e) from None

    def _no_space_to_unpack(self, path, e):
        # The scratch tree is gone by now: name the cache it was in.
        return MkdumpError(f"cannot unpack {path} in the download cache {self.cache_dir} to check it ({e.reason}); "
                           "free some space there (or give another cache=) and run again.")

    def _trust(self, source, name, sha, where):
        """Trust on first use for a file without a pin: record its hash, loudly."""
        if source.sha256 or source.tree_sha256:
            return
        if self.lock is None:
            self.log(f"WARNING: {name} has no pinned hash and no lock file is in use, so it is NOT verified "
                     f"(SHA-256 {sha}, from {where}).")
            return
        if self.lock.get(name) is None:
            self.lock.record(name, sha)
            self.log(f"WARNING: {name} has no published checksum; it was TRUSTED ON FIRST USE (from {where}) and "
                     f"its SHA-256 {sha} is now recorded in {self.lock.path}. Commit that file: every later fetch "
                     "must match it.")

    def _read_record(self, name):
        try:
            return stamp.read(os.path.join(self.cache_dir, "verified", name + ".json"))
        except (OSError, ValueError):
            return {}

    def _record(self, name, sha, tree, url):
        """Remember what `name` was proved to be; returns the URL it came from, when known."""
        old = self._read_record(name)
        if url is None and old.get("sha256") == sha:
            url = old.get("url")
        new = {"sha256": sha, "tree_sha256": tree, "url": url}
        if new != old:
            stamp.write(os.path.join(self._dir("verified"), name + ".json"), new)
        return url

    def _reject(self, path, name, sha):
        kept = os.path.join(self._dir("rejected"), f"{name}.{sha[:16]}")
        os.replace(path, kept)
        return kept

    # -- download ----------------------------------------------------------------------------------------------

    def _download(self, name, url, limit):
        """Download `url` completely into tmp/<name>.part and return that path; raises _UrlFailed, also for a
        body over `limit` bytes (a broken or hostile server could otherwise fill the disk)."""
        part = os.path.join(self._dir("tmp"), name + ".part")
        # A leftover .part may be from an interrupted run against another URL: resuming it could splice two
        # different files, which trust on first use would then record. Resume only within this attempt.
        if os.path.exists(part):
            os.unlink(part)
        self.log(f"Downloading {name} from {url}")
        try:
            self._attempts(name, url, part, limit)
        except BaseException:
            # Whatever stopped it, a partial download is of no use to anyone (see above).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            raise
        self.log(f"  {name}: {os.path.getsize(part)} bytes")
        return part

    def _attempts(self, name, url, part, limit):
        failures = 0
        validator = []      # the ETag or Last-Modified of the first answer, for If-Range on resumes
        while True:
            have = os.path.getsize(part) if os.path.exists(part) else 0
            try:
                self._get(name, url, part, have, validator, limit)
                return
            except _Retry as e:
                reason = str(e)
            except requests.exceptions.SSLError as e:
                raise _UrlFailed(f"TLS error ({e})") from None
            except (requests.ConnectionError, requests.Timeout) as e:
                if _host_unknown(e):
                    # Not a passing fault: waiting and asking again only delays the next URL (offline machines).
                    raise _UrlFailed(_describe(e)) from None
                reason = _describe(e)
            except requests.RequestException as e:
                raise _UrlFailed(f"{type(e).__name__}: {e}") from None
            grew = os.path.exists(part) and os.path.getsize(part) > have
            # A connection that keeps dropping but makes progress each time is worth following to the end.
            failures = 1 if grew else failures + 1
            if failures > self.retries:
                raise _UrlFailed(f"gave up after {self.retries + 1} attempts, last: {reason}")
            delay = self.backoff * 2 ** (failures - 1)
            self.log(f"  {name}: {reason}; retrying in {delay:g} s")
            time.sleep(delay)

    def _get(self, name, url, part, have, validator, limit):
        """One request, appending to `part` from byte `have` when the server allows it.

        Raises _Retry for transient trouble, _UrlFailed for a refusal; requests' own exceptions pass through.
        """
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator[0]
        # SourceForge's /download form and its download host answer with redirects to a mirror.
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout, allow_redirects=True) as r:
            if r.status_code >= 500:
                raise _Retry(f"HTTP {r.status_code}")
            if r.status_code == 206 and have:
                m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", r.headers.get("Content-Range", "").strip())
                if not m or int(m[1]) != have:
                    os.unlink(part)
                    raise _Retry(f"the server resumed at the wrong place ({r.headers.get('Content-Range')})")
                mode = "ab"
                total = int(m[3]) if m[3] != "*" else None
            elif r.status_code == 200:
                # Also what a server that ignores Range (or whose file changed, per If-Range) answers.
                mode, have = "wb", 0
                length = r.headers.get("Content-Length", "")
                total = int(length) if length.isdigit() else None
                etag = r.headers.get("ETag")
                validator[:] = [v for v in (etag if etag and not etag.startswith("W/") else
                                            r.headers.get("Last-Modified"),) if v]
            else:
                raise _UrlFailed(f"HTTP {r.status_code}")
            if total is not None and total > limit:
                raise _UrlFailed(f"it announces {total} bytes, more than the source's max_bytes ({limit}) in "
                                 "sources.toml")
            # Download sites answer some failures with a web page and status 200; for a file without a pin,
            # trust on first use would otherwise record that page as the genuine file.
            if (r.headers.get("Content-Type", "").lower().startswith("text/html")
                    and not name.lower().endswith((".html", ".htm"))):
                raise _UrlFailed("the server sent a web page instead of the file")
            progress = _Progress(self.progress, name, have, total)
            try:
                with open(part, mode) as f:
                    # raw, not iter_content: a .tar.gz served with Content-Encoding: gzip must stay compressed.
                    for chunk in r.raw.stream(_CHUNK, decode_content=False):
                        if progress.have + len(chunk) > limit:
                            raise _UrlFailed(f"it sent more than the source's max_bytes ({limit}) in sources.toml")
                        f.write(chunk)
                        progress.update(len(chunk))
            except urllib3.exceptions.ReadTimeoutError:
                raise _Retry(f"the server stopped sending after {progress.have} of {total or '?'} bytes") from None
            except urllib3.exceptions.HTTPError:
                raise _Retry(f"the connection closed after {progress.have} of {total or '?'} bytes") from None
            except OSError as e:
                # urllib3 wraps the network's own OSErrors, so this is the cache's disk: no URL can help.
                raise self._cannot_write(name, part, e) from None
            finally:
                progress.close()
            if total is not None and progress.have < total:
                raise _Retry(f"the connection closed after {progress.have} of {total} bytes")

    def _cannot_write(self, name, part, e):
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            todo = f"free space in the download cache {self.cache_dir}"
        else:
            todo = f"make the download cache {self.cache_dir} writable"
        return MkdumpError(f"cannot write the download of {name} to {part} ({e.strerror}); {todo} (or give "
                           "another cache=) and run again.")


# The top of a Linux 2.6.9 tree: a patch for it touches at least one of these.
_KERNEL_TOP = {"arch", "crypto", "Documentation", "drivers", "fs", "include", "init", "ipc", "kernel", "lib", "mm",
               "net", "scripts", "security", "sound", "usr", "Makefile"}


def _not_a_kernel_patch(path):
    """Why the file at `path` is no unified diff for a kernel tree (-p1, as the series apply it), or None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MkdumpError(f"cannot read {path} ({e.strerror}); fix its permissions or remove it.") from None
    name = os.path.basename(path)
    try:
        paths = [strip_name(fp.new_name or fp.old_name, 1, patch_name=name, lineno=fp.patch_line)
                 for fp in parse_patch(data, name=name)]
    except PatchFormatError as e:
        return str(e).split("; ")[0]     # what is wrong, without the advice meant for the patch stage
    if not any(p.split("/")[0] in _KERNEL_TOP for p in paths):
        shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
        return f"none of the files it changes ({shown}) is in a kernel tree"
    return None


# urllib3 1.x has no NameResolutionError; its gaierror is then found further down the chain.
_NAME_ERRORS = tuple(t for t in (socket.gaierror, getattr(urllib3.exceptions, "NameResolutionError", None)) if t)


def _host_unknown(e):
    """Whether a failed request never got past name resolution (the cause sits somewhere in the chain)."""
    stack, seen = [e], set()
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, _NAME_ERRORS):
            return True
        stack += [getattr(x, "reason", None), x.__cause__, x.__context__]
        stack += [a for a in getattr(x, "args", ()) if isinstance(a, BaseException)]
    return False


def _describe(e):
    """A short reason for a failed request, instead of urllib3's nested representations."""
    if isinstance(e, requests.Timeout):
        return "timed out"
    m = re.search(r"\[Errno -?\d+\] [^'\")]*", str(e))
    return f"connection failed ({m[0]})" if m else f"{type(e).__name__}: {e}"
