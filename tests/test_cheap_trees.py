"""The kernel trees share the pristine tree's files (hard links) and are never written after the patch stage; a
re-patch keeps the times of what it did not change. The fixture kernel through the real scons, and the real tree."""
import difflib
import os
from pathlib import Path

import pytest

from mkdump.narhash import nar_sha256
from support import fixture_kernel
from support import project as P

LINE = " *  linux/init/main.c (test fixture)\n"


def local_patch(new_line):
    """A patch of the fixture's init/main.c that rewrites one comment line."""
    text = fixture_kernel.fixture_files()["init/main.c"].decode()
    assert text.count(LINE) == 1
    diff = difflib.unified_diff(text.splitlines(keepends=True), text.replace(LINE, new_line).splitlines(keepends=True),
                                "a/init/main.c", "b/init/main.c")
    return "Test only: one line of init/main.c.\n\n" + "".join(diff)


def shared(a, b):
    return os.path.samestat(os.lstat(a), os.lstat(b))


def files(tree):
    return [p for p in Path(tree).rglob("*") if p.is_file() and not p.is_symlink()]


def test_kernel_trees_share_the_pristine_files_and_a_re_patch_keeps_what_it_did_not_change(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    P.add_local_patch(proj, "minik", "one-line.patch", local_patch(" *  linux/init/main.c (edited once)\n"))
    args = ["arch=x86_64", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}"]
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    pristine, minik, obj = proj / "build" / "src" / "linux-2.6.9", arch / "minik", arch / "obj" / "minik"

    # The pristine tree: read-only files, still the pinned tree after both kernels were built.
    assert [p for p in files(pristine) if p.stat().st_mode & 0o222] == []
    assert nar_sha256(pristine) == sources.tree_sha256
    for kind in ("minik", "system"):
        tree = arch / kind
        own = [p for p in files(tree) if not (pristine / p.relative_to(tree)).exists()
               or not shared(p, pristine / p.relative_to(tree))]
        # Only what the patches wrote is a file of the tree's own; the build wrote nothing there.
        assert 0 < len(own) < 20, (kind, own)
        assert not (tree / ".config").exists() and not list(tree.rglob("*.o")), kind
    assert not shared(minik / "init" / "main.c", pristine / "init" / "main.c")
    assert shared(minik / "kernel" / "printk.c", pristine / "kernel" / "printk.c")

    written = {p.relative_to(minik): p.stat().st_mtime_ns for p in files(minik)
               if not (pristine / p.relative_to(minik)).exists() or not shared(p, pristine / p.relative_to(minik))}
    built = (obj / "init" / "main.o").stat().st_mtime_ns
    # Edit the hunk: the tree is made anew, every file the patches wrote as before keeps its time.
    (proj / "patches" / "compat" / "one-line.patch").write_text(local_patch(" *  linux/init/main.c (edited twice)\n"))
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(edited twice)" in (minik / "init" / "main.c").read_text()
    again = {rel: (minik / rel).stat().st_mtime_ns for rel in written}
    changed = sorted(str(rel) for rel in written if again[rel] != written[rel])
    assert changed == ["init/main.c"]
    assert (obj / "init" / "main.o").stat().st_mtime_ns > built


def test_a_second_build_directory_links_the_verified_tree_from_the_download_cache(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = ["arch=x86_64", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}"]
    first = P.scons(proj, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Unpacking linux-2.6.9" in first.stderr and "linked from the verified tree" not in first.stderr
    stored = tmp_path / "cache" / "trees" / sources.tree_sha256
    assert nar_sha256(stored) == sources.tree_sha256
    assert [p for p in files(stored) if p.stat().st_mode & 0o222] == []

    second = P.scons(proj, *args, f"build={tmp_path / 'other'}")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Unpacking linux-2.6.9" not in second.stderr and "linked from the verified tree" in second.stderr
    pristine = tmp_path / "other" / "src" / "linux-2.6.9"
    assert shared(pristine / "init" / "main.c", stored / "init" / "main.c")
    # The same products as from the unpacked archive.
    out1, out2 = proj / "build" / "x86_64" / "out", tmp_path / "other" / "x86_64" / "out"
    assert sorted(os.listdir(out1)) == sorted(os.listdir(out2))
    for name in os.listdir(out1):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name


def test_a_changed_stored_tree_is_never_used(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = ["arch=x86_64", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}", "unpack"]
    assert P.scons(proj, *args).returncode == 0
    edited = tmp_path / "cache" / "trees" / sources.tree_sha256 / "init" / "main.c"
    edited.chmod(0o644)
    edited.write_text(edited.read_text() + "/* not the verified tree */\n")
    r = P.scons(proj, *args, f"build={tmp_path / 'other'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "changed since it was verified" in r.stderr and "Unpacking linux-2.6.9" in r.stderr
    assert nar_sha256(tmp_path / "other" / "src" / "linux-2.6.9") == sources.tree_sha256
    # The archive's tree took its place in the store.
    assert nar_sha256(tmp_path / "cache" / "trees" / sources.tree_sha256) == sources.tree_sha256


# The last revision that copied the source tree per arch (cp -a) and built the kernels in their trees.
BEFORE_CHEAP_TREES = "d3ab522"


@pytest.fixture(scope="module")
def real_build(real_linux_tarball, tmp_path_factory):
    """One `scons arch=x86_64` of the real tree: (its project copy, the sources= directory, a work directory)."""
    from support.real_sources import make_real_sources
    work = tmp_path_factory.mktemp("real-cheap")
    sources = make_real_sources(real_linux_tarball, work / "sources")
    proj = P.copy_project(work / "proj")
    r = P.scons(proj, "arch=x86_64", f"sources={sources}", "offline=1", f"cache={work / 'cache'}", timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    return proj, sources, work


@pytest.mark.realkernel
@pytest.mark.slow
def test_the_real_pristine_tree_is_still_the_pinned_one_after_both_kernels_were_built(real_build):
    from mkdump.sources import load_sources
    proj, _, _ = real_build
    arch = proj / "build" / "x86_64"
    pristine = proj / "build" / "src" / "linux-2.6.9"
    assert [p for p in files(pristine) if p.stat().st_mode & 0o222] == []
    assert nar_sha256(pristine) == load_sources(proj / "patches" / "sources.toml")["linux"].tree_sha256
    for kind in ("minik", "system"):
        tree = arch / kind
        own = [p for p in files(tree) if not (pristine / p.relative_to(tree)).exists()
               or not shared(p, pristine / p.relative_to(tree))]
        assert 0 < len(own) < 60, (kind, len(own))
        assert not (tree / ".config").exists() and not list(tree.rglob("*.o")), kind
        assert (arch / "obj" / kind / "vmlinux").is_file()
        # repro-kconfig-no-timestamp: no build date in the header every file includes (ccache's direct mode
        # hashes it), nor in .config.
        autoconf = (arch / "obj" / kind / "include" / "linux" / "autoconf.h").read_text()
        assert autoconf.startswith("/*\n * Automatically generated C config: don't edit\n"
                                   " * Linux kernel version: 2.6.9\n */\n"), autoconf[:200]
        assert (arch / "obj" / kind / ".config").read_text().startswith(
            "#\n# Automatically generated make config: don't edit\n# Linux kernel version: 2.6.9\n#\n")


@pytest.mark.realkernel
@pytest.mark.slow
def test_the_real_outputs_are_byte_identical_to_those_of_the_trees_copied_and_built_in_place(real_build):
    """Shared trees and builds in object directories changed how the kernels are built, not what: every file the
    revision before them published is the same bytes (the manifest lists the stages and patches, which changed)."""
    proj, sources, work = real_build
    try:
        before = P.export_revision(BEFORE_CHEAP_TREES, work / "before")
    except RuntimeError as e:
        pytest.skip(f"this checkout cannot give revision {BEFORE_CHEAP_TREES} to build ({e})")
    r = P.scons(before, "arch=x86_64", f"sources={sources}", "offline=1", f"cache={work / 'before-cache'}",
                timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    same, differ = P.same_outputs(proj / "build", before / "build")
    assert differ == [], f"out/ files not byte-identical to revision {BEFORE_CHEAP_TREES}'s: {differ}"
    assert {f"x86_64/{name}" for name in ("vmlinux.bin", "minik-bzImage", "system-bzImage", "mkexec.ko",
                                          "mkdump-load-x86_64")} <= set(same)
