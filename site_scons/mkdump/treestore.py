"""Verified unpacked trees kept in the download cache, so that a new build directory links Linux's 250 MB tree
instead of unpacking it again.

`<cache>/trees/<tree hash>/` holds a tree whose tree hash (mkdump.narhash) was the verified one when it was put
there, its files read-only. A build directory gets it as hard links (`cp -al`: 0.3 s for the 16,448 files, where
unpacking the archive took 7 to 22 s on our 2-core VM) and hashes the links again before using them: a store tree
that changed since (an edit through a link, a removed file) is evicted and the archive unpacked as before. The
hash is the same check the unpack stage makes after unpacking, so a tree from the store is as verified as an
unpacked one.

A store needs the cache and the build directory on one filesystem (hard links); elsewhere the stage unpacks, as
it did before there was a store. Build directories running at once may put the same tree there: the first rename
wins, the others' copies are removed.

Adding and evicting work in `<cache>/trees/.add-*` and `.evicted-*`, each locked (flock) by the run working in it.
A run killed there leaves one behind, holding links to a whole tree (an evicted tree's only links: its space); the
next run that adds or evicts removes every such place no run holds.
"""
import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager

from mkdump.errors import Interrupted, MkdumpError, NoSpace
from mkdump.fsutil import link_tree, replace_dir, staging_dir
from mkdump.narhash import nar_sha256, normalize_sha256

# The places in <cache>/trees/ where a tree is added or evicted.
_ADDING, _EVICTING = ".add-", ".evicted-"


def tree_path(cache, tree_sha256):
    return os.path.join(cache, "trees", normalize_sha256(tree_sha256))


def same_filesystem(cache, build_dir):
    """Whether hard links can join the store under `cache` and `build_dir` (both made when missing)."""
    try:
        os.makedirs(os.path.join(cache, "trees"), exist_ok=True)
        os.makedirs(build_dir, exist_ok=True)
        return os.stat(os.path.join(cache, "trees")).st_dev == os.stat(build_dir).st_dev
    except OSError:
        return False


def link_from_store(cache, tree_sha256, dest, *, log):
    """Make `dest` the stored tree of that hash, as hard links, and return True; False when the store has no such
    tree or it no longer hashes to it (then it is evicted). `dest` is replaced only by a verified tree."""
    stored = tree_path(cache, tree_sha256)
    if not os.path.isdir(stored):
        return False
    tmp = staging_dir(os.path.abspath(dest))
    try:
        staging = os.path.join(tmp, "tree")
        try:
            link_tree(stored, staging, f"linking the stored tree {stored}")
        except (Interrupted, NoSpace):
            raise
        except MkdumpError as e:
            # Permissions, too many links to one file: the archive is still there to unpack.
            log(f"mkdump: the stored tree {stored} cannot be linked ({e}); unpacking the archive instead")
            return False
        if nar_sha256(staging) != normalize_sha256(tree_sha256):
            log(f"mkdump: the stored tree {stored} changed since it was verified; removing it and unpacking again")
            evict(cache, tree_sha256)
            return False
        replace_dir(staging, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"mkdump: {dest}: linked from the verified tree in {stored}")
    return True


def add_to_store(cache, tree_sha256, tree, *, log):
    """Keep the verified tree `tree` in the store as hard links (its files must be read-only already). The store
    only saves time: when the tree cannot be kept (a full or read-only cache), the build goes on without it."""
    stored = tree_path(cache, tree_sha256)
    if os.path.isdir(stored):
        return
    try:
        os.makedirs(os.path.dirname(stored), exist_ok=True)
        place = _work_place(os.path.dirname(stored), _ADDING)
    except OSError as e:
        log(f"mkdump: {tree} is not kept in the download cache's tree store ({e.strerror}); the next build "
            "directory unpacks the archive again")
        return
    with place as tmp:
        try:
            link_tree(tree, os.path.join(tmp, "tree"), f"keeping {tree} in the store")
        except Interrupted:
            raise
        except MkdumpError as e:
            log(f"mkdump: {tree} is not kept in the download cache's tree store ({e}); the next build directory "
                "unpacks the archive again")
            return
        try:
            os.rename(os.path.join(tmp, "tree"), stored)
        except OSError:
            if not os.path.isdir(stored):
                raise
            # Another build directory put it there first: its tree is the same.


def evict(cache, tree_sha256):
    stored = tree_path(cache, tree_sha256)
    with _work_place(os.path.dirname(stored), _EVICTING) as gone:
        try:
            os.rename(stored, os.path.join(gone, "tree"))
        except FileNotFoundError:
            pass


def _work_place(trees, prefix):
    """A new directory in `trees` to add or evict in, locked for as long as this run works there and removed at
    the end; the places killed runs left are removed first. Makes the directory at once (so that a failure to
    make it is an OSError here), the rest when entered."""
    remove_leftovers(trees)
    while True:
        path = tempfile.mkdtemp(prefix=prefix, dir=trees)
        # Another run's remove_leftovers may take it for a leftover before it is locked: then make another.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return _held(path, fd)
        os.close(fd)


@contextmanager
def _held(path, fd):
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_leftovers(trees):
    """Remove the adding and evicting places in `trees` that no running run holds (their runs were killed)."""
    try:
        names = [n for n in os.listdir(trees) if n.startswith((_ADDING, _EVICTING))]
    except OSError:
        return
    for name in names:
        path = os.path.join(trees, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)
        except BlockingIOError:
            pass        # a run is adding or evicting there now
        finally:
            os.close(fd)
