"""Safe, atomic unpacking of source archives, with the tree hash of what was unpacked."""
import contextlib
import copy
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile

from mkdump.errors import MkdumpError
from mkdump.narhash import nar_sha256, normalize_sha256

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x1f\x9d", "compress"))


class ArchiveError(MkdumpError):
    """The archive itself is at fault (not a tar, damaged, unsafe, another tree), as opposed to the machine
    (a full disk, permissions): the fetcher sets aside only what fails for the first reason."""


def _stderr_log(msg):
    print(msg, file=sys.stderr)


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
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc not in ok:
            err.seek(0)
            raise ArchiveError(f"{archive} is damaged {kind} data ({err.read().decode(errors='replace').strip()}); "
                               "fetch it again.")


class _Guard:
    """Checks every member before extraction and hands tarfile a sanitised copy.

    The rules are those of tarfile's "data" filter (no absolute paths, no `..`, no devices or FIFOs, no links
    leading outside; no setuid/setgid/sticky bits or group/other write; no ownership from the archive) plus what
    it leaves open: a member written through a symlink that an earlier member created, and a hard link to
    anything but an earlier regular file. Doing it here rather than through tarfile's `filter=` keeps one
    behaviour on every Python: Debian 12's 3.11.2 has no extraction filters at all.
    """

    def __init__(self, archive):
        self.archive = archive
        self.symlinks = set()
        self.files = set()

    def refuse(self, member, why):
        raise ArchiveError(f"{self.archive}: refusing member {member.name!r}, {why}; the archive is unsafe, "
                           "replace it with a genuine one.")

    def symlink_on(self, path):
        """The symlink an earlier member made at `path` or at one of its parent directories, or None."""
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            if "/".join(parts[:i]) in self.symlinks:
                return "/".join(parts[:i])
        return None

    def __call__(self, member):
        name = member.name
        if name.startswith("/"):
            self.refuse(member, "it has an absolute path")
        if ".." in name.split("/"):
            self.refuse(member, "its path contains '..'")
        norm = posixpath.normpath(name)
        via = self.symlink_on(norm)
        if via is not None:
            self.refuse(member, f"it would be written through the symlink {via!r}")
        if member.ischr() or member.isblk():
            self.refuse(member, "it is a device file")
        if member.isfifo():
            self.refuse(member, "it is a FIFO")
        if member.issym():
            target = member.linkname
            if target.startswith("/"):
                self.refuse(member, f"it is a symlink to the absolute path {target!r}")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), target))
            if resolved == ".." or resolved.startswith("../"):
                self.refuse(member, f"it is a symlink to {target!r}, outside the tree")
            self.symlinks.add(norm)
        elif member.islnk():
            target = posixpath.normpath(member.linkname)
            if target not in self.files:
                self.refuse(member, f"it is a hard link to {member.linkname!r}, which is not an earlier file "
                                    "of the archive")
            # A hard link follows a symlink at its target, and a later member may have replaced that file by one
            # (whose chain may, before the finished tree is judged, lead outside).
            via = self.symlink_on(target)
            if via is not None:
                self.refuse(member, f"it is a hard link through the symlink {via!r}")
            self.files.add(norm)
        elif member.isreg():
            self.files.add(norm)
        elif not member.isdir():
            self.refuse(member, "it is not a file, directory or link")
        return self.sanitised(member)

    @staticmethod
    def sanitised(member):
        safe = copy.copy(member)
        if member.isreg() or member.islnk():
            mode = (member.mode | 0o600) & 0o755
            if not mode & 0o100:
                mode &= ~0o111
            safe.mode = mode
        else:
            safe.mode = 0o755
        # Extracting as root would otherwise chown to whatever the archive says.
        safe.uid, safe.gid, safe.uname, safe.gname = os.getuid(), os.getgid(), "", ""
        return safe

    def members(self, tar):
        for member in tar:
            yield self(member)


# Members are already checked and sanitised by _Guard; newer Pythons would otherwise warn or filter a second time.
_NO_FILTER = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def _inside(path, root):
    return os.path.commonpath([path, root]) == root


def unpack(archive, dest, *, expect_tree_sha256=None, log=None):
    """Unpack `archive` so that `dest` holds its tree; return the tree hash (hex) of `dest`.

    A single top-level directory in the archive becomes `dest` itself. The tree is built in a temporary
    directory beside `dest` and renamed into place only once complete and, if `expect_tree_sha256` is given,
    verified: an old `dest` is replaced only on success, and an interruption leaves neither a new `dest` nor
    the temporary directory. Raises MkdumpError for an unreadable, damaged or unsafe archive or a tree hash
    that is not the expected one.
    """
    log = _stderr_log if log is None else log
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
        guard = _Guard(archive)
        try:
            with _tar_stream(archive, kind) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(tree, members=guard.members(tar), numeric_owner=True, **_NO_FILTER)
        except OSError as e:
            if e.errno is not None:
                raise MkdumpError(f"cannot unpack {archive} into {dest} ({e}); free some space or fix the "
                                  "permissions and run again.") from None
            raise ArchiveError(f"{archive} is damaged ({e}); fetch it again.") from None
        except (tarfile.TarError, EOFError) as e:
            raise ArchiveError(f"{archive} is damaged or not a tar archive ({e}); fetch it again.") from None
        entries = os.listdir(tree)
        root = tree
        if len(entries) == 1 and os.path.isdir(os.path.join(tree, entries[0])) \
                and not os.path.islink(os.path.join(tree, entries[0])):
            root = os.path.join(tree, entries[0])
        # Judged on disk, after the fact, because only the finished tree shows where chains of symlinks lead,
        # and because stripping the top directory changes what a relative link may reach.
        real_root = os.path.realpath(root)
        for link in sorted(guard.symlinks):
            on_disk = os.path.join(tree, link)
            if not _inside(os.path.realpath(on_disk), real_root):
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


def tree_sha256_of_archive(archive, scratch_dir):
    """The tree hash of `archive`, unpacked into a temporary directory under `scratch_dir` and deleted again."""
    os.makedirs(scratch_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".treehash-", dir=scratch_dir)
    try:
        return unpack(archive, os.path.join(tmp, "tree"), log=lambda msg: None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
