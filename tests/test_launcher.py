"""Build farms: cc_launcher= in front of the kernel compiler (a recording stand-in, then ccache and distcc for real),
and make's -j from DEB_BUILD_OPTIONS. Whatever the launcher, the outputs are the bytes a build without one gives,
and switching it on or off re-runs no stage."""
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from mkdump import kbuild, toolchain
from support import project as P
from support.distccd import Distccd

# Records its argv, one line per call, then runs it: what ccache or distcc do, minus the caching.
RECORDING_LAUNCHER = """\
#!/bin/sh
printf '%s\\n' "$*" >> "$LAUNCHER_LOG"
exec "$@"
"""


def write_launcher(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECORDING_LAUNCHER)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def recorded(log):
    return log.read_text().splitlines() if log.exists() else []


# --- kbuild.run_make with a launcher ---------------------------------------------------------------------------

GCC = toolchain.Toolchain(
    arch="x86_64", cc=("gcc",), cross_compile="", gcc_version="12.2", gcc_version_line="gcc 12.2.0",
    binutils_version="2.40", target="x86_64-linux-gnu", flags=("-fno-pie",), rejected_flags=(), hostcc="gcc",
    makevars=(("ARCH", "x86_64"),), prefix_map=("-ffile-prefix-map",))

# The source by its absolute path, as kbuild names an external module's: only the prefix map keeps the tree's
# location out of __FILE__.
TREE_MAKEFILE = """\
all:
\t$(CC) -c -o main.o $(CURDIR)/main.c
\t$(HOSTCC) -o hostprog hostprog.c
"""


def small_tree(path):
    path.mkdir(parents=True)
    (path / "Makefile").write_text(TREE_MAKEFILE)
    (path / "main.c").write_text("const char *built_from = __FILE__;\n")
    (path / "hostprog.c").write_text("int main(void) { return 0; }\n")
    return path


@pytest.mark.parametrize("by", ["name", "path"])
def test_launcher_prefixes_the_kernel_compiler_not_hostcc(tmp_path, monkeypatch, by):
    launcher = write_launcher(tmp_path / "bin" / "fakecache")
    monkeypatch.setenv("LAUNCHER_LOG", str(tmp_path / "launcher.log"))
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}{os.environ['PATH']}")
    tree = small_tree(tmp_path / "tree")
    kbuild.run_make(tree, ["all"], toolchain=GCC, launcher="fakecache" if by == "name" else str(launcher),
                    log_path=tmp_path / "build.log", log=lambda m: None)
    assert recorded(tmp_path / "launcher.log") == [
        f"gcc -fno-pie -ffile-prefix-map={tree}=tree -c -o main.o {tree}/main.c"]
    assert (tree / "hostprog").is_file()
    obj = (tree / "main.o").read_bytes()
    assert b"tree/main.c" in obj and str(tree).encode() not in obj
    first_line = (tmp_path / "build.log").read_text().splitlines()[0]
    assert f" 'CC={launcher if by == 'path' else 'fakecache'} gcc -fno-pie " in first_line
    assert " HOSTCC=gcc " in first_line


def test_without_launcher_and_elsewhere_the_object_is_the_same(tmp_path, monkeypatch):
    launcher = write_launcher(tmp_path / "bin" / "fakecache")
    monkeypatch.setenv("LAUNCHER_LOG", str(tmp_path / "launcher.log"))
    objects = []
    for name, used in (("a", str(launcher)), ("b", None)):
        tree = small_tree(tmp_path / name / "tree")
        kbuild.run_make(tree, ["all"], toolchain=GCC, launcher=used, log_path=tmp_path / f"{name}.log",
                        log=lambda m: None)
        objects.append((tree / "main.o").read_bytes())
    assert len(recorded(tmp_path / "launcher.log")) == 1
    assert b"tree/main.c" in objects[0] and objects[0] == objects[1]


# --- the real scons on the fixture kernel ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def proj(tmp_path_factory, sources):
    return P.fixture_project(tmp_path_factory.mktemp("launcher") / "proj", sources)


def run(proj, sources, build, *extra, env=None):
    args = ["arch=x86_64", f"build={build}", f"sources={sources.dir}", "offline=1",
            f"cache={build.parent / (build.name + '-cache')}", *extra]
    r = P.scons(proj, *args, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return args, r


def outputs(build):
    out = build / "x86_64" / "out"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def plain(proj, sources, tmp_path_factory):
    """out/ of a build without launcher: what every launcher build must reproduce byte for byte."""
    build = tmp_path_factory.mktemp("plain") / "build"
    run(proj, sources, build)
    return outputs(build)


def kernel_compiles(build):
    """The compiler calls in both kernels' build logs (kbuild runs with V=1)."""
    calls = []
    for kind in ("minik", "system"):
        log = build / "x86_64" / "logs" / f"build-{kind}.log"
        calls += [line for line in log.read_text().splitlines() if re.search(r"\s-c\s+-o\s+\S+\.o\s", line)]
    return calls


def test_recording_launcher_sees_every_kernel_and_module_compile_and_changes_nothing(proj, sources, plain,
                                                                                      tmp_path):
    launcher = write_launcher(tmp_path / "tools" / "launcher")
    env = {"LAUNCHER_LOG": str(tmp_path / "launcher.log")}
    build = tmp_path / "build"
    args, _ = run(proj, sources, build, f"cc_launcher={launcher}", env=env)
    calls = recorded(tmp_path / "launcher.log")
    compiled = [c for c in calls if " -c " in c]
    assert len(compiled) >= len(kernel_compiles(build)) > 10
    assert any(c.endswith("init/main.c") for c in compiled)
    assert any(c.endswith("/kernel/mkexec.c") for c in compiled), "mkexec.ko is built through the launcher too"
    # HOSTCC builds the fixture's boot/tools/build: never through the launcher.
    assert re.search(r"^gcc .* -o arch/x86_64/boot/tools/build ",
                     (build / "x86_64" / "logs" / "build-minik.log").read_text(), re.MULTILINE)
    assert not [c for c in calls if "tools/build" in c]
    assert (build / "x86_64" / "logs" / "build-minik.log").read_text().startswith(
        f"# cd {build / 'x86_64' / 'obj' / 'minik'} && make -j")
    assert outputs(build) == plain
    # Neither the toolchain stamp nor the manifest knows about the launcher or the build directory.
    for path in (build / "x86_64" / "stamps" / "toolchain.json", build / "x86_64" / "out" / "manifest.json"):
        text = path.read_text()
        assert str(launcher) not in text and str(build) not in text, path
    # Switching the launcher off, and on again, re-runs nothing.
    for switch in ([a for a in args if not a.startswith("cc_launcher=")], args):
        r = P.scons(proj, "-q", *switch, env=env)
        assert r.returncode == 0, "a stage re-ran: " + r.stdout + r.stderr


def ccache_stats(env):
    out = subprocess.run(["ccache", "--print-stats"], env=dict(os.environ, **env), capture_output=True, text=True,
                         check=True).stdout
    return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines()) if v.isdigit()}


@pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed (Debian package ccache)")
def test_ccache_for_real_hits_from_another_build_directory(proj, sources, plain, tmp_path):
    env = {"CCACHE_DIR": str(tmp_path / "ccache")}
    first = tmp_path / "one" / "build"
    run(proj, sources, first, "cc_launcher=ccache", env=env)
    cold = ccache_stats(env)
    assert cold["cache_miss"] >= len(kernel_compiles(first))
    subprocess.run(["ccache", "--zero-stats"], env=dict(os.environ, **env), check=True, capture_output=True)
    second = tmp_path / "elsewhere" / "two" / "build"
    run(proj, sources, second, "cc_launcher=ccache", env=env)
    warm = ccache_stats(env)
    hits = warm["direct_cache_hit"] + warm["preprocessed_cache_hit"]
    print(f"ccache: cold run {cold['cache_miss']} misses; warm run in another directory {hits} hits, "
          f"{warm['cache_miss']} misses")
    # Every kernel compile hits although the tree is elsewhere (and its prefix map with it).
    assert hits >= len(kernel_compiles(second))
    assert outputs(first) == plain
    assert outputs(second) == plain


@pytest.fixture
def distccd(tmp_path):
    if shutil.which("distccd") is None or shutil.which("distcc") is None:
        pytest.skip("distcc is not installed (Debian package distcc)")
    server = Distccd(tmp_path / "distcc-client").start()
    yield server
    server.stop()


def test_distcc_for_real_compiles_on_the_server(proj, sources, plain, tmp_path, distccd):
    build = tmp_path / "build"
    run(proj, sources, build, "cc_launcher=distcc", env=distccd.client_env())
    jobs = distccd.jobs()
    failed = [j for j in jobs if j[0] != "COMPILE_OK"]
    assert not failed, distccd.log()
    done = {source for _, source in jobs}
    print(f"distccd compiled {len(jobs)} files; the kernels' logs show {len(kernel_compiles(build))} compiles")
    # Built in obj/minik, the kernel's sources are named in their tree.
    assert str(build / "x86_64" / "minik" / "init" / "main.c") in done
    assert any(s.endswith("/kernel/mkexec.c") for s in done), "mkexec.ko went through distcc too"
    assert len(jobs) >= len([c for c in kernel_compiles(build) if c.endswith(".c")])
    assert outputs(build) == plain


# --- make's -j and the compiler options, end to end ------------------------------------------------------------

def test_help_explains_the_launcher_and_the_jobs_order(proj):
    r = P.scons(proj, "-h")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    assert re.search(r"cc_launcher [^()]*\bCC\b[^()]*ccache\|distcc\|icecc\|sccache or a path", text)
    assert re.search(r"jobs parallel jobs passed to make .{0,20}SCons -j, else DEB_BUILD_OPTIONS=parallel=N", text)


def make_line(build, kind="minik"):
    return (build / "x86_64" / "logs" / f"build-{kind}.log").read_text().splitlines()[0]


def test_deb_build_options_parallel_sets_make_jobs_unless_jobs_or_scons_j_say_otherwise(proj, sources, tmp_path):
    build = tmp_path / "build"
    deb = {"DEB_BUILD_OPTIONS": "nocheck parallel=3"}
    stamp = build / "x86_64" / "stamps" / "build-minik.json"
    for extra, jobs in (([], 3), (["jobs=1"], 1), (["-j2"], 2)):
        if stamp.exists():
            stamp.unlink()   # jobs is not part of any signature: make the build stage run again
        run(proj, sources, build, "build", *extra, env=deb)
        assert f" make -j{jobs} ARCH=x86_64 " in make_line(build), (extra, make_line(build))


@pytest.mark.parametrize("option, cc", [
    ("CROSS_COMPILE=x86_64-linux-gnu-", "x86_64-linux-gnu-gcc"),
    ("CC=x86_64-linux-gnu-gcc-12", "x86_64-linux-gnu-gcc-12"),
])
def test_cc_and_cross_compile_reach_make(proj, sources, tmp_path, option, cc):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (Debian package gcc on amd64)")
    build = tmp_path / "build"
    run(proj, sources, build, "build", option)
    for kind in ("minik", "system"):
        line = make_line(build, kind)
        assert f" 'CC={cc} -fno-pie " in line and " HOSTCC=gcc " in line, line
        assert ("CROSS_COMPILE=x86_64-linux-gnu-" in line) == option.startswith("CROSS_COMPILE="), line
    assert json.loads((build / "x86_64" / "stamps" / "toolchain.json").read_text())["cc"] == [cc]


# --- the real 2.6.9 mini kernel ----------------------------------------------------------------------------------

REAL_PRODUCTS = ("arch/x86_64/boot/compressed/vmlinux.bin", "arch/x86_64/boot/bzImage", "vmlinux", "System.map")


def build_real_mini(tarball, workdir, tc, launcher=None):
    from support.kernel_tree import MINI_FRAGMENT, apply_compat_patches, configure, unpack
    tree = unpack(tarball, workdir)
    apply_compat_patches(tree, "x86_64")
    assert configure(tree, tc, MINI_FRAGMENT, workdir / "logs") == []
    kbuild.run_make(tree, ["bzImage"], toolchain=tc, jobs=2, launcher=launcher,
                    log_path=workdir / "logs" / "build.log", log=lambda m: None)
    return tree


def real_compiles(tree):
    """Source files of the compiler calls in a build log: (path, ...) in log order."""
    log = (tree.parent / "logs" / "build.log").read_text()
    return re.findall(r"\s-c\s+-o\s+\S+\.o\s+(\S+\.[cS])$", log, re.MULTILINE)


@pytest.fixture(scope="module")
def real_plain(real_linux_tarball, tmp_path_factory):
    tc = toolchain.detect("x86_64")
    tree = build_real_mini(real_linux_tarball, tmp_path_factory.mktemp("real-plain"), tc)
    return tc, {rel: (tree / rel).read_bytes() for rel in REAL_PRODUCTS}


@pytest.mark.realkernel
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed (Debian package ccache)")
def test_real_mini_kernel_with_ccache_is_the_same_and_hits_when_warm(real_linux_tarball, real_plain, tmp_path,
                                                                     monkeypatch):
    tc, plain = real_plain
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "ccache"))
    cold = build_real_mini(real_linux_tarball, tmp_path / "cold", tc, "ccache")
    cold_stats = ccache_stats({})
    subprocess.run(["ccache", "--zero-stats"], check=True, capture_output=True)
    warm = build_real_mini(real_linux_tarball, tmp_path / "other" / "warm", tc, "ccache")
    warm_stats = ccache_stats({})
    hits = warm_stats["direct_cache_hit"] + warm_stats["preprocessed_cache_hit"]
    compiles = real_compiles(warm)
    print(f"real mini kernel: {len(compiles)} compiles; cold ccache {cold_stats['cache_miss']} misses, warm in "
          f"another directory {hits} hits, {warm_stats['cache_miss']} misses, "
          f"{warm_stats.get('uncacheable_call', 0)} uncacheable")
    assert hits >= len(compiles) > 100
    assert warm_stats["cache_miss"] == 0
    for tree in (cold, warm):
        assert {rel: (tree / rel).read_bytes() for rel in REAL_PRODUCTS} == plain, tree


@pytest.mark.realkernel
@pytest.mark.slow
def test_real_mini_kernel_with_distcc_is_the_same(real_linux_tarball, real_plain, tmp_path, monkeypatch, distccd):
    tc, plain = real_plain
    for name, value in distccd.client_env().items():
        monkeypatch.setenv(name, value)
    tree = build_real_mini(real_linux_tarball, tmp_path / "distcc", tc, "distcc")
    jobs = distccd.jobs()
    assert not [j for j in jobs if j[0] != "COMPILE_OK"], distccd.log()
    remote = {source for _, source in jobs}
    compiles = real_compiles(tree)
    local = sorted({c for c in compiles if c not in remote})
    print(f"distcc: {len(jobs)} jobs on the server, {len(compiles)} compiles in the log; run locally: {local}")
    assert [c for c in local if c.endswith(".c")] == []
    assert {rel: (tree / rel).read_bytes() for rel in REAL_PRODUCTS} == plain
