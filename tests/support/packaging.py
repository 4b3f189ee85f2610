"""A packager's checkout for the package tests: this checkout's files (as git lists them), wired to the fixture
kernel or the real tree as support.project wires its copies, with patches/sources.lock recorded the way a packager
records it (`scons fetch offline=1 sources=DIR`, then commit), and the package builds run on it.
"""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from support import project as P

ROOT = P.ROOT


def checkout_files():
    """Paths of the checkout, relative to it: what git tracks plus what it would add (untracked, not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, stdout=subprocess.PIPE).stdout.decode()
    return sorted(p for p in out.split("\0") if p and os.path.lexists(ROOT / p))


def copy_checkout(dest):
    dest = Path(dest)
    for rel in checkout_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target, follow_symlinks=False)
    return dest


def packager_checkout(dest, sources_dir, *, tree_sha256=None):
    """A copy of the checkout whose sources.lock pins the files of sources_dir; with tree_sha256 (the fixture's),
    its sources.toml and series build the fixture kernel as support.project's copies do."""
    proj = copy_checkout(dest)
    (proj / "patches" / "sources.lock").unlink(missing_ok=True)
    if tree_sha256 is not None:
        P.keep_fixture_series(proj)
        P.pin_linux_tree(proj, tree_sha256)
    cache = Path(dest).parent / (Path(dest).name + "-lockcache")
    r = P.scons(proj, "fetch", "offline=1", f"sources={sources_dir}", f"cache={cache}", f"build={cache}/build",
                env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(cache)
    assert (proj / "patches" / "sources.lock").is_file()
    return proj


def clean_env(**extra):
    """The environment of a package build: no SOURCE_DATE_EPOCH of ours (the changelog gives it), no .venv
    needed (the package build uses Debian's python3 and its Build-Depends)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "MKDUMP_SOURCES", "PYTHONPATH")}
    env.update(extra)
    return env


def dpkg_buildpackage(proj, sources_dir, prefix=(), timeout=1800):
    """README's command: `cp -r packaging/debian debian && MKDUMP_SOURCES=DIR dpkg-buildpackage -b -uc -us`,
    after `prefix` (support.network.netns_prefix's, say); returns the CompletedProcess (the .debs are in proj's
    parent)."""
    shutil.copytree(proj / "packaging" / "debian", proj / "debian")
    return subprocess.run([*prefix, "dpkg-buildpackage", "-b", "-uc", "-us"], cwd=proj,
                          env=clean_env(MKDUMP_SOURCES=str(sources_dir)), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)


def source_tarball(proj, dest_dir):
    """What the README tells a packager to do for rpmbuild: the checkout as mkdump-build.tar.gz with one top
    directory mkdump-build/ (`git archive --prefix=mkdump-build/ -o DIR/mkdump-build.tar.gz HEAD`), made here from
    the copy's files, deterministically."""
    path = Path(dest_dir) / "mkdump-build.tar.gz"
    files = sorted(str(p.relative_to(proj)) for p in Path(proj).rglob("*") if not p.is_dir())

    def norm(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 1097794800
        return info
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            tar.add(Path(proj) / rel, arcname=f"mkdump-build/{rel}", filter=norm, recursive=False)
    return path


def rpmbuild(spec, sources_dir, topdir, prefix=(), timeout=1800):
    """README's command: `rpmbuild -bb --define "_sourcedir DIR" packaging/rpm/mkdump.spec`, with its own
    _topdir (so the test writes nothing under ~/rpmbuild), after `prefix`; returns the CompletedProcess."""
    return subprocess.run([*prefix, "rpmbuild", "-bb", "--define", f"_sourcedir {sources_dir}",
                           "--define", f"_topdir {topdir}", str(spec)],
                          env=clean_env(HOME=str(topdir)), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
