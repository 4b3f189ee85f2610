"""`scons repro` end to end on the fixture kernel: identical outputs are reported identical, with every variation
really applied (or skipped with its reason), and a build that embeds the clock is caught and named."""
import difflib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from mkdump import kbuild
from support import fixture_kernel
from support import project as P


@pytest.fixture
def open_dir():
    """A directory every user may traverse (pytest's own are closed to others), so that as root build b can run
    as another user; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="mkdump-repro-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def fixture_patch(rel, old, new, note):
    """A local patch for the fixture file `rel` replacing `old` with `new`, made against the fixture tree."""
    text = fixture_kernel.fixture_files()[rel].decode()
    assert text.count(old) == 1, f"{rel} should hold {old!r} once"
    diff = difflib.unified_diff(text.splitlines(keepends=True), text.replace(old, new).splitlines(keepends=True),
                                f"a/{rel}", f"b/{rel}")
    return note + "\n\n" + "".join(diff)


def new_project(d, sources):
    proj = P.fixture_project(d / "proj", sources)
    for p in [proj, *proj.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() else 0))
    return proj


# Writes what the build really ran under into the mini kernel tree, outside out/.
RECORD = ("\t$(Q)$(if $(KBUILD_MODULES),rm -rf $(MODVERDIR) &&) mkdir -p $(MODVERDIR)\n",
          "\t$(Q)$(if $(KBUILD_MODULES),rm -rf $(MODVERDIR) &&) mkdir -p $(MODVERDIR)\n"
          "\t$(Q)printf '%s\\n' \"uid=`id -u`\" \"umask=`umask`\" \"host=`hostname`\" \"user=$$USER\" "
          "\"home=$$HOME\" > .repro-conditions\n")


def variation_lines(stderr):
    return {l.split()[2].rstrip(":"): l for l in stderr.splitlines()
            if l.startswith("repro:   ") and l.split()[1] in ("varied", "SKIPPED")}


def test_repro_reports_identical_outputs_under_really_different_conditions(sources, served, open_dir):
    proj = new_project(open_dir, sources)
    P.add_local_patch(proj, "minik", "record-conditions.patch",
                      fixture_patch("Makefile", *RECORD, "Test only: record the build's conditions."))
    cache = open_dir / "cache"
    r = P.scons(proj, "repro", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={cache}", "keep=1",
                timeout=1200)
    assert r.returncode == 0, r.stdout + r.stderr
    err = r.stderr
    work = proj / "build" / "repro"
    assert "repro: All 11 published files are identical in both builds." in err
    for name in ("vmlinux.bin", "minik-bzImage", "minik-System.map", "system-bzImage", "system-System.map",
                 "system-config", "system-modules.tar", "mkexec.ko", "mkdutils.tar", "manifest.json",
                 "mkdump-load-x86_64"):
        rows = [l for l in err.splitlines() if l.startswith(f"repro: x86_64/{name} ")]
        assert len(rows) == 1 and rows[0].split()[-1] == "identical", name
    # progress while the inner builds ran, and each build's full log
    assert "repro a: mkdump: [x86_64] patching the minik tree" in err
    assert "repro b: mkdump: [x86_64] patching the minik tree" in err
    assert "TRUSTED ON FIRST USE" in (work / "a.log").read_text()
    assert (work / "report.txt").read_text().rstrip().endswith("identical in both builds.")
    # nothing of the outer build was built
    assert not (proj / "build" / "x86_64").exists()

    # what each build really ran under
    cond = {n: dict(l.split("=", 1) for l in (work / n / "x86_64" / "obj" / "minik" / ".repro-conditions").read_text().split())
            for n in ("a", "b")}
    assert (cond["a"]["umask"], cond["b"]["umask"]) == ("0022", "0077")
    assert cond["a"]["user"] != cond["b"]["user"] and cond["a"]["home"] != cond["b"]["home"]
    assert cond["b"]["home"] == str(work / "home-b")
    varied = variation_lines(err)
    assert set(varied) == {"build", "environment", "umask", "jobs", "time", "host", "user"}
    if os.geteuid() == 0 and "varied" in varied["user"]:
        assert cond["a"]["uid"] == "0" and cond["b"]["uid"] == str(os.stat(work / "b").st_uid) != "0"
        assert (work / "b" / "x86_64" / "out" / "vmlinux.bin").stat().st_uid != 0
    else:
        assert "SKIPPED" in varied["user"] and cond["a"]["uid"] == cond["b"]["uid"]
        assert ("needs root" in varied["user"]) == (os.geteuid() != 0)
    if "varied" in varied["host"]:
        assert cond["a"]["host"] == socket.gethostname() != cond["b"]["host"]
        assert cond["b"]["host"] in varied["host"]
    else:
        assert cond["a"]["host"] == cond["b"]["host"]
    # without SOURCE_DATE_EPOCH both builds use the fixed default
    for n in ("a", "b"):
        manifest = json.loads((work / n / "x86_64" / "out" / "manifest.json").read_text())
        assert manifest["source_date_epoch"] == kbuild.DEFAULT_SOURCE_DATE_EPOCH
    # the jobs variation reached make
    assert "-j1]" in (work / "a.log").read_text() and "-j1]" not in (work / "b.log").read_text()

    # a second run starts afresh and, without keep=1, leaves only its logs and report
    r = P.scons(proj, "repro", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={cache}", timeout=1200)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removing the previous run's" in r.stderr
    assert sorted(os.listdir(work)) == ["a.log", "b.log", "report.txt"]


# 2.6.9's mkcompile_h wrote `date` into compile.h; this puts the clock (to the nanosecond) into the banner again.
CLOCK = ("'\\#define LINUX_COMPILE_HOST \"fixture\"'",
         "\"\\#define LINUX_COMPILE_HOST \\\"fixture-$$(date +%s%N)\\\"\"")


def test_repro_catches_and_names_a_build_that_embeds_the_clock(sources, served, open_dir):
    proj = new_project(open_dir, sources)
    P.add_local_patch(proj, "minik", "embed-clock.patch",
                      fixture_patch("Makefile", *CLOCK, "Test only: embed the build time in the banner."))
    r = P.scons(proj, "repro", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={open_dir / 'cache'}",
                env={"SOURCE_DATE_EPOCH": "1234567890"}, timeout=1200)
    assert r.returncode != 0
    work = proj / "build" / "repro"
    errors = [l for l in r.stderr.splitlines() if l.startswith("mkdump: error:")]
    assert len(errors) == 1, r.stderr
    assert "The two builds differ in" in errors[0] and "x86_64/vmlinux.bin" in errors[0]
    assert f"{work}/a and {work}/b" in errors[0]
    row = [l for l in r.stderr.splitlines() if l.startswith("repro: x86_64/vmlinux.bin ")]
    assert row and row[0].split()[-1] == "DIFFERENT"
    assert [l for l in r.stderr.splitlines() if l.startswith("repro: x86_64/mkexec.ko ")][0].split()[-1] == \
        "identical", "only what the clock reaches differs"
    for n in ("a", "b"):
        assert (work / n / "x86_64" / "out" / "vmlinux.bin").is_file(), "both builds are kept"
        manifest = json.loads((work / n / "x86_64" / "out" / "manifest.json").read_text())
        assert manifest["source_date_epoch"] == 1234567890, "the user's SOURCE_DATE_EPOCH reached both builds"
    if shutil.which("diffoscope"):
        report = work / "diffoscope-x86_64-vmlinux.bin.txt"
        assert str(report) in errors[0]
        text = report.read_text()
        assert "Linux version 2." in text, "the hex dump shows the banner the clock went into"
        assert any(l.startswith("-0000") for l in text.splitlines())
        assert any(l.startswith("+0000") for l in text.splitlines())
    else:
        assert "diffoscope is not installed" in errors[0]
    assert "Traceback" not in r.stderr


def test_a_failing_inner_build_stops_repro_with_its_log(sources, served, open_dir):
    proj = new_project(open_dir, sources)
    P.add_local_patch(proj, "minik", "break.patch",
                      fixture_patch("init/main.c", "char saved_command_line[256];\n",
                                    "#error deliberately broken\n", "Test only: break the build."))
    r = P.scons(proj, "repro", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={open_dir / 'cache'}",
                timeout=1200)
    assert r.returncode == 2
    work = proj / "build" / "repro"
    errors = [l for l in r.stderr.splitlines() if l.startswith("mkdump: error:")]
    assert errors[-1].startswith("mkdump: error: Build a of the repro run failed (exit status 2)")
    assert f"{work}/a.log" in errors[-1]
    assert "deliberately broken" in (work / "a.log").read_text()
    assert not (work / "b.log").exists(), "b does not start once a has failed"
    assert "Traceback" not in r.stderr
