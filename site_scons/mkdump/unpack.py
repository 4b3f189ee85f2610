"""Safe, atomic unpacking of source archives, with the tree hash of what was unpacked."""
import contextlib
import os
import posixpath
import shutil
import signal
import subprocess
import tarfile
import tempfile

from mkdump.errors import NO_SPACE, Interrupted, MkdumpError, NoSpace, signal_name
from mkdump.fsutil import tree_file_mode
from mkdump.logs import log_default
from mkdump.narhash import nar_sha256, normalize_sha256

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x1f\x9d", "compress"))


class ArchiveError(MkdumpError):
    """The archive itself is at fault (not a tar, damaged, unsafe, another tree), as opposed to the machine
    (a full disk, permissions): the fetcher sets aside only what fails for the first reason."""


def detect_compression(path):
    """"gzip", "bzip2", "xz", "compress" or "none" (a plain tar), from the first bytes, never the name."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise MkdumpError(f"cannot read the archive {path}: {e.strerror}.") from None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "none"
    raise ArchiveError(f"{path} is not a tar archive, plain or compressed with gzip, bzip2, xz or compress "
                       f"(it starts with {head[:6].hex() or 'nothing'}); replace it with a genuine archive.")


# Decompression runs in its own process, so it overlaps with extraction and hashing in this one (as `tar xjf`
# overlaps with bzip2): in-process decompression made the unpack stage twice as slow as tar on two cores. The
# exit statuses each tool uses for a mere warning (gzip: trailing zeros after the data) count as success.
_DECOMPRESSORS = {
    "gzip": (["gzip", "-dc"], (0, 2), "gzip"),
    "bzip2": (["bzip2", "-dc"], (0,), "bzip2"),
    "xz": (["xz", "-dc"], (0, 2), "xz-utils"),
    # Unix compress (.Z): gzip decodes it and gets the LZW bit-group quirks right.
    "compress": (["gzip", "-dc"], (0, 2), "gzip"),
}


@contextlib.contextmanager
def _tar_stream(archive, kind):
    """The uncompressed tar bytes of `archive` as a file object."""
    if kind == "none":
        with open(archive, "rb") as f:
            yield f
        return
    argv, ok, package = _DECOMPRESSORS[kind]
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv + ["--", archive], stdout=subprocess.PIPE, stderr=err,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise MkdumpError(f"{argv[0]} is needed to unpack {archive}; install the Debian package "
                              f"{package}.") from None
        try:
            yield proc.stdout
            # Drain what tar did not need (zero padding), so the exit status reflects the whole stream.
            while proc.stdout.read(1 << 16):
                pass
        except BaseException as e:
            proc.kill()
            rc = proc.wait()
            # Ctrl-C reaches the decompressor too, and its death breaks off the tar stream: the error tar then
            # raises would read as a damaged archive. A KeyboardInterrupt of our own goes on as it is.
            if isinstance(e, Exception) and rc != -signal.SIGKILL and rc < 0:
                raise _interrupted(archive, argv[0], rc) from None
            raise
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc < 0:
            raise _interrupted(archive, argv[0], rc)
        if rc not in ok:
            err.seek(0)
            raise ArchiveError(f"{archive} is damaged {kind} data ({err.read().decode(errors='replace').strip()}); "
                               "fetch it again.")


def _interrupted(archive, tool, rc):
    """For `tool` killed by signal -rc: a damaged archive makes a decompressor exit with a status instead."""
    return Interrupted(f"unpacking {archive} was interrupted ({tool} was stopped by {signal_name(rc)}), so the "
                       "archive was not judged; run again.")


def _inside(path, root):
    return os.path.commonpath([path, root]) == root


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Extractor:
    """Checks every member and writes it under `root` without ever following a symlink.

    The rules are those of tarfile's "data" filter (no absolute paths, no `..`, no devices or FIFOs, no links
    leading outside; no setuid/setgid/sticky bits or group/other write; no ownership from the archive), and more:
    a name may appear once (a directory may repeat), nothing is written through a symlink, and a hard link may
    only name an earlier regular file of the archive. Checking names as text is not enough: a chain of links that
    each look harmless (`s0 -> .`, `s1 -> s0/..`, ...) climbs out of the tree on disk, and tarfile resolves every
    path through whatever is on disk. So every path is walked from the root one directory at a time with
    O_NOFOLLOW and written with O_EXCL through the directory's descriptor: an extraction writes inside `root` or
    fails, whatever the links do. Where the links of the finished tree lead is judged afterwards (`escaping_links`).
    Doing this here rather than through tarfile's `filter=` keeps one behaviour on every Python: Debian 12's 3.11.2
    has no extraction filters at all.
    """

    def __init__(self, archive, root):
        self.archive = archive
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.kinds = {}          # member name (normalised) -> "dir", "file" or "symlink"
        self.symlinks = []
        self.dir_times = {}      # directory name -> mtime, set once its contents are written
        self._cached = (None, None)

    def close(self):
        if self._cached[1] is not None:
            os.close(self._cached[1])
        os.close(self.root_fd)

    def refuse(self, name, why):
        raise ArchiveError(f"{self.archive}: refusing member {name!r}, {why}; the archive is unsafe, "
                           "replace it with a genuine one.")

    def parts(self, name, raw, what="it has"):
        """The components of a member or link name; `raw` is the member the message names."""
        if name.startswith("/"):
            self.refuse(raw, f"{what} an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            self.refuse(raw, f"{what} a path that contains '..'")
        return parts

    def _dir_fd(self, parts, raw, create):
        """A descriptor of the directory `parts` (created when missing and `create`), owned by the cache."""
        key = "/".join(parts)
        if self._cached[0] == key:
            return self._cached[1]
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                here = "/".join(parts[:i + 1])
                kind = self.kinds.get(here)
                if kind == "symlink":
                    self.refuse(raw, f"it would be written through the symlink {here!r}")
                if kind == "file":
                    self.refuse(raw, f"its parent {here!r} is a file")
                if kind is None:
                    if not create:
                        self.refuse(raw, f"it names {key!r}, which the archive does not hold")
                    os.mkdir(part, 0o700, dir_fd=fd)
                    self.kinds[here] = "dir"
                    self.dir_times.setdefault(here, None)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        if self._cached[1] is not None:
            os.close(self._cached[1])
        self._cached = (key, fd)
        return fd

    def extract(self, tar, member):
        raw = member.name
        parts = self.parts(raw, raw)
        name = "/".join(parts)
        if member.ischr() or member.isblk():
            self.refuse(raw, "it is a device file")
        if member.isfifo():
            self.refuse(raw, "it is a FIFO")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            self.refuse(raw, "it is not a file, directory or link")
        if not parts:
            if not member.isdir():
                self.refuse(raw, "it names the top of the tree but is not a directory")
            return
        seen = self.kinds.get(name)
        if seen == "symlink":
            self.refuse(raw, f"it would be written through the symlink {name!r}")
        if seen is not None and not (seen == "dir" and member.isdir()):
            self.refuse(raw, "its name appears twice in the archive")
        parent = self._dir_fd(parts[:-1], raw, create=True)
        base = parts[-1]
        if member.isdir():
            if seen is None:
                os.mkdir(base, 0o700, dir_fd=parent)
                self.kinds[name] = "dir"
            self.dir_times[name] = member.mtime
        elif member.issym():
            self.symlink(member, raw, parts, parent)
        elif member.islnk():
            self.hard_link(member, raw, parts, parent)
        else:
            self.write_file(tar, member, base, parent)
            self.kinds[name] = "file"

    def write_file(self, tar, member, base, parent):
        # O_EXCL: a name already on disk (a duplicate the checks above missed) is an error, never written through.
        fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
            os.fchmod(fd, tree_file_mode(member.mode))
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)

    def symlink(self, member, raw, parts, parent):
        target = member.linkname
        if target.startswith("/"):
            self.refuse(raw, f"it is a symlink to the absolute path {target!r}")
        resolved = posixpath.normpath(posixpath.join(*parts[:-1], target) if len(parts) > 1 else target)
        if resolved == ".." or resolved.startswith("../"):
            self.refuse(raw, f"it is a symlink to {target!r}, outside the tree")
        os.symlink(target, parts[-1], dir_fd=parent)
        os.utime(parts[-1], (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)
        name = "/".join(parts)
        self.kinds[name] = "symlink"
        self.symlinks.append(name)

    def hard_link(self, member, raw, parts, parent):
        target = self.parts(member.linkname, raw, f"it is a hard link to {member.linkname!r},")
        if self.kinds.get("/".join(target)) != "file":
            self.refuse(raw, f"it is a hard link to {member.linkname!r}, which is not an earlier file of the archive")
        # Opens its own descriptors: the cached one is the new link's parent, which must stay open.
        src_fd = os.dup(self.root_fd)
        try:
            for part in target[:-1]:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=src_fd)
                os.close(src_fd)
                src_fd = nxt
            os.link(target[-1], parts[-1], src_dir_fd=src_fd, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(src_fd)
        self.kinds["/".join(parts)] = "file"

    def finish(self):
        """Directory modes and times last, deepest first, as tar does (writing a file changes its directory's)."""
        for name in sorted(self.dir_times, key=lambda n: n.count("/"), reverse=True):
            fd = self._dir_fd(name.split("/"), name, create=False)
            os.fchmod(fd, 0o755)
            mtime = self.dir_times[name]
            if mtime is not None:
                os.utime(fd, (mtime, mtime))

    def escaping_links(self, tree, root):
        """The symlinks of the finished tree that lead outside `root` (the tree, or its single top directory)."""
        real_root = os.path.realpath(root)
        return [link for link in sorted(self.symlinks)
                if not _inside(os.path.realpath(os.path.join(tree, link)), real_root)]


def unpack(archive, dest, *, expect_tree_sha256=None, log=None):
    """Unpack `archive` so that `dest` holds its tree; return the tree hash (hex) of `dest`.

    A single top-level directory in the archive becomes `dest` itself. The tree is built in a temporary
    directory beside `dest` and renamed into place only once complete and, if `expect_tree_sha256` is given,
    verified: an old `dest` is replaced only on success, and an interruption leaves neither a new `dest` nor
    the temporary directory. Raises MkdumpError for an unreadable, damaged or unsafe archive or a tree hash
    that is not the expected one.
    """
    log = log_default if log is None else log
    archive = os.fspath(archive)
    dest = os.path.abspath(os.fspath(dest))
    expected = normalize_sha256(expect_tree_sha256) if expect_tree_sha256 is not None else None
    kind = detect_compression(archive)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    log(f"Unpacking {os.path.basename(archive)} ({kind}) into {dest}")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.unpack-", dir=parent)
    try:
        tree = os.path.join(tmp, "tree")
        os.mkdir(tree)
        extractor = _Extractor(archive, tree)
        try:
            with _tar_stream(archive, kind) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    extractor.extract(tar, member)
            extractor.finish()
        except OSError as e:
            if e.errno in NO_SPACE:
                raise NoSpace(f"unpacking {archive} into {dest}", dest, e.strerror) from None
            if e.errno is not None:
                raise MkdumpError(f"cannot unpack {archive} into {dest} ({e}); fix the permissions and run "
                                  "again.") from None
            raise ArchiveError(f"{archive} is damaged ({e}); fetch it again.") from None
        except (tarfile.TarError, EOFError) as e:
            raise ArchiveError(f"{archive} is damaged or not a tar archive ({e}); fetch it again.") from None
        finally:
            extractor.close()
        entries = os.listdir(tree)
        root = tree
        if len(entries) == 1 and os.path.isdir(os.path.join(tree, entries[0])) \
                and not os.path.islink(os.path.join(tree, entries[0])):
            root = os.path.join(tree, entries[0])
        # Judged on the finished tree, because only it shows where chains of symlinks lead, and because stripping
        # the top directory changes what a relative link may reach.
        for link in extractor.escaping_links(tree, root):
            raise ArchiveError(f"{archive}: refusing member {link!r}, it is a symlink that leads outside the "
                               "tree; the archive is unsafe, replace it with a genuine one.")
        actual = nar_sha256(root)
        if expected is not None and actual != expected:
            raise ArchiveError(f"{archive} unpacks to a tree with hash {actual}, but the pin is {expected}; "
                               "it is not the expected source, so replace the archive with a genuine one.")
        if os.path.lexists(dest):
            os.rename(dest, os.path.join(tmp, "old"))
        os.rename(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return actual


@contextlib.contextmanager
def unpacked(archive, scratch_dir):
    """`archive` unpacked into a temporary directory under `scratch_dir`, deleted again after the block: yields
    (the tree, its tree hash)."""
    os.makedirs(scratch_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".treehash-", dir=scratch_dir)
    try:
        tree = os.path.join(tmp, "tree")
        yield tree, unpack(archive, tree, log=lambda msg: None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tree_sha256_of_archive(archive, scratch_dir):
    """The tree hash of `archive`, unpacked into a temporary directory under `scratch_dir` and deleted again."""
    with unpacked(archive, scratch_dir) as (_, tree_hash):
        return tree_hash
