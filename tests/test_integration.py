"""The real scons, end to end, against the fixture kernel served over loopback."""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from support import project as P


def new_project(tmp_path, sources):
    return P.fixture_project(tmp_path / "proj", sources)


@pytest.fixture(scope="module")
def built(tmp_path_factory, sources, served):
    """One complete x86_64 run; later tests look at what it left."""
    tmp = tmp_path_factory.mktemp("built")
    proj = new_project(tmp, sources)
    args = ["arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp / 'cache'}"]
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return proj, args, r, tmp


def test_default_target_publishes_checked_artifacts(built):
    proj, args, r, tmp = built
    out = proj / "build" / "x86_64" / "out"
    names = sorted(os.listdir(out))
    for want in ("vmlinux.bin", "mkexec.ko", "manifest.json", "mkdump-load-x86_64"):
        assert want in names
    manifest = json.loads((proj / "build/x86_64/out/manifest.json").read_text())
    assert manifest["arch"] == "x86_64"
    assert manifest["checks"] and all(c["ok"] for c in manifest["checks"])
    produced = {o["path"]: o for o in manifest["outputs"]}
    assert produced["vmlinux.bin"]["size"] == (out / "vmlinux.bin").stat().st_size
    assert "PASS" in r.stderr and "FAIL" not in r.stderr
    # the trust-on-first-use warnings for the three unpinned mkdump files, and the lock file they wrote
    assert r.stderr.count("TRUSTED ON FIRST USE") == 3
    lock = (proj / "patches" / "sources.lock").read_text()
    assert P.MINIK in lock and P.MKEXEC in lock and P.MKDUTILS in lock
    # the signature database lives in the build root, so a read-only checkout builds and build= dirs are separate
    assert (proj / "build" / ".sconsign.dblite").is_file()
    assert not (proj / ".sconsign.dblite").exists()


def test_each_build_remembers_how_many_objects_its_configuration_compiles(built):
    """The progress line's total for the next build of the same configuration."""
    arch = built[0] / "build" / "x86_64"
    for kind in ("minik", "system"):
        config_id = json.loads((arch / "stamps" / f"config-{kind}.json").read_text())["values_sha256"]
        counts = json.loads((arch / "reports" / f"objects-{kind}.json").read_text())
        log = (arch / "logs" / f"build-{kind}.log").read_text()
        assert counts == {config_id: log.count(" -c -o ")} and counts[config_id] > 0


def test_manifest_records_pins_and_urls(built, sources, served):
    proj = built[0]
    manifest = json.loads((proj / "build" / "x86_64" / "out" / "manifest.json").read_text())
    linux = manifest["inputs"]["sources"]["linux"]
    assert linux["tree_sha256"] == sources.tree_sha256
    assert linux["url"] == f"{served.url}/mirror/{P.LINUX}"
    assert set(manifest["inputs"]["patches"]) == {"minik", "system"}


def test_noop_run_is_up_to_date_and_fast(built):
    proj, args, _, _ = built
    start = time.monotonic()
    r = P.scons(proj, "-q", *args)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, "a second run found work to do: " + r.stdout + r.stderr
    print(f"no-op scons -q: {elapsed:.2f} s")


def test_offline_fetch_from_cache_needs_no_network(built, sources, tmp_path):
    _, _, _, tmp = built
    proj = new_project(tmp_path, sources)
    shutil.copy(built[0] / "patches" / "sources.lock", proj / "patches" / "sources.lock")
    r = P.scons(proj, "fetch", "offline=1", f"cache={tmp / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TRUSTED ON FIRST USE" not in r.stderr


def test_offline_without_cache_fails_clearly(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "fetch", "offline=1", f"cache={tmp_path / 'empty-cache'}")
    assert r.returncode != 0
    assert "not in the cache" in r.stderr or "offline" in r.stderr
    assert "Traceback" not in r.stderr


def test_fetch_from_sources_dir_offline(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "fetch", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "cache" / "files").exists() or not os.listdir(tmp_path / "cache" / "files")


def test_stage_alias_stops_after_its_stage(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "patch", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    assert (arch / "minik" / "Makefile").is_file() and (arch / "system" / "Makefile").is_file()
    assert not (arch / "obj" / "minik" / ".config").exists()
    assert not (arch / "out").exists()
    report = (arch / "reports" / "patch-minik.txt").read_text()
    assert "keyword" in report


@pytest.mark.parametrize("argv, words", [
    (["arhc=x86_64"], "arhc"),
    (["arch=arm64"], "arch"),
    (["minik_mem=6"], "multiple of 4"),
    (["build=/proc/mkdump-build"], "build=/proc/mkdump-build cannot be created"),
    (["fetch", "mirror=file:///srv/mirror"], "mirror='file:///srv/mirror' is not an http:// or https:// URL"),
])
def test_bad_variables_stop_with_one_sentence_and_exit_2(sources, tmp_path, argv, words):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, *argv)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and words in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(proj)) == sorted(P.PROJECT_FILES), "a bad variable still made something"


def test_whitespace_in_build_is_refused_before_any_stage(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "build", "build=dir with spaces", "offline=1", f"sources={sources.dir}",
                f"cache={tmp_path / 'cache'}")
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert errors == [f"scons: *** build=dir with spaces: the path {proj / 'dir with spaces'} contains ' ', which "
                      "make and gcc's prefix maps cannot carry; choose a build directory without them."], r.stderr
    assert not (proj / "dir with spaces").exists()


def test_a_dollar_in_build_is_taken_literally_and_refused(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "fetch", "build=out$dir", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}")
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and f"build=out$dir: the path {proj / 'out$dir'} contains '$'" in errors[0], r.stderr
    assert not [p.name for p in proj.iterdir() if p.name.startswith("out")]


def test_dollars_in_values_are_taken_literally(sources, served, tmp_path):
    odd = tmp_path / "odd$dir"
    odd.mkdir()
    (odd / "mine.config").write_text("CONFIG_PCI=y\n")
    shutil.copy(P.ROOT / "configs" / "system-x86_64.config", odd / "usual.config")
    params = 'root=$dir ${__import__("os").mkdir("evaluated")}'
    proj, _, r = full_run(tmp_path, sources, served, f"minik_params={params}",
                          f"minik_fragment={odd / 'mine.config'}", f"system_config={odd / 'usual.config'}",
                          f"cache_dir={odd / 'team'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (proj / "evaluated").exists(), "SCons evaluated a ${...} of minik_params= as Python"
    out = proj / "build" / "x86_64" / "out"
    assert f"PARAM='{params}'" in (out / "mkdump-load-x86_64").read_text()
    manifest = json.loads((proj / "build/x86_64/out/manifest.json").read_text())
    assert manifest["inputs"]["options"]["minik_params"] == params
    assert manifest["inputs"]["options"]["minik_fragment_sha256"] is not None
    assert (odd / "team" / "config").is_file(), "SCons did not set up its cache in the cache_dir= given"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("odd")) == ["odd$dir"]


def test_help_lists_every_option(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "-h")
    assert r.returncode == 0
    for name in ("arch", "build", "cache", "sources", "mirror", "offline", "jobs", "verbose", "dump_driver",
                 "pae", "minik_fragment", "system_config", "minik_mem", "DESTDIR", "PREFIX"):
        assert f"\n  {name} " in r.stdout, name
    assert "sata-piix" in r.stdout and "boot-test" in r.stdout


def full_run(tmp_path, sources, served, *extra):
    proj = new_project(tmp_path, sources)
    args = ["arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}", *extra]
    r = P.scons(proj, *args)
    return proj, args, r


def test_same_inputs_give_identical_artifacts_and_manifest(built, sources, served, tmp_path):
    other, _, r = full_run(tmp_path, sources, served, "build=elsewhere")
    assert r.returncode == 0, r.stdout + r.stderr
    first = built[0] / "build" / "x86_64" / "out"
    second = other / "elsewhere" / "x86_64" / "out"
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    for name in os.listdir(first):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_install_lays_out_everything_under_destdir(built, tmp_path):
    proj, args, _, _ = built
    dest = tmp_path / "stage"
    r = P.scons(proj, "install", f"DESTDIR={dest}", "PREFIX=/opt/mkdump", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    # depmod's own files (which of them depends on the kmod version) are looked at below.
    assert [f for f in found if not f.startswith("lib/modules/2.6.9/modules.")] == sorted([
        "opt/mkdump/share/mkdump/x86_64/vmlinux.bin", "opt/mkdump/share/mkdump/x86_64/System.map",
        "opt/mkdump/share/mkdump/x86_64/manifest.json", "opt/mkdump/sbin/mkdump-load-x86_64",
        "lib/modules/2.6.9/extra/mkexec.ko", "boot/vmlinuz-2.6.9"]
        + ["boot/System.map-2.6.9", "boot/config-2.6.9", "opt/mkdump/sbin/mkdconv", "opt/mkdump/sbin/mkdinfo"])
    # module-init-tools 3.1 open each path of modules.dep as written: absolute.
    assert (dest / "lib/modules/2.6.9/modules.dep").read_text() == "/lib/modules/2.6.9/extra/mkexec.ko:\n"
    assert (dest / "boot/config-2.6.9").read_bytes() == (proj / "build/x86_64/obj/system/.config").read_bytes()
    # mkdutils, built for this machine, runs here
    run = subprocess.run([dest / "opt/mkdump/sbin/mkdinfo"], input=b"dump", capture_output=True)
    assert run.stdout == b"4 bytes\n"
    from elftools.elf.elffile import ELFFile
    with open(dest / "opt/mkdump/sbin/mkdinfo", "rb") as f:
        assert ELFFile(f).get_section_by_name(".symtab") is None, "shipped stripped, as distributions ship tools"
    manifest = json.loads((proj / "build/x86_64/out/manifest.json").read_text())
    assert manifest["inputs"]["sources"]["mkdutils"]["file"] == "mkdutils.taz"
    assert {c["name"] for c in manifest["checks"] if c["ok"]} >= {"mkdutils mkdconv", "mkdutils mkdinfo"}
    host_cc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert manifest["inputs"]["toolchain"]["mkdutils"] == {"cc": host_cc, "cc_flags": ["-std=gnu89", "-fcommon", "-Wno-error"]}
    out = proj / "build" / "x86_64" / "out"
    assert (dest / "opt/mkdump/share/mkdump/x86_64/vmlinux.bin").read_bytes() == (out / "vmlinux.bin").read_bytes()
    script = (dest / "opt/mkdump/sbin/mkdump-load-x86_64").read_text()
    assert "/opt/mkdump/share/mkdump/x86_64/vmlinux.bin" in script


def test_two_installs_are_identical(built, tmp_path):
    proj, args, _, _ = built
    def state(dest):
        return {str(p.relative_to(dest)): (p.is_dir() or p.read_bytes(), p.stat().st_mode,
                                          p.stat().st_mtime_ns if p.is_file()
                                          or str(p.relative_to(dest)).startswith("lib/modules/2.6.9") else 0)
                for p in dest.rglob("*")}
    for name in ("a", "b"):
        r = P.scons(proj, "install", f"DESTDIR={tmp_path / name}", *args)
        assert r.returncode == 0, r.stdout + r.stderr
    first = state(tmp_path / "a")
    assert "lib/modules/2.6.9/modules.dep" in first and "lib/modules/2.6.9/kernel" in first
    assert first == state(tmp_path / "b")


def test_install_without_destdir_says_what_to_do(built):
    proj, args, _, _ = built
    r = P.scons(proj, "install", *args)
    assert r.returncode != 0
    assert "DESTDIR" in r.stderr and "Traceback" not in r.stderr


def test_reject_stops_with_patch_file_and_hunk_and_leaves_no_tree(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    P.add_local_patch(proj, "minik", "bad.patch",
                      "Deliberately wrong context.\n"
                      "--- a/Makefile\n+++ b/Makefile\n@@ -1,3 +1,3 @@\n-VERSION = 3\n+VERSION = 4\n"
                      " PATCHLEVEL = 6\n SUBLEVEL = 9\n")
    r = P.scons(proj, "patch", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}")
    assert r.returncode != 0
    error = [l for l in r.stderr.splitlines() if l.startswith("mkdump: error:")]
    assert error and "compat/bad.patch" in error[0] and "Makefile" in error[0] and "@@ -1,3 +1,3 @@" in error[0]
    arch = proj / "build" / "x86_64"
    assert not (arch / "minik").exists()
    assert not [n for n in os.listdir(arch) if n.startswith(".minik")], "a staging tree was left behind"
    assert "rejected" in (arch / "reports" / "patch-minik.txt").read_text()
    assert "Traceback" not in r.stderr


def test_forbidden_user_fragment_fails_with_the_reason(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    frag = tmp_path / "mine.config"
    frag.write_text("CONFIG_SMP=y\n")
    r = P.scons(proj, "config", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}",
                f"minik_fragment={frag}")
    assert r.returncode != 0
    assert "SMP" in r.stderr and "mine.config:1" in r.stderr
    assert "Traceback" not in r.stderr


def test_editing_the_user_fragment_reruns_config(built, tmp_path):
    proj, args, _, _ = built
    frag = tmp_path / "mine.config"
    frag.write_text("CONFIG_BINFMT_ELF=y\n")
    try:
        assert P.scons(proj, "config", f"minik_fragment={frag}", *args).returncode == 0
        assert P.scons(proj, "-q", "config", f"minik_fragment={frag}", *args).returncode == 0
        frag.write_text("CONFIG_SMP=y\n")
        r = P.scons(proj, "config", f"minik_fragment={frag}", *args)
        assert r.returncode != 0 and "mine.config:1" in r.stderr, r.stdout + r.stderr
    finally:
        assert P.scons(proj, *args).returncode == 0


def _mtimes(arch_dir):
    """The stamps of the arch and the arch-independent ones beside it (unpack), by name."""
    return {p.name: p.stat().st_mtime_ns for d in (arch_dir, arch_dir.parent) for p in (d / "stamps").iterdir()}


def test_changing_an_option_reruns_config_and_build_only(built, tmp_path):
    proj, args, _, _ = built
    arch = proj / "build" / "x86_64"
    before = _mtimes(arch)
    r = P.scons(proj, "build", "dump_driver=sata-piix", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    after = _mtimes(arch)
    for same in ("unpack-linux.json", "patch-minik.json", "patch-system.json", "config-system.json"):
        assert after[same] == before[same], same
    for changed in ("config-minik.json", "build-minik.json"):
        assert after[changed] != before[changed], changed
    assert "SCSI_ATA_PIIX" in (arch / "obj" / "minik" / ".config").read_text()
    # back to the default, so the module's other tests see the original build
    assert P.scons(proj, *args).returncode == 0


def test_changing_a_patch_recreates_the_tree_from_the_pristine_sources(built):
    proj, args, _, _ = built
    arch = proj / "build" / "x86_64"
    before = _mtimes(arch)
    series = proj / "patches" / "system.series"
    local = proj / "patches" / "compat" / "note.patch"
    original = P.add_local_patch(proj, "system", "note.patch",
                                 "--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,3 @@\n VERSION = 2\n"
                                 "+# mkdump-build test note\n PATCHLEVEL = 6\n")
    try:
        r = P.scons(proj, "patch", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        after = _mtimes(arch)
        assert after["unpack-linux.json"] == before["unpack-linux.json"]
        assert after["patch-system.json"] != before["patch-system.json"]
        assert after["patch-minik.json"] == before["patch-minik.json"]
        assert (arch / "system" / "Makefile").read_text().count("# mkdump-build test note") == 1
        r = P.scons(proj, "patch", *args)   # unchanged: nothing re-runs, and the note is not applied twice
        again = _mtimes(arch)
        for stage in ("unpack-linux.json", "patch-minik.json", "patch-system.json"):
            assert again[stage] == after[stage], stage
        # the new system tree has no .config yet, so its config and build stamps no longer vouch for anything:
        # they run again (the stamps are not removed while the graph is read; scons -n says what would run)
        r = P.scons(proj, "-n", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "would run config (x86_64/stamps/config-system.json)" in r.stdout
        assert "would run build (x86_64/stamps/build-system.json)" in r.stdout
        assert "would run config (x86_64/stamps/config-minik.json)" not in r.stdout
        assert _mtimes(arch) == again
    finally:
        series.write_text(original)
        local.unlink()
    assert P.scons(proj, *args).returncode == 0
    assert "# mkdump-build test note" not in (arch / "system" / "Makefile").read_text()


def test_install_refuses_two_arches_into_one_destdir(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "install", "arch=all", f"DESTDIR={tmp_path / 'stage'}")
    assert r.returncode == 2
    assert "one arch at a time" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "stage").exists()


def test_system_config_is_the_users_own(built, tmp_path):
    proj, args, _, _ = built
    arch = proj / "build" / "x86_64"
    usual = tmp_path / "usual.config"
    usual.write_text((arch / "obj" / "system" / ".config").read_text().replace("# CONFIG_SMP is not set", "CONFIG_SMP=y"))
    try:
        r = P.scons(proj, "config", f"system_config={usual}", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "CONFIG_SMP=y" in (arch / "obj" / "system" / ".config").read_text()
        assert "# CONFIG_SMP is not set" in (arch / "obj" / "minik" / ".config").read_text()

        no_modules = tmp_path / "nomod.config"
        no_modules.write_text(usual.read_text().replace("CONFIG_MODULES=y", "# CONFIG_MODULES is not set"))
        r = P.scons(proj, "config", f"system_config={no_modules}", *args)
        assert r.returncode != 0
        assert "MODULES" in r.stderr and "Traceback" not in r.stderr
    finally:
        assert P.scons(proj, *args).returncode == 0


def test_system_config_from_a_distribution_and_defconfig(built, tmp_path):
    proj, args, _, _ = built
    arch = proj / "build" / "x86_64"
    distro = tmp_path / "distro.config"
    own = (arch / "obj" / "system" / ".config").read_text()
    distro.write_text("# Linux kernel version: 2.6.9-34.ELsmp\n" + own + "CONFIG_DISKDUMP=m\nCONFIG_TUX=m\n")
    try:
        r = P.scons(proj, "config", f"system_config={distro}", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"2 line(s) of {distro} left out" in r.stderr
        report = (arch / "reports" / "config-system.txt").read_text()
        n = len(distro.read_text().splitlines())
        assert f"  line {n - 1}: CONFIG_DISKDUMP=m: no Kconfig file of Linux 2.6.9 defines it for x86_64" in report
        assert f"  line {n}: CONFIG_TUX=m:" in report

        r = P.scons(proj, "config", "system_config=defconfig", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "CONFIG_SMP=y" in (arch / "obj" / "system" / ".config").read_text()
        assert "defconfig (arch/x86_64/defconfig)" in (arch / "stamps" / "config-system.json").read_text()

        other = tmp_path / "i386.config"
        other.write_text("# Linux kernel version: 2.6.9\nCONFIG_X86=y\nCONFIG_MODULES=y\n")
        r = P.scons(proj, "config", f"system_config={other}", *args)
        assert r.returncode == 2 and "is an i386 configuration, not an x86_64 one" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        assert P.scons(proj, *args).returncode == 0


def test_build_failure_shows_command_error_and_log(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    P.add_local_patch(proj, "minik", "break.patch",
                      "--- a/init/main.c\n+++ b/init/main.c\n@@ -1,2 +1,3 @@\n+#error deliberately broken\n /*\n"
                      "  *  linux/init/main.c (test fixture)\n")
    r = P.scons(proj, "build", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}")
    assert r.returncode != 0
    error = r.stderr[r.stderr.index("mkdump: error:"):]
    assert "init/main.c" in error and "deliberately broken" in error
    log = proj / "build" / "x86_64" / "logs" / "build-minik.log"
    assert str(log) in error and "deliberately broken" in log.read_text()
    assert "Traceback" not in r.stderr


def test_kbuild_output_only_with_verbose(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    args = ["build", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}"]
    quiet = P.scons(proj, *args)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    log = proj / "build" / "x86_64" / "logs" / "build-minik.log"
    # The full command: built in obj/minik, the source named in the tree (make's VPATH).
    assert f"-c -o init/main.o {proj / 'build' / 'x86_64' / 'minik'}/init/main.c" in log.read_text()
    assert "is ready" in log.read_text() and "is ready" not in quiet.stdout + quiet.stderr
    (proj / "build" / "x86_64" / "stamps" / "build-minik.json").unlink()
    loud = P.scons(proj, *args, "verbose=1")
    assert loud.returncode == 0, loud.stdout + loud.stderr
    assert "Kernel: arch/x86_64/boot/bzImage is ready" in loud.stdout + loud.stderr


def _snapshot(root):
    """Every path under `root` with its size and modification time."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def test_dry_run_writes_nothing_and_says_what_would_run(built, tmp_path):
    proj, args, _, _ = built
    build = proj / "build"
    config = build / "x86_64" / "obj" / "minik" / ".config"
    saved = tmp_path / "config"
    shutil.copy2(config, saved)
    config.unlink()     # the minik config stamp no longer vouches for anything
    try:
        before = _snapshot(build)
        r = P.scons(proj, "-n", "dump_dev=/dev/sdb2", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        would = sorted(l for l in r.stdout.splitlines() if l.startswith("mkdump: would run"))
        # what SCons knows before running anything: the stages whose own inputs changed (the stamps after them
        # are rewritten only when run, so their dependents show up once the first has run)
        assert would == ["mkdump: would run config (x86_64/stamps/config-minik.json)",
                         "mkdump: would run load_script (x86_64/out/mkdump-load-x86_64)",
                         "mkdump: would run manifest (x86_64/out/manifest.json)"]
        assert _snapshot(build) == before
        # nor on a build directory that does not exist yet
        r = P.scons(proj, "-n", "build=fresh", *args)
        assert r.returncode == 0 and "would run fetch" in r.stdout, r.stdout + r.stderr
        assert not (proj / "fresh").exists()
    finally:
        shutil.copy2(saved, config)
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_dump_dev_the_mini_kernel_has_no_driver_for_is_refused(built):
    proj, args, _, _ = built
    script = proj / "build" / "x86_64" / "out" / "mkdump-load-x86_64"
    before = script.read_bytes()
    r = P.scons(proj, "dump_dev=/dev/sdb2", *args)      # the default family drives IDE disks only
    assert r.returncode != 0
    assert ("dump_dev=/dev/sdb2 is a disk of block major 8, but the mini kernel does not build in CONFIG_BLK_DEV_SD"
            in r.stdout + r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    assert script.read_bytes() == before
    r = P.scons(proj, "dump_dev=/dev/hda2", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nDUMP_DEV='0x300002'\n" in script.read_text()
    r = P.scons(proj, *args)
    assert r.returncode == 0 and script.read_bytes() == before, r.stdout + r.stderr


def _tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _wait_for(predicate, what, seconds=60, shown=lambda: ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{shown()}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (packages.debian has it)")
@pytest.mark.parametrize("choice, broken", [("PREEMPT", False), ("SMP", True)])
def test_menuconfig_in_a_terminal_saves_a_fragment_and_audits_it(built, tmp_path, choice, broken):
    """scons menuconfig through a real terminal: search an option, switch it on, quit saving."""
    proj, args, _, _ = built
    save, err, status = tmp_path / "mine.config", tmp_path / "stderr", tmp_path / "status"
    config = proj / "build" / "x86_64" / "obj" / "minik" / ".config"
    before = config.read_bytes()
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "SCons", "menuconfig", "kernel=minik",
                                                 f"save={save}", *args])
    session = f"mkdump-menuconfig-{os.getpid()}-{choice}"
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", "-c", str(proj),
          f"env -u SOURCE_DATE_EPOCH TERM=xterm {command} 2>{shlex.quote(str(err))}; echo $? >{shlex.quote(str(status))}")
    try:
        pane = lambda: _tmux("capture-pane", "-p", "-t", session)  # noqa: E731
        _wait_for(lambda: "(Top)" in pane(), "the menu", shown=pane)
        # show-name mode (C), so that entries show their symbol; jump to the symbol (/)
        for keys in (["C"], ["/"], [choice], ["Enter"]):
            _tmux("send-keys", "-t", session, *keys)
            time.sleep(0.5)
        _wait_for(lambda: f"<{choice}>" in pane(), f"the {choice} entry", shown=pane)
        for keys in (["y"], ["Q"], ["y"]):
            _tmux("send-keys", "-t", session, *keys)
            time.sleep(0.5)
        _wait_for(status.exists, "scons to end", 120, shown=pane)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    said = err.read_text()
    assert status.read_text().strip() == "0", said
    assert [l for l in save.read_text().splitlines() if not l.startswith("#")] == [f"CONFIG_{choice}=y"]
    assert f"saved 1 changed option(s) as a fragment to {save}; build with minik_fragment={save}" in said
    assert ("CONFIG_SMP: actual y, but" in said) == broken
    assert config.read_bytes() == before, "the tree's own .config is left as the build made it"
