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
Command execution time: /b/x86_64/stamps/check.json: 3.0 seconds
Command execution time: /b/x86_64/out/mkdump-load-x86_64: 0.002 seconds
Command execution time: /b/x86_64/out/manifest.json: 0.003 seconds
Total build time: 72.0 seconds
"""


def test_stage_and_phase_times_from_debug_time():
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
    assert {"cold_ours", "cold_by_hand", "cold_overhead_same_steps", "cold_overhead_whole", "noop",
            "config_change", "unpack_ours", "unpack_tar", "unpack_ratio", "ccache_ratio"} <= set(figs)
    for key in ("cold_ours", "cold_by_hand", "noop", "unpack_ratio"):
        assert figs[key]["value"] > 0
        assert figs[key]["met"] in ((True, False) if figs[key]["goal"] else (None,))
    assert figs["noop"]["note"] == "nothing re-ran"
    assert figs["config_change"]["met"] is True and "config-minik" in figs["config_change"]["value"]
    assert "; differ:" not in figs["cold_by_hand"]["note"]
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
