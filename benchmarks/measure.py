"""The measuring functions of benchmarks/run. Each returns Figures (benchlib) and leaves its trees under the
benchmark's work directory; wall time is time.perf_counter, CPU time is user+system of this process and the
children it waited for (the machine may be shared: CPU seconds drift less than wall seconds).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "site_scons", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import benchlib as B  # noqa: E402
from mkdump import kbuild, layout, products, stamp  # noqa: E402
from mkdump.narhash import nar_sha256  # noqa: E402
from mkdump.options import ARCHES  # noqa: E402
from mkdump.patching import parse_series  # noqa: E402
from mkdump.toolchain import Toolchain  # noqa: E402


def _cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Timed:
    wall: float
    cpu: float
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


def settle():
    """Write back what earlier work left dirty (an unpacked and deleted tree, a build), so a timed run does not pay
    for the writeback of the run before it."""
    os.sync()


def run_timed(argv, *, cwd, env=None, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL):
    wall, cpu = time.perf_counter(), _cpu()
    r = subprocess.run(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT
                       if stdout is not subprocess.PIPE else subprocess.PIPE, text=True, errors="replace")
    return Timed(time.perf_counter() - wall, _cpu() - cpu, r.stdout or "", r.stderr or "", r.returncode)


@dataclass
class Setup:
    """A copy of the project, a sources= directory and a download cache that already verified them."""
    project: Path
    sources: Path
    cache: Path
    work: Path
    arch: str
    jobs: int
    linux_archive: Path
    fixture_tree_sha256: str = ""   # the fixture's tree pin, which a checkout of another revision needs too

    def args(self, build, *extra, arch=None, cache=None):
        return [f"arch={arch or self.arch}", f"sources={self.sources}", "offline=1", f"cache={cache or self.cache}",
                f"jobs={self.jobs}", f"build={build}", *extra]

    def lay(self, build):
        return layout.Layout(str(build), self.arch)


def scons_env(extra=None):
    env = dict(os.environ)
    # The pipeline's default epoch, as a packager without SOURCE_DATE_EPOCH gets it; an outer make's flags would
    # change what kbuild does. Python writes its bytecode caches as a user's Python does (a sandbox that turns
    # that off makes every run compile our modules again: about 40 ms of a no-op).
    for name in ("SOURCE_DATE_EPOCH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def scons(setup, build, *extra, env=None, project=None, arch=None, cache=None):
    """One `scons --debug=time ...` run in the project copy (or `project`, another revision's), its output kept in
    <work>/logs/; raises with its output when it fails."""
    settle()
    args = setup.args(build, *extra, arch=arch, cache=cache)
    t = run_timed([sys.executable, "-m", "SCons", "--debug=time", *args], cwd=project or setup.project,
                  env=scons_env(env))
    logs = setup.work / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"scons-{len(list(logs.iterdir())):02d}-{Path(build).name}.log", "w") as f:
        f.write(f"$ scons {' '.join(args)}\n{t.stdout}\n--- stderr\n{t.stderr}")
    if t.returncode != 0:
        raise RuntimeError(f"scons {' '.join(extra)} failed (exit {t.returncode}):\n{t.stdout[-3000:]}\n"
                           f"{t.stderr[-6000:]}")
    return t


def prepare(work, *, arch, jobs, tarball=None, fixture=False, log=print):
    """The project copy and sources for the benchmark: the real tree with stand-ins, or the fixture kernel."""
    from support import project as P
    work = Path(work)
    pin = ""
    if fixture:
        src = P.make_fixture_sources(work / "fixture")
        project = P.fixture_project(work / "project", src)
        sources, archive, pin = src.dir, src.dir / P.LINUX, src.tree_sha256
    else:
        from support.real_sources import make_real_sources
        project = P.copy_project(work / "project")
        log("preparing the sources= directory (the real tree and generated mkdump stand-ins)")
        sources, archive = make_real_sources(tarball, work / "real"), Path(tarball)
    setup = Setup(project, sources, work / "cache", work, arch, jobs, archive, pin)
    # "With sources cached": every later run finds the download cache as any earlier build leaves it, the archives
    # verified and Linux's verified tree in its tree store (cold_pipeline measures a first build without it too).
    log("verifying the sources once into the cache (not timed): scons fetch unpack")
    scons(setup, work / "build-fetch", "fetch", "unpack")
    shutil.rmtree(work / "build-fetch")
    return setup


# ----------------------------------------------------------------------------------------------- 2. cold pipeline

def our_cold(setup, build):
    t = scons(setup, build)
    return t, B.stage_times(t.stdout)


def by_hand_plan(setup, ours_build, work):
    """The by-hand steps for what our build in `ours_build` did, from our series, stamps and configs."""
    lay = setup.lay(ours_build)
    patches_dir = setup.project / "patches"
    prods = products.load(setup.arch)
    series = {}
    for kind in ("minik", "system"):
        path = patches_dir / prods[kind].series
        series[kind] = parse_series(path.read_text(), arch=setup.arch, filename=str(path), arches=ARCHES)
    fetched = {name: stamp.read(layout.fetch_where(lay.root, name))["path"] for name in ("linux", "minik", "mkexec")}
    tc = Toolchain.from_dict(stamp.read(lay.stamp("toolchain")))
    work = Path(work)
    trees = {k: work / k for k in ("minik", "system")}
    # What our stages pass to make, pointed at the by-hand trees: kbuild and mkexec record each tree under its
    # base name (prefix maps), which the by-hand trees share, so both sides compile the same bytes.
    maps = {k: kbuild.prefix_maps(t, k) for k, t in trees.items()}
    return B.by_hand_steps(
        arch=setup.arch, work=str(work), linux_archive=fetched["linux"], mkexec_archive=fetched["mkexec"],
        series=series, source_files=fetched, patches_dir=str(patches_dir),
        our_configs={k: os.path.join(lay.obj(k), ".config") for k in ("minik", "system")},
        config_args=tc.make_args(), build_args={k: tc.make_args(prefix_maps=m) for k, m in maps.items()},
        mkexec_args=tc.make_args(prefix_maps=maps["system"] + kbuild.prefix_maps(work / "mkexec", "mkexec")),
        jobs=setup.jobs, make_targets={k: prods[k].make_targets for k in ("minik", "system")},
        release=stamp.read(lay.stamp("build-system"))["release"])


def run_by_hand(steps, work, log_path):
    """Run the steps in order, each one's output appended to log_path; returns (total Timed, {phase: wall})."""
    os.makedirs(work, exist_ok=True)
    env = kbuild.build_env()
    phases, wall, cpu = {}, 0.0, 0.0
    settle()
    with open(log_path, "w") as logf:
        for s in steps:
            logf.write(f"$ {s.shell()}\n")
            logf.flush()
            t = run_timed(list(s.argv), cwd=s.cwd, env=env, stdout=logf)
            if t.returncode not in s.ok:
                raise RuntimeError(f"by hand: {s.shell()} exited {t.returncode}; see {log_path}")
            phases[s.phase] = phases.get(s.phase, 0.0) + t.wall
            wall += t.wall
            cpu += t.cpu
    return Timed(wall, cpu), phases


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.isfile(path) else None


def same_products(setup, ours_build, hand_work):
    """Which published products the by-hand run made byte-identical to ours (proof both compiled the same)."""
    lay = setup.lay(ours_build)
    same, differ = [], []
    from mkdump.modules import CONFIG_NAME, TREE_NAME, installable_config
    for name, (product, rel) in sorted(products.published(setup.arch).items()):
        # Packed by our modules stage, or mkdutils (no kernel at all): the kernel steps by hand make neither.
        if rel == TREE_NAME or product == "mkdutils":
            continue
        base = lay.product_dir(product)
        hand_dir = os.path.join(hand_work, "mkexec" if product == "mkexec" else product)
        if rel == CONFIG_NAME:
            # The .config by hand, as the modules stage publishes it: without the time in its header.
            hand = os.path.join(hand_work, "config-" + product)
            with open(os.path.join(hand_dir, ".config"), encoding="latin-1") as f:
                Path(hand).write_text(installable_config(f.read()), encoding="latin-1")
        else:
            hand = os.path.join(hand_dir, rel)
        (same if _sha256(os.path.join(base, rel)) == _sha256(hand) else differ).append(name)
    return same, differ


def cold_pipeline(setup, runs, log=print):
    """Figures 2: our cold pipeline (sources cached) against the same steps by hand, interleaved `runs` times.
    Returns (figures, the build directory of our last run, for the figures that need a built tree)."""
    ours, hand, ours_phases, hand_phases, ours_cpu, hand_cpu = [], [], [], [], [], []
    build = None
    for i in range(runs):
        build = setup.work / f"cold-{i}"
        log(f"cold pipeline {i + 1}/{runs}: scons arch={setup.arch} (ours)")
        t, stages = our_cold(setup, build)
        ours.append(t.wall)
        ours_cpu.append(t.cpu)
        ours_phases.append(B.phase_times(stages))
        steps = by_hand_plan(setup, build, setup.work / f"hand-{i}")
        log(f"cold pipeline {i + 1}/{runs}: the same steps by hand ({len(steps)} commands)")
        h, phases = run_by_hand(steps, setup.work / f"hand-{i}", setup.work / f"hand-{i}.log")
        hand.append(h.wall)
        hand_cpu.append(h.cpu)
        hand_phases.append(phases)
        same, differ = same_products(setup, build, setup.work / f"hand-{i}")
        rejects = len(list((setup.work / f"hand-{i}").glob("*/**/*.rej")))
        if i + 1 < runs:
            shutil.rmtree(setup.work / f"hand-{i}")
            shutil.rmtree(build)
    first = first_build(setup, log=log)
    only_ours = ("fetch", "toolchain", "check+publish", "other")
    common = [o - sum(p.get(k, 0.0) for k in only_ours) for o, p in zip(ours, ours_phases)]
    med = B.median
    figs = [
        B.Figure("cold_ours", f"cold pipeline, ours: scons arch={setup.arch} (sources cached)", med(ours), "s", ours,
                 note=f"CPU {med(ours_cpu):.1f} s; stages: " + _phases_text(ours_phases)),
        B.Figure("cold_by_hand", "the same steps by hand: tar, cp -a, patch, oldconfig, make, mkexec make",
                 med(hand), "s", hand,
                 note=f"CPU {med(hand_cpu):.1f} s; phases: " + _phases_text(hand_phases) +
                 f"; products identical to ours: {', '.join(same) or 'none'}"
                 + (f"; differ: {', '.join(differ)}" if differ else "")
                 + (f"; GNU patch rejected {rejects} hunk(s) of the upstream patches (the mkdump README says to "
                    "ignore them; our patch stage applies those that add lines, so __LINE__ can differ)"
                    if rejects else "")),
        B.Figure("cold_overhead_same_steps", "overhead on the same steps (ours minus fetch/toolchain/checks/manifest)",
                 B.overhead_percent(med(common), med(hand)), "%", goal=B.GOALS["cold"],
                 note=f"ours / by hand {B.ratio(med(common), med(hand)):.2f}x; both sides: unpack once + copy per "
                      f"tree, patch both trees, oldconfig, make both kernels -j{setup.jobs}, build mkexec.ko"),
        B.Figure("cold_overhead_whole", "overhead of the whole default target (with checks, manifest)",
                 B.overhead_percent(med(ours), med(hand)), "%", goal=B.GOALS["cold"],
                 note=f"ours / by hand {B.ratio(med(ours), med(hand)):.2f}x; CPU overhead "
                      f"{B.overhead_percent(med(ours_cpu), med(hand_cpu)):+.1f} %"),
        B.Figure("cold_first", "a first build: the same, with no tree in the cache's store (Linux unpacked)",
                 first.wall, "s", note=f"ours / by hand {B.ratio(first.wall, med(hand)):.2f}x; stages: "
                                        + _phases_text([B.phase_times(B.stage_times(first.stdout))])),
    ]
    return figs, build


def first_build(setup, log=print):
    """Our cold pipeline in a copy of the download cache without its tree store: what the first build on a
    machine pays, unpacking Linux's archive."""
    cache = setup.work / "cache-first"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(setup.cache, cache, symlinks=True, ignore=lambda d, names: ["trees"] if Path(d) == setup.cache
                    else [])
    log(f"cold pipeline, a first build: scons arch={setup.arch} with no tree in the cache's store")
    build = setup.work / "cold-first"
    try:
        return scons(setup, build, cache=cache)
    finally:
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def _phases_text(phase_runs):
    names = sorted({k for p in phase_runs for k in p}, key=lambda k: -max(p.get(k, 0.0) for p in phase_runs))
    return ", ".join(f"{k} {B.median([p.get(k, 0.0) for p in phase_runs]):.1f} s" for k in names)


# ----------------------------------------------------------------------------------------------- 1. no-op

def noop(setup, build, runs, log=print):
    log(f"no-op: scons arch={setup.arch} x{runs} on the built tree")
    times, ran = [], set()
    for _ in range(runs):
        t = scons(setup, build)
        times.append(t.wall)
        ran |= set(B.stage_times(t.stdout))
    note = "nothing re-ran" if not ran else "NOT a no-op, re-ran: " + ", ".join(sorted(ran))
    return [B.Figure("noop", f"no-op scons arch={setup.arch} after a full build", B.median(times), "s", times,
                     B.GOALS["noop"], note=note)]


# ----------------------------------------------------------------------------------------------- 4. config change

def other_dump_driver(setup):
    from mkdump import kconfig
    families = kconfig.dump_driver_families(setup.project / "configs")
    default = next((n for n, f in families.items() if f.get("default")), None)
    return next(n for n in families if n != default)


def config_change(setup, build, log=print):
    """Figure 4: which stages a config-only option change re-runs (dump_driver= feeds only the minik config)."""
    driver = other_dump_driver(setup)
    log(f"config-only change: scons arch={setup.arch} dump_driver={driver}")
    t = scons(setup, build, f"dump_driver={driver}")
    ran = sorted(B.stage_times(t.stdout))
    return [B.Figure("config_change", f"dump_driver={driver} after a full build: stages that re-ran", ran, "",
                     goal=B.GOALS["config_stages"]),
            B.Figure("config_change_s", "  the same run, wall time", t.wall, "s", goal=B.GOALS["config_time"])]


# ----------------------------------------------------------------------------------------------- 3. unpack + hash

def unpack_vs_tar(setup, runs, log=print):
    """Figure 3: our unpack (decompress, checked extraction, tree hash, pin check) against `tar xf` alone."""
    from mkdump.sources import load_sources
    from mkdump.unpack import unpack
    pin = load_sources(setup.project / "patches" / "sources.toml")["linux"].tree_sha256
    archive = str(setup.linux_archive)
    scratch = setup.work / "unpack"
    subprocess.run(["cat", archive], stdout=subprocess.DEVNULL, check=True)   # both start with it in page cache
    ours, tar, ours_cpu, tar_cpu = [], [], [], []
    for i in range(runs):
        log(f"unpack + tree hash vs tar xf {i + 1}/{runs}")
        scratch.mkdir(parents=True, exist_ok=True)
        settle()
        wall, cpu = time.perf_counter(), _cpu()
        unpack(archive, scratch / "ours", expect_tree_sha256=pin, log=lambda m: None)
        ours.append(time.perf_counter() - wall)
        ours_cpu.append(_cpu() - cpu)
        (scratch / "tar").mkdir()
        settle()
        t = run_timed(["tar", "xf", archive, "-C", str(scratch / "tar")], cwd=scratch)
        if t.returncode:
            raise RuntimeError(f"tar xf {archive} failed: {t.stderr}")
        tar.append(t.wall)
        tar_cpu.append(t.cpu)
        if i == 0:
            wall = time.perf_counter()
            nar_sha256(scratch / "ours")
            hash_alone = time.perf_counter() - wall
        shutil.rmtree(scratch)
    med = B.median
    return [
        B.Figure("unpack_ours", "unpack + tree hash (mkdump.unpack, pin checked)", med(ours), "s", ours,
                 note=f"CPU {med(ours_cpu):.1f} s; the tree hash alone, page cache warm: {hash_alone:.1f} s"),
        B.Figure("unpack_tar", "tar xf alone", med(tar), "s", tar, note=f"CPU {med(tar_cpu):.1f} s"),
        B.Figure("unpack_ratio", "unpack + tree hash / tar xf", B.ratio(med(ours), med(tar)), "x",
                 [o / t for o, t in zip(ours, tar)], B.GOALS["unpack"]),
    ]


# ----------------------------------------------------------------------------------------------- 5. ccache

def ccache_stats(env):
    out = subprocess.run(["ccache", "--print-stats"], env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    return B.ccache_counts(B.parse_ccache_stats(out))


def ccache_rebuild(setup, log=print):
    """Figure 5: a clean rebuild (fresh build=) with cc_launcher=ccache, warm cache against cold, in one private
    CCACHE_DIR; the build directory is the same path both times, as a packager's clean rebuild is."""
    goal = B.GOALS["ccache"]
    if not shutil.which("ccache"):
        return [B.Figure("ccache_ratio", "clean rebuild, warm ccache / cold", goal=goal,
                         note="ccache is not installed (Debian package ccache)")]
    ccdir = setup.work / "ccache"
    shutil.rmtree(ccdir, ignore_errors=True)
    env = {"CCACHE_DIR": str(ccdir)}
    full_env = scons_env(env)
    build = setup.work / "ccache-build"
    results = {}
    for label in ("cold", "warm"):
        shutil.rmtree(build, ignore_errors=True)
        subprocess.run(["ccache", "-z"], env=full_env, stdout=subprocess.DEVNULL, check=True)
        log(f"clean rebuild with cc_launcher=ccache, {label} cache")
        t = scons(setup, build, "cc_launcher=ccache", env=env)
        results[label] = (t, B.phase_times(B.stage_times(t.stdout)), ccache_stats(full_env))
        if sum(results[label][2]) == 0:
            return [B.Figure("ccache_ratio", "clean rebuild, warm ccache / cold", goal=goal,
                             note="cc_launcher=ccache did not reach the compiler in this checkout (ccache counted "
                                  "no compilation)")]
    (cold, cold_ph, (cold_hits, cold_miss)), (warm, warm_ph, (warm_hits, warm_miss)) = \
        results["cold"], results["warm"]
    compile_cold = cold_ph.get("build", 0.0) + cold_ph.get("mkexec", 0.0)
    compile_warm = warm_ph.get("build", 0.0) + warm_ph.get("mkexec", 0.0)
    return [
        B.Figure("ccache_cold", "clean rebuild, cold ccache (scons cc_launcher=ccache)", cold.wall, "s",
                 note=f"CPU {cold.cpu:.1f} s; ccache {cold_hits} hits, {cold_miss} misses"),
        B.Figure("ccache_warm", "clean rebuild, warm ccache", warm.wall, "s",
                 note=f"CPU {warm.cpu:.1f} s; ccache {warm_hits} hits, {warm_miss} misses"),
        B.Figure("ccache_ratio", "clean rebuild, warm ccache / cold (whole default target)",
                 B.ratio(warm.wall, cold.wall), "x", goal=goal),
        B.Figure("ccache_ratio_compile", "  the same, kernel and mkexec make stages only",
                 B.ratio(compile_warm, compile_cold), "x", goal=goal,
                 note=f"{compile_warm:.1f} s against {compile_cold:.1f} s"),
    ]


# ----------------------------------------------------------------------------------------------- 6. edit one patch

# The compat patch the edit figure changes: it writes one file (the x86_64 module loader) that both kernels build.
PLT32_PATCH = "compat/x86_64-module-plt32.patch"
EDIT_LINE = "/* benchmarks/run: one line more, to time a rebuild after a patch edit */"


def _series_with(setup, patch):
    prods = products.load(setup.arch)
    kinds = []
    for kind in ("minik", "system"):
        path = setup.project / "patches" / prods[kind].series
        entries = parse_series(path.read_text(), arch=setup.arch, filename=str(path), arches=ARCHES)
        if any(e.kind != "source" and e.path == patch for e in entries):
            kinds.append(kind)
    return kinds


def patch_edit(setup, build, cold_wall, *extra, log=print):
    """Figure 6: one line more in an added block of the PLT32 patch's first hunk, then `scons arch=ARCH` on the
    built tree `build` (built with the options `extra`): its time against our cold build (`cold_wall`), the stages
    that re-ran and the objects make compiled again. The patch is put back afterwards."""
    label = f"edit one line of {PLT32_PATCH}, rebuild / our cold build"
    kinds = _series_with(setup, PLT32_PATCH)
    if not kinds:
        return [B.Figure("edit_ratio", label, goal=B.GOALS["edit"],
                         note=f"{PLT32_PATCH} is not in the {setup.arch} series")]
    path = setup.project / "patches" / PLT32_PATCH
    original = path.read_text()
    edited, target = B.add_line_to_first_hunk(original, EDIT_LINE)
    log(f"edit one line of {PLT32_PATCH}: scons arch={setup.arch} {' '.join(extra)}".rstrip())
    path.write_text(edited)
    try:
        t = scons(setup, build, *extra)
    finally:
        path.write_text(original)
    lay = setup.lay(build)
    stages = sorted(B.stage_times(t.stdout))
    # The run proves nothing unless the edited line reached the trees that build it.
    reached = [k for k in kinds if EDIT_LINE in Path(lay.tree(k), target).read_text(errors="replace")]
    objects = {}
    for stage in stages:
        if stage.startswith("build-") or stage == "mkexec":
            objects[stage] = B.recompiled_objects(Path(lay.log(stage)).read_text(errors="replace"))
    count = sum(len(o) for o in objects.values())
    per_stage = "; ".join(f"{s}: {len(o)}" + (f" ({', '.join(o[:6])}{', ...' if len(o) > 6 else ''})" if o else "")
                          for s, o in objects.items()) or "no make stage re-ran"
    return [
        B.Figure("edit", f"edit one line of {PLT32_PATCH}, then scons arch={setup.arch}", t.wall, "s",
                 note=f"CPU {t.cpu:.1f} s; the line is in {target} of "
                      f"{', '.join(reached) or 'NO tree'} (the patch is in the {', '.join(kinds)} series)"),
        B.Figure("edit_ratio", "  the same / our cold build", B.ratio(t.wall, cold_wall), "x",
                 goal=B.GOALS["edit"], note=f"{t.wall:.1f} s against {cold_wall:.1f} s"),
        B.Figure("edit_stages", "  stages that re-ran", stages),
        B.Figure("edit_objects", "  objects make compiled again", count, note=per_stage),
    ]


# ----------------------------------------------------------------------------------------------- 7. disk use

def du_bytes(path):
    out = subprocess.run(["du", "-s", "-B1", str(path)], stdout=subprocess.PIPE, text=True, check=True).stdout
    return B.parse_du_bytes(out)


def disk_use(setup, before_rev, log=print):
    """Figure 7: `du -s -B1` of the build directory after `scons arch=all`, ours against revision `before_rev`
    (exported into the work directory, its own download cache, the same sources= and offline=1). Both sides build
    with cc_launcher=ccache in one CCACHE_DIR, the one the ccache figure leaves, so what was compiled before under
    the same names is not compiled again (the notes say how much was)."""
    env, launcher, how = {}, [], "both sides without ccache (not installed)"
    ccache = shutil.which("ccache")
    if ccache:
        # The ccache figure's cache, when it ran: our x86_64 half hits it (ccache names our sources relative to
        # the object directory); the other revision builds in its trees, under other names.
        env = {"CCACHE_DIR": str(setup.work / "ccache")}
        launcher = ["cc_launcher=ccache"]
        how = "both sides with cc_launcher=ccache in one CCACHE_DIR"
    how += "; the build directory's size does not depend on it"
    from support import project as P
    project = P.export_revision(before_rev, setup.work / "before-project",
                                fixture_tree_sha256=setup.fixture_tree_sha256)
    sizes, hits = {}, {}
    for side, proj, cache in (("ours", None, None), ("before", project, setup.work / "before-cache")):
        build = setup.work / f"disk-{side}"
        shutil.rmtree(build, ignore_errors=True)
        if ccache:
            subprocess.run(["ccache", "-z"], env=scons_env(env), stdout=subprocess.DEVNULL, check=True)
        log(f"disk use: scons arch=all ({'ours' if proj is None else 'revision ' + before_rev})")
        scons(setup, build, *launcher, env=env, project=proj, arch="all", cache=cache)
        sizes[side] = du_bytes(build)
        if ccache:
            hits[side] = "; ccache {} hits, {} misses".format(*ccache_stats(scons_env(env)))
    mb = {k: v / 1e6 for k, v in sizes.items()}
    same, differ = P.same_outputs(setup.work / "disk-ours", setup.work / "disk-before")
    identical = (f"; out/ of both arches byte-identical to ours but the manifest: {len(same)} files" if not differ
                 else f"; out/ files not byte-identical to ours: {', '.join(differ)}")
    return [
        B.Figure("disk_ours", "build/ after scons arch=all, ours (du -s -B1)", mb["ours"], "MB",
                 note=how + hits.get("ours", "")),
        B.Figure("disk_before", f"  the same, revision {before_rev}", mb["before"], "MB",
                 note=(hits.get("before", "") + identical).lstrip("; ")),
        B.Figure("disk_ratio", "  ours / before", B.ratio(sizes["ours"], sizes["before"]), "x",
                 goal=B.GOALS["disk"], note=f"{mb['ours']:.1f} MB against {mb['before']:.1f} MB"),
    ]
