"""benchmarks/benchlib.py on small inputs, and benchmarks/run end to end on the fixture kernel (no time asserted)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkdump.patching import parse_series

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import benchlib as B  # noqa: E402


def test_median_odd_even_and_empty():
    assert B.median([3.0, 1.0, 2.0]) == 2.0
    assert B.median([4, 1, 3, 2]) == 2.5
    with pytest.raises(ValueError):
        B.median([])


@pytest.mark.parametrize("op,limit,value,met", [
    ("<", 0.5, 0.49, True), ("<", 0.5, 0.5, False), ("<=", 5.0, 5.0, True), ("<=", 5.0, 5.01, False),
    ("<=", 1.5, None, None),
    ("excludes", ("unpack", "patch"), ["config-minik", "build-minik", "manifest"], True),
    ("excludes", ("unpack", "patch"), ["patch-minik", "config-minik"], False),
    ("excludes", ("unpack", "patch"), [], True),
])
def test_goal(op, limit, value, met):
    assert B.Goal(op, limit, "text").met(value) is met


def test_ratio_and_overhead():
    assert B.ratio(3.0, 2.0) == 1.5
    assert B.ratio(None, 2.0) is None and B.ratio(1.0, 0) is None
    assert B.overhead_percent(105.0, 100.0) == pytest.approx(5.0)
    assert B.overhead_percent(None, 100.0) is None


def test_value_text_shows_median_and_spread():
    f = B.Figure("noop", "no-op", 0.21, "s", [0.25, 0.2, 0.21])
    assert f.value_text() == "0.210 s (median of 3: 0.200 s..0.250 s)"
    assert B.Figure("x", "x", 123.45, "s", [123.45]).value_text() == "123.5 s"
    assert B.Figure("x", "x", 3.21, "%").value_text() == "+3.2 %"
    assert B.Figure("x", "x", 0.3, "x").value_text() == "0.30x"
    assert B.Figure("x", "x", []).value_text() == "(none)"
    assert B.Figure("x", "x", ["a", "b"]).value_text() == "a, b"
    assert B.Figure("x", "x").value_text() == "not measured"


def test_format_table_rows_goals_and_notes():
    figs = [B.Figure("noop", "no-op scons", 0.2, "s", goal=B.Goal("<", 0.5, "< 0.5 s"), note="nothing re-ran"),
            B.Figure("ratio", "unpack / tar", 1.7, "x", goal=B.Goal("<=", 1.5, "<= 1.5x")),
            B.Figure("info", "by hand", 100.0, "s"),
            B.Figure("cc", "ccache", goal=B.Goal("<=", 0.35, "<= 0.35x"), note="not installed")]
    lines = B.format_table(figs).splitlines()
    assert lines[0].split() == ["figure", "value", "goal", "met?"]
    assert set(lines[1]) == {"-", " "}
    rows = {line.split("  ")[0]: line for line in lines[2:] if not line.startswith("    ")}
    assert rows["no-op scons"].endswith("yes") and "< 0.5 s" in rows["no-op scons"]
    assert rows["unpack / tar"].endswith("NO")
    assert rows["by hand"].endswith("-")
    assert "not measured" in rows["ccache"] and rows["ccache"].endswith("-")
    assert lines[lines.index(rows["no-op scons"]) + 1] == "    nothing re-ran"
    # The goal column starts at the same place on every row.
    starts = {line.index(g) for line, g in ((rows["no-op scons"], "< 0.5"), (rows["unpack / tar"], "<= 1.5x"))}
    assert len(starts) == 1


def test_report_json():
    figs = [B.Figure("ratio", "unpack / tar", 1.2, "x", [1.1, 1.2, 1.3], B.Goal("<=", 1.5, "<= 1.5x"))]
    data = json.loads(B.report_json(figs, machine={"cores": 2}, options={"repeat": 3}))
    assert data["machine"] == {"cores": 2} and data["options"] == {"repeat": 3}
    assert data["figures"] == [{"key": "ratio", "label": "unpack / tar", "value": 1.2, "unit": "x",
                                "runs": [1.1, 1.2, 1.3], "goal": "<= 1.5x", "met": True, "note": ""}]


def test_machine_parsers():
    cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU 3000\nflags\t: fpu\n"
    assert B.parse_cpuinfo(cpuinfo) == "Some CPU 3000"
    assert B.parse_cpuinfo("processor : 0\n") is None
    assert B.parse_meminfo_gib("MemTotal:       24641536 kB\nMemFree: 1 kB\n") == 23.5
    text = B.format_machine(B.machine_info())
    assert text.startswith("date ") and "cores" in text


SERIES = """# minik
source:minik
compat/a.patch arch=x86_64
compat/b.patch arch=i386
compat/c.patch -p0
"""
SYSTEM_SERIES = "source:mkexec/PATCH/mkexec-v1.patch\ncompat/a.patch arch=x86_64\n"


def _steps(arch="x86_64"):
    series = {"minik": parse_series(SERIES, arch=arch, filename="minik.series"),
              "system": parse_series(SYSTEM_SERIES, arch=arch, filename="system.series")}
    return B.by_hand_steps(
        arch=arch, work="/w", linux_archive="/s/linux.tar.bz2", mkexec_archive="/s/mkexec.taz", series=series,
        source_files={"linux": "/s/linux.tar.bz2", "minik": "/s/minik.patch", "mkexec": "/s/mkexec.taz"},
        patches_dir="/p", our_configs={"minik": "/b/minik/.config", "system": "/b/system/.config"},
        config_args=["ARCH=" + arch, "CC=gcc -fno-pie", "HOSTCC=gcc"],
        build_args={k: ["ARCH=" + arch, f"CC=gcc -fno-pie -ffile-prefix-map=/w/{k}={k}", "HOSTCC=gcc"]
                    for k in ("minik", "system")},
        mkexec_args=["ARCH=" + arch, "CC=gcc -ffile-prefix-map=/w/mkexec=mkexec", "HOSTCC=gcc"], jobs=2,
        make_targets={"minik": ["bzImage"], "system": ["bzImage", "modules"]}, release="2.6.9")


def test_by_hand_patches_follow_the_series_in_order_per_arch():
    steps = _steps()
    patches = [(s.cwd, s.argv[1], s.argv[-1], s.ok) for s in steps if s.argv[0] == "patch"]
    assert patches == [
        ("/w/minik", "-p1", "/s/minik.patch", (0, 1)),          # upstream: its $Id$ rejects are tolerated
        ("/w/minik", "-p1", "/p/compat/a.patch", (0,)),
        ("/w/minik", "-p0", "/p/compat/c.patch", (0,)),
        ("/w/system", "-p1", "/w/mkexec-src/PATCH/mkexec-v1.patch", (0, 1)),
        ("/w/system", "-p1", "/p/compat/a.patch", (0,)),
    ]
    i386 = [s.argv[-1] for s in _steps("i386") if s.argv[0] == "patch"]
    assert i386 == ["/s/minik.patch", "/p/compat/b.patch", "/p/compat/c.patch", "/w/mkexec-src/PATCH/mkexec-v1.patch"]


def test_by_hand_order_config_and_make_commands():
    steps = _steps()
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=["unpack+patch", "config", "build", "mkexec"].index)
    argvs = [s.argv for s in steps]
    assert argvs[1] == ("tar", "xf", "/s/linux.tar.bz2", "-C", "/w/src", "--strip-components=1")
    # Each tree is copied from the pristine one before its first patch.
    copy = argvs.index(("cp", "-a", "/w/src", "/w/minik"))
    assert copy < next(i for i, a in enumerate(argvs) if a[0] == "patch")
    config = [(s.cwd, s.argv) for s in steps if s.phase == "config"]
    assert config == [
        ("/w/minik", ("cp", "/b/minik/.config", "/w/minik/.config")),
        ("/w/minik", ("make", "ARCH=x86_64", "oldconfig", "ARCH=x86_64", "CC=gcc -fno-pie", "HOSTCC=gcc")),
        ("/w/system", ("cp", "/b/system/.config", "/w/system/.config")),
        ("/w/system", ("make", "ARCH=x86_64", "oldconfig", "ARCH=x86_64", "CC=gcc -fno-pie", "HOSTCC=gcc")),
    ]
    builds = [(s.cwd, s.argv) for s in steps if s.phase == "build"]
    assert builds == [
        ("/w/minik", ("make", "-j2", "ARCH=x86_64", "CC=gcc -fno-pie -ffile-prefix-map=/w/minik=minik",
                      "HOSTCC=gcc", "V=1", "bzImage")),
        ("/w/system", ("make", "-j2", "ARCH=x86_64", "CC=gcc -fno-pie -ffile-prefix-map=/w/system=system",
                       "HOSTCC=gcc", "V=1", "bzImage", "modules")),
    ]
    mkexec = steps[-1]
    assert mkexec.cwd == "/w/mkexec" and mkexec.argv[:6] == (
        "make", "ARCH=x86_64", "KVER=2.6.9", "KDIR=/w/system", "KMODDIR=/lib/modules/2.6.9/extra", "ARCH=x86_64")
    assert ("ln", "-s", "asm-x86_64", "/w/mkexec/include/asm") in argvs
    assert steps[-1].shell().startswith("(cd /w/mkexec && make ARCH=x86_64 ")
    assert mkexec.argv[6:] == ("CC=gcc -ffile-prefix-map=/w/mkexec=mkexec", "HOSTCC=gcc")
    assert "'CC=gcc -ffile-prefix-map=/w/mkexec=mkexec'" in steps[-1].shell()


DEBUG_TIME = """scons: Reading SConscript files ...
Command execution time: /b/x86_64/stamps/toolchain.json: 0.154379 seconds
Command execution time: /b/fetch/linux.json: 0.130921 seconds
Command execution time: /b/x86_64/stamps/unpack-linux.json: 12.5 seconds
Command execution time: /b/x86_64/stamps/patch-minik.json: 1.25 seconds
Command execution time: /b/x86_64/stamps/config-minik.json: 2.0 seconds
Command execution time: /b/x86_64/stamps/build-minik.json: 20.0 seconds
Command execution time: /b/x86_64/stamps/build-system.json: 30.0 seconds
Command execution time: /b/x86_64/stamps/mkexec.json: 1.5 seconds
Command execution time: /b/x86_64/out/system-config: 3.0 seconds
Command execution time: /b/x86_64/out/mkdump-load-x86_64: 0.002 seconds
Command execution time: /b/x86_64/out/manifest.json: 0.003 seconds
Total build time: 72.0 seconds
"""


def test_stage_and_phase_times_from_debug_time():
    # With stages running at once, SCons names the check stage by one of the out/ files it publishes.
    stages = B.stage_times(DEBUG_TIME)
    assert stages["fetch-linux"] == pytest.approx(0.130921)
    assert stages["build-system"] == 30.0 and stages["mkdump-load-x86_64"] == 0.002
    assert set(stages) == {"toolchain", "fetch-linux", "unpack-linux", "patch-minik", "config-minik", "build-minik",
                           "build-system", "mkexec", "check", "mkdump-load-x86_64", "manifest"}
    phases = B.phase_times(stages)
    assert phases["unpack+patch"] == pytest.approx(13.75)
    assert phases["build"] == 50.0 and phases["mkexec"] == 1.5
    assert phases["check+publish"] == pytest.approx(3.005)
    assert B.stage_times("scons: done building targets.\n") == {}


def test_ccache_stats():
    text = "cache_miss\t7\ndirect_cache_hit\t3\npreprocessed_cache_hit\t2\nstats_updated_timestamp\t0\nbad line\n"
    stats = B.parse_ccache_stats(text)
    assert stats["cache_miss"] == 7 and "bad line" not in stats
    assert B.ccache_counts(stats) == (5, 7)
    assert B.ccache_counts({}) == (0, 0)


def test_goals_are_issue_15s():
    g = B.GOALS
    assert g["cold"].met(-10.0) and not g["cold"].met(-9.9)            # ours / by hand <= 0.90x
    assert g["noop"].met(0.2) and not g["noop"].met(0.21)
    assert g["config_stages"].met(["config-minik", "build-minik"]) and not g["config_stages"].met(["patch-minik"])
    assert g["config_time"].met(2.2) and not g["config_time"].met(2.3)
    assert g["edit"].met(0.15) and not g["edit"].met(0.16)
    assert g["unpack"].met(1.5) and not g["unpack"].met(1.51)
    assert g["ccache"].met(0.30) and not g["ccache"].met(0.31)
    assert g["disk"].met(0.6) and not g["disk"].met(0.61)


def test_megabytes_text():
    assert B.Figure("d", "d", 3.0925, "MB").value_text() == "3.1 MB"
    assert B.Figure("d", "d", 1234.56, "MB").value_text() == "1234.6 MB"


PLT32 = ROOT / "patches" / "compat" / "x86_64-module-plt32.patch"
EDIT = "/* one line more */"


def _sides(patch_text):
    """The old and new side of a one-hunk patch's hunk."""
    body = patch_text.split("\n@@", 1)[1].split("\n", 1)[1].splitlines()
    old = [l[1:] for l in body if l[:1] in (" ", "-")]
    new = [l[1:] for l in body if l[:1] in (" ", "+")]
    return old, new


def test_add_line_to_first_hunk_of_the_plt32_patch():
    text = PLT32.read_text()
    edited, path = B.add_line_to_first_hunk(text, EDIT)
    assert path == "arch/x86_64/kernel/module.c"
    assert "\n@@ -189,6 +189,9 @@ int apply_relocate_add(Elf64_Shdr *sechdrs,\n" in edited
    old, new = _sides(text)
    old_e, new_e = _sides(edited)
    assert old_e == old
    first_added = next(i for i, l in enumerate(text.split("\n@@", 1)[1].splitlines()[1:]) if l.startswith("+"))
    assert new_e == new[:first_added + 1] + ["\t\t" + EDIT] + new[first_added + 1:]
    # Everything outside the hunk (the header that says why) is as it was.
    assert edited.split("\n@@", 1)[0] == text.split("\n@@", 1)[0]


def test_edited_patch_applies_with_gnu_patch_and_writes_the_line(tmp_path):
    text = PLT32.read_text()
    old, new = _sides(text)
    filler = [f"/* line {i} */" for i in range(1, 189)]
    target = tmp_path / "arch" / "x86_64" / "kernel" / "module.c"
    target.parent.mkdir(parents=True)
    edited, _ = B.add_line_to_first_hunk(text, EDIT)
    (tmp_path / "edited.patch").write_text(edited)
    target.write_text("\n".join(filler + old + ["/* end */"]) + "\n")
    r = subprocess.run(["patch", "-p1", "--batch", "-i", "edited.patch"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "offset" not in r.stdout and "fuzz" not in r.stdout, r.stdout + r.stderr
    lines = target.read_text().splitlines()
    assert lines[:188] == filler and lines[-1] == "/* end */"
    assert lines[188:-1] == _sides(edited)[1] and len(lines[188:-1]) == len(new) + 1


def test_add_line_to_first_hunk_counts_and_refusals():
    assert B.add_line_to_first_hunk("--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+  b\n", "c") == \
        ("--- a/x.c\n+++ b/x.c\n@@ -1 +1,2 @@\n-a\n+  b\n+  c\n", "x.c")
    with pytest.raises(ValueError, match="no hunk"):
        B.add_line_to_first_hunk("just text\n", "c")
    # The first hunk only removes lines (one of them looks like a file header); the second hunk's added line is
    # not the first hunk's.
    with pytest.raises(ValueError, match="adds no line"):
        B.add_line_to_first_hunk("--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n--- y\n z\n@@ -5 +4 @@\n-a\n+b\n", "c")


V1_LOG = """\
make -f scripts/Makefile.build obj=kernel
  gcc -Wp,-MD,kernel/.module.o.d -nostdinc -D__KERNEL__ -O2 -c -o kernel/.tmp_module.o kernel/module.c
gcc -Wp,-MD,kernel/.module.o.d -nostdinc -D__KERNEL__ -O2 -c -o kernel/.tmp_module.o kernel/module.c
scripts/basic/fixdep kernel/.module.o.d kernel/module.o 'gcc -nostdinc -c -o kernel/.tmp_module.o kernel/module.c'
gcc -Wp,-MD,arch/x86_64/kernel/.module.o.d -O2 -c -o arch/x86_64/kernel/module.o /t/minik/arch/x86_64/kernel/module.c
gcc -D__ASSEMBLY__ -c -o .tmp_head.o head.S
ld -m elf_x86_64 -r -o kernel/built-in.o kernel/module.o
gcc -o scripts/kallsyms scripts/kallsyms.c
  CC [M]  /w/x86_64/.mkexec.tmp-abc/kernel/mkexec.o
  CC      /w/x86_64/.mkexec.tmp-abc/kernel/mkexec.mod.o
  LD [M]  /w/x86_64/.mkexec.tmp-abc/kernel/mkexec.ko
"""


def test_recompiled_objects_from_verbose_and_quiet_make_output():
    assert B.recompiled_objects(V1_LOG) == ["arch/x86_64/kernel/module.o", "head.o", "kernel/module.o",
                                            "mkexec.mod.o", "mkexec.o"]
    assert B.recompiled_objects("make: Nothing to be done for 'bzImage'.\n") == []


def test_parse_du_bytes():
    assert B.parse_du_bytes("3092480\t/tmp/build\n") == 3092480
    for bad in ("", "du: cannot access 'x'\n", "12K\t/tmp/b\n", "1\t/a\n2\t/b\n"):
        with pytest.raises(ValueError):
            B.parse_du_bytes(bad)


def test_same_outputs_compares_each_arch_out_directory_but_the_manifest(tmp_path):
    from support import project as P
    for side, image in (("ours", b"A"), ("before", b"B")):
        for arch in ("x86_64", "i386"):
            out = tmp_path / side / arch / "out"
            out.mkdir(parents=True)
            (out / "mkexec.ko").write_bytes(b"same")
            (out / "manifest.json").write_text(side)
        (tmp_path / side / "i386" / "out" / "vmlinux.bin").write_bytes(image)
    (tmp_path / "ours" / "x86_64" / "out" / "mkdutils.tar").write_bytes(b"ours only")
    (tmp_path / "before" / "x86_64" / "out" / "gone.txt").write_bytes(b"before only")
    same, differ = P.same_outputs(tmp_path / "ours", tmp_path / "before")
    assert same == ["i386/mkexec.ko", "x86_64/mkexec.ko"]
    assert differ == ["i386/vmlinux.bin", "x86_64/gone.txt"]


def test_export_revision_for_the_fixture(tmp_path):
    from support import project as P
    pin = "ab" * 32
    dest = P.export_revision("HEAD", tmp_path / "before", fixture_tree_sha256=pin)
    assert (dest / "SConstruct").is_file() and (dest / "site_scons" / "mkdump" / "stages.py").is_file()
    assert not (dest / "patches" / "sources.lock").exists() and not (dest / "tests").exists()
    assert f'tree_sha256 = "{pin}"' in (dest / "patches" / "sources.toml").read_text()
    entries = [l for l in (dest / "patches" / "minik.series").read_text().splitlines() if not l.startswith("#")]
    assert entries == ["source:minik", "compat/x86_64-module-plt32.patch arch=x86_64"]
    with pytest.raises(RuntimeError, match="git archive no-such-rev failed"):
        P.export_revision("no-such-rev", tmp_path / "none")


def test_run_refuses_an_unknown_before_revision_at_once(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run"), "--fixture", "--only", "noop,disk",
                        "--before", "no-such-rev", "--workdir", str(tmp_path / "work")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--before no-such-rev: not a commit" in r.stderr
    assert not (tmp_path / "work").exists()
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run"), "--only", "edit,size"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--only: unknown size" in r.stderr


def test_run_on_the_fixture_prints_every_figure(tmp_path):
    """The script end to end on the fixture kernel: every figure is there; what it shows of the product's
    behaviour (nothing re-runs on a no-op, a dump_driver change re-runs neither unpack nor patch, by hand builds
    the same bytes) is asserted, never a time."""
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run"), "--fixture", "--quick", "--json", str(out),
                        "--workdir", str(tmp_path / "work")], capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "MKDUMP_BUILD_LOCK"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("date ") and "machine " in r.stdout
    figs = {f["key"]: f for f in json.loads(out.read_text())["figures"]}
    assert {"cold_ours", "cold_by_hand", "cold_overhead_same_steps", "cold_overhead_whole", "cold_first", "noop",
            "config_change", "unpack_ours", "unpack_tar", "unpack_ratio", "ccache_ratio"} <= set(figs)
    # The first build unpacks the archive; the cold runs link the tree the cache's store keeps.
    assert "unpack" in figs["cold_first"]["note"] and figs["cold_first"]["value"] > 0
    assert {"config_change_s", "edit", "edit_ratio", "edit_stages", "edit_objects", "disk_ours", "disk_before",
            "disk_ratio"} <= set(figs)
    for key in ("cold_ours", "cold_by_hand", "noop", "unpack_ratio"):
        assert figs[key]["value"] > 0
        assert figs[key]["met"] in ((True, False) if figs[key]["goal"] else (None,))
    assert figs["noop"]["note"] == "nothing re-ran"
    assert figs["config_change"]["met"] is True and "config-minik" in figs["config_change"]["value"]
    assert "; differ:" not in figs["cold_by_hand"]["note"]
    # The edit of the PLT32 patch reaches both trees, re-runs their patch and build stages, and make compiles the
    # module loader again.
    assert figs["edit"]["value"] > 0 and "NO tree" not in figs["edit"]["note"]
    assert figs["edit_ratio"]["value"] > 0 and figs["edit_ratio"]["met"] in (True, False)
    assert {"patch-minik", "patch-system", "build-system"} <= set(figs["edit_stages"]["value"])
    assert not any(s.startswith("unpack") for s in figs["edit_stages"]["value"])
    assert isinstance(figs["edit_objects"]["value"], int) and figs["edit_objects"]["value"] >= 1
    assert "kernel/module.o" in figs["edit_objects"]["note"]
    assert figs["config_change_s"]["value"] > 0 and figs["config_change_s"]["met"] in (True, False)
    # The PLT32 patch is as it was in the project copy the figures ran in.
    assert (tmp_path / "work" / "project" / "patches" / "compat" / "x86_64-module-plt32.patch").read_text() == \
        (ROOT / "patches" / "compat" / "x86_64-module-plt32.patch").read_text()
    for key in ("disk_ours", "disk_before"):
        assert figs[key]["unit"] == "MB" and figs[key]["value"] > 0
    assert figs["disk_ratio"]["value"] == pytest.approx(figs["disk_ours"]["value"] / figs["disk_before"]["value"])
    assert figs["disk_ratio"]["met"] in (True, False)
    assert "out/ of both arches byte-identical to ours but the manifest" in figs["disk_before"]["note"]
    for f in figs.values():
        assert f["label"] in r.stdout


def test_run_skips_without_the_archive(tmp_path):
    env = dict(os.environ, MKDUMP_TEST_SOURCES=str(tmp_path))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run"), "--quick"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("benchmarks/run: skipped: no Linux 2.6.9 archive")


MAKE_K = """\
  CC      init/main.o
  CC [M]  drivers/net/acenic.o
drivers/net/acenic.c:489:29: error: invalid storage class for function 'ace_watchdog'
make[2]: *** [scripts/Makefile.build:190: drivers/net/acenic.o] Error 1
  AS      arch/x86_64/kernel/entry.o
  CC      drivers/scsi/sd_mod.mod.o
make[3]: *** [scripts/Makefile.build:197: drivers/i2c/chips/lm75.o] Error 1
make[2]: *** [scripts/Makefile.build:311: drivers/i2c/chips] Error 2
make[1]: *** [drivers/net/acenic.o] Error 1
  LD [M]  drivers/scsi/sd_mod.ko
"""


def test_objects_compiled_and_failed_from_make_k_output():
    assert B.compiled_objects(MAKE_K) == ["init/main.o", "drivers/net/acenic.o", "arch/x86_64/kernel/entry.o",
                                          "drivers/scsi/sd_mod.mod.o"]
    assert B.failed_objects(MAKE_K) == ["drivers/i2c/chips/lm75.o", "drivers/net/acenic.o"]
    assert B.failed_objects("  CC      a.o\n") == []


def test_config_table():
    text = B.format_config_table([{"config": "rhel4", "arch": "x86_64", "compiled": 2120, "failed": 0,
                                   "modules": 715, "cold_s": 1068, "warm_s": 300},
                                  {"config": "allmodconfig", "arch": "i386", "compiled": 3000, "failed": 12,
                                   "modules": 1400, "cold_s": None, "warm_s": None}])
    lines = text.splitlines()
    assert lines[0].split() == ["configuration", "arch", "compiled", "failed", "modules", "cold", "warm", "ccache"]
    assert lines[1].split() == ["rhel4", "x86_64", "2120", "0", "715", "17.8", "min", "5.0", "min"]
    assert lines[2].split()[-2:] == ["-", "-"]
