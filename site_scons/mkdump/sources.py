"""The source manifest (patches/sources.toml) and the trust-on-first-use lock file (patches/sources.lock)."""
import fcntl
import fnmatch
import os
import tempfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from mkdump import tomlfile
from mkdump.errors import MkdumpError
from mkdump.narhash import normalize_sha256


# What a file without a pin can be checked to be before trust on first use records it (fetch.py checks them).
KINDS = ("patch", "mkexec-archive", "mkdutils-archive")

# For a source that states no max_bytes: about the size of the largest archive of Linux 2.6.9.
DEFAULT_MAX_BYTES = 100_000_000


@dataclass(frozen=True)
class Source:
    name: str
    file: str
    urls: tuple[str, ...]
    sha256: str | None = None           # hex
    tree_sha256: str | None = None      # hex
    alternatives: tuple[str, ...] = ()
    sources_glob: str | None = None     # other archive names tried in a sources= directory (tree pin only)
    max_bytes: int = DEFAULT_MAX_BYTES  # a download larger than this is refused
    kind: str | None = None             # one of KINDS: what a file must be before it is trusted on first use

    @property
    def names(self):
        """Every file name that can satisfy this source: alternatives only count when the tree is pinned."""
        return (self.file,) + (self.alternatives if self.tree_sha256 else ())


_KEYS = {"file", "urls", "sha256", "tree_sha256", "alternatives", "sources_glob", "max_bytes", "kind"}


def fetchable(url):
    """Whether the fetcher can download from `url`: requests speaks http and https only, and needs a host."""
    if not isinstance(url, str) or any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port                          # a malformed port raises here, not at download time
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def mirror_url(value):
    """A mirror= base URL, without its trailing '/'; the one check of mirrors, for options and the fetcher."""
    if not fetchable(value):
        raise MkdumpError(f"mirror={value!r} is not an http:// or https:// URL with a host; give base URLs such "
                          "as https://example.org/sources (a local directory goes in sources=).")
    return value.rstrip("/")


# What a tar archive is called, plain or compressed; the content is told by its magic bytes (unpack.py), the name
# only keeps a distro's .dsc, .sign and patch files in the same directory from costing an unpack each.
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.Z", ".taz")


def _plain_name(name):
    return bool(name) and name not in (".", "..") and "/" not in name and not any(
        ord(c) < 32 or ord(c) == 127 for c in name)


def glob_candidates(source, names):
    """The names among `names` (a directory listing) that `source.sources_glob` offers besides its listed names:
    tar archives by their suffix whose name matches the glob, in name order. Empty without a tree pin."""
    if not (source.tree_sha256 and source.sources_glob):
        return []
    return sorted(n for n in names
                  if _plain_name(n) and n not in source.names and n.endswith(ARCHIVE_SUFFIXES)
                  and fnmatch.fnmatchcase(n, source.sources_glob))


def check_file_name(name, where):
    """A cache entry name: a plain file name, so it can never point outside the cache or a sources= directory."""
    if not isinstance(name, str) or not _plain_name(name):
        raise MkdumpError(f"{where}: {name!r} is not a plain file name; give the file name without any directory.")
    return name


def load_sources(path):
    """Read the manifest into {name: Source}. Raises MkdumpError naming the file and key when malformed."""
    path = os.fspath(path)
    data = tomlfile.load(path, "the source manifest")
    sources = {}
    owner = {}
    for name, table in data.items():
        where = f"{path}: [{name}]"
        if not isinstance(table, dict):
            raise MkdumpError(f"{where} is not a table; each source is a [name] table with file and urls.")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise MkdumpError(f"{where} has unknown key {unknown[0]!r}; the keys are {', '.join(sorted(_KEYS))}.")
        if "file" not in table:
            raise MkdumpError(f"{where} has no 'file'; add the file name the source is stored under.")
        file = check_file_name(table["file"], f"{where} file")
        urls = table.get("urls")
        if not isinstance(urls, list) or not urls or not all(fetchable(u) for u in urls):
            raise MkdumpError(f"{where} urls must be a non-empty list of http(s) URLs.")
        pins = {}
        for key in ("sha256", "tree_sha256"):
            if key in table:
                try:
                    pins[key] = normalize_sha256(table[key])
                except MkdumpError as e:
                    raise MkdumpError(f"{where} {key}: {e}") from None
        alternatives = table.get("alternatives", [])
        if not isinstance(alternatives, list):
            raise MkdumpError(f"{where} alternatives must be a list of file names.")
        if alternatives and "tree_sha256" not in pins:
            raise MkdumpError(f"{where} has alternatives but no tree_sha256; other archives can only be accepted "
                              "when the unpacked tree is pinned, so add tree_sha256 or drop alternatives.")
        alternatives = tuple(check_file_name(a, f"{where} alternatives") for a in alternatives)
        glob = table.get("sources_glob")
        if glob is not None:
            if not isinstance(glob, str) or not _plain_name(glob):
                raise MkdumpError(f"{where} sources_glob must be a shell glob for file names, without any "
                                  "directory, such as \"linux*[-_]2.6.9[!0-9]*\".")
            if "tree_sha256" not in pins:
                raise MkdumpError(f"{where} has sources_glob but no tree_sha256; archives found by name can only "
                                  "be accepted when the unpacked tree is pinned, so add tree_sha256 or drop "
                                  "sources_glob.")
        max_bytes = table.get("max_bytes", DEFAULT_MAX_BYTES)
        if type(max_bytes) is not int or max_bytes <= 0:
            raise MkdumpError(f"{where} max_bytes must be a positive whole number of bytes, such as 4_000_000.")
        kind = table.get("kind")
        if kind is not None and kind not in KINDS:
            raise MkdumpError(f"{where} kind {kind!r} is not one of {', '.join(map(repr, KINDS))}.")
        source = Source(name=name, file=file, urls=tuple(urls), sha256=pins.get("sha256"),
                        tree_sha256=pins.get("tree_sha256"), alternatives=alternatives, sources_glob=glob,
                        max_bytes=max_bytes, kind=kind)
        for n in source.names:
            if n in owner:
                raise MkdumpError(f"{where} uses the file name {n!r} that [{owner[n]}] uses too; "
                                  "each file name may belong to one source only.")
            owner[n] = name
        sources[name] = source
    return sources


def _toml_str(s):
    """A TOML basic string. File names are already free of control characters (check_file_name)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LOCK_HEADER = """\
# SHA-256 of files that have no pin in sources.toml, recorded on first use (trust on first use).
# Written by mkdump-build; commit it, so every later fetch must produce exactly these files.
"""


class LockFile:
    """patches/sources.lock: `"<file>" = "<sha256 hex>"` lines, sorted.

    Rewrites go through a temporary file and a rename, under an flock on the containing directory, so two
    builds recording at once both land and a reader never sees half a file.
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def _read(self):
        data = tomlfile.load(self.path, "the lock file", fix="restore it from version control", missing_ok=True)
        for file, value in data.items():
            try:
                data[file] = normalize_sha256(value)
            except MkdumpError:
                raise MkdumpError(f"{self.path}: the entry for {file!r} is not a SHA-256; restore the file "
                                  "from version control or delete that line.") from None
        return data

    def get(self, file):
        return self._read().get(file)

    def record(self, file, sha256):
        """Record `file`'s hash. Raises MkdumpError if a different hash was recorded meanwhile."""
        sha256 = normalize_sha256(sha256)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        # The lock file itself is replaced by rename, so the lock must live on something stable: the directory.
        dfd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(dfd, fcntl.LOCK_EX)
            data = self._read()
            old = data.get(file)
            if old == sha256:
                return
            if old is not None:
                raise MkdumpError(f"{self.path} already records SHA-256 {old} for {file}, not {sha256}; "
                                  "find out which file is genuine before changing that line.")
            data[file] = sha256
            text = _LOCK_HEADER + "".join(f"{_toml_str(k)} = \"{data[k]}\"\n" for k in sorted(data))
            fd, tmp = tempfile.mkstemp(prefix=".sources.lock-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        finally:
            os.close(dfd)
