"""A throw-away copy of this project wired to a fixture kernel served over loopback, and a way to run scons in it.

The copy keeps the product's SConstruct, site_scons, configs and kernel data as they are. Two things change, both
because the fixture is not the real 2.6.9 tree: sources.toml pins the fixture's tree hash, and the series keep only
the upstream entries and the module loader's PLT32 fix (the fixture's module.c has 2.6.9's relocation switch; our
other compatibility patches fix real 2.6.9 files the fixture does not have).
"""
import filecmp
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mkdump.narhash import nar_sha256
from support import fixture_kernel, standin_mkdutils, standin_mkexec

ROOT = Path(__file__).resolve().parents[2]
# The real 2.6.9 .config files users posted: test data kept outside the repository, next to the checkout unless
# MKDUMP_FIELD_CONFIGS names their directory (a checkout elsewhere, such as a CI clone in /tmp).
FIELD_CONFIGS = Path(os.environ.get("MKDUMP_FIELD_CONFIGS") or ROOT.parent / "shared" / "field-configs")
PROJECT_FILES = ("SConstruct", "site_scons", "patches", "configs", "kernel")
MINIK = "minik-2.6.9-1.0-update1.patch"
MKEXEC = "mkexec-2.6.9-1.0-update1.taz"
MKDUTILS = "mkdutils.taz"
LINUX = "linux-2.6.9.tar.bz2"


def copy_project(dest):
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "sources.lock")
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    return dest


def export_revision(rev, dest, *, fixture_tree_sha256=""):
    """The project files of revision `rev` of this repository in dest, as copy_project copies the working tree:
    without sources.lock (its stand-ins are recorded on first use), for the fixture with its series and tree pin.
    A RuntimeError when git cannot give that revision (no repository, or a clone without it)."""
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "--", *PROJECT_FILES],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if archive.returncode:
        raise RuntimeError(f"git archive {rev} failed: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    (dest / "patches" / "sources.lock").unlink(missing_ok=True)
    if fixture_tree_sha256:
        keep_fixture_series(dest)
        pin_linux_tree(dest, fixture_tree_sha256)
    return dest


def same_outputs(ours, before):
    """(the files both build directories published under <arch>/out/ byte-identical, those that differ), as
    "<arch>/<name>", the manifest left out (it lists the stages and patches of its revision)."""
    same, differ = [], []
    for out in sorted(Path(before).glob("*/out")):
        arch = out.parent.name
        for path in sorted(p for p in out.iterdir() if p.name != "manifest.json"):
            other = Path(ours) / arch / "out" / path.name
            (same if other.is_file() and filecmp.cmp(path, other, shallow=False) else differ).append(
                f"{arch}/{path.name}")
    return same, differ


FIXTURE_COMPAT = ("compat/x86_64-module-plt32.patch",)


def keep_fixture_series(project):
    for series in (Path(project) / "patches").glob("*.series"):
        lines = [l for l in series.read_text().splitlines()
                 if l.startswith(("source:", "#")) or l.split(" ")[0] in FIXTURE_COMPAT]
        series.write_text("\n".join(lines) + "\n")


def add_local_patch(project, series, name, text):
    """Write patches/compat/<name> and append it to patches/<series>.series; returns the series' old text."""
    (Path(project) / "patches" / "compat" / name).write_text(text)
    path = Path(project) / "patches" / f"{series}.series"
    old = path.read_text()
    path.write_text(old + f"compat/{name}\n")
    return old


def fixture_project(dest, fixture_sources):
    """A copy of the project in dest that builds the fixture kernel of `fixture_sources` (FixtureSources)."""
    proj = copy_project(dest)
    keep_fixture_series(proj)
    pin_linux_tree(proj, fixture_sources.tree_sha256)
    return proj


def pin_linux_tree(project, tree_sha256):
    toml = Path(project) / "patches" / "sources.toml"
    text = toml.read_text()
    text, n = re.subn(r'(?m)^tree_sha256 = "[^"]*"', f'tree_sha256 = "{tree_sha256}"', text)
    assert n == 1, "sources.toml must pin exactly one tree"
    toml.write_text(text)


@dataclass
class FixtureSources:
    dir: Path
    tree_sha256: str
    files: dict     # file name -> bytes


def make_fixture_sources(workdir):
    """The four upstream files for the fixture kernel: its tarball, minik, mkexec and mkdutils stand-ins."""
    workdir = Path(workdir)
    out = workdir / "sources"
    out.mkdir(parents=True)
    tree = fixture_kernel.make_fixture_tree(workdir / "tree")
    tree_hash = nar_sha256(tree)
    fixture_kernel.make_fixture_tarball(out)
    (out / MINIK).write_bytes(fixture_kernel.make_fixture_minik_patch(tree))
    standin_mkexec.make_taz(out / MKEXEC, patch_text=standin_mkexec.kernel_patch(tree),
                            workdir=workdir / "mkexec-tree")
    standin_mkdutils.make_taz(out / MKDUTILS)
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    return FixtureSources(out, tree_hash, files)


def scons(project, *args, env=None, timeout=600):
    """Run the real scons in `project`; returns the CompletedProcess (text, stdout and stderr apart)."""
    e = dict(os.environ)
    e.pop("SOURCE_DATE_EPOCH", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "SCons", *args], cwd=project, env=e, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          timeout=timeout)
