"""SCons tool for mkdump-build: one Command per node of `mkdump.stages.plan`, nothing more.

A node's targets are its stamp (or its one file) and the files the stamp vouches for; its first source is a
Value holding its signature (`Node.signature`: the stage's parameters, serialised whole), then the results of the
nodes it needs and the files it reads. The action (one module-level function for every stage, so its own
signature is stable) hands the parameters back whole to the stage's function. Options that must not cause
rebuilds (jobs, verbose, offline, mirrors, cc_launcher, DESTDIR) reach it through the construction environment,
outside any signature. cache_dir= lives in mkdump_scons.cachedir, the signature database in mkdump_scons.signatures.
"""
import atexit
import gc
import os
import sys

import SCons.Action
from SCons.Script import (ARGLIST, COMMAND_LINE_TARGETS, AddMethod, Alias, AlwaysBuild, Default, Exit, GetLaunchDir,
                          GetOption, SetOption)

from mkdump import buildlock, layout, stages
from mkdump.options import ARCHES
from mkdump.logs import log_default
from mkdump.errors import NO_SPACE, Interrupted, MkdumpError, NoSpace
from mkdump_scons import commandline, signatures
from mkdump_scons.cachedir import literal, nodes


def _run_stage(target, source, env):
    stage, params, where = stages.params_from_signature(source[0].read())
    run = env["MKDUMP_OPTS"]
    lay = layout.Layout(where["root"], where["arch"], where["out_name"] or "out")
    try:
        stage.function(params, stages.Context(lay, stages.Project(where["top"]), run, log_default))
    except Interrupted as err:
        log_default(f"mkdump: {err}")
        return 2
    except NoSpace as err:
        signatures.no_space(run.build, err.path, f"{err.what}: {err.reason}", str(err))
        return 2
    except MkdumpError as err:
        log_default(f"mkdump: error: {err}")
        return 2
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        # A failed write() names no file: the stage was writing where it writes, DESTDIR for install.
        at = e.filename or (run.destdir if stage.name == "install" else run.build)
        what = f"{e.strerror} writing {at}"
        signatures.no_space(run.build, at, what, f"{what}; free some space there and run again.")
        return 2
    return 0


def _describe(target, source, env):
    """Silent (each stage prints its own progress line), except under `scons -n`: what would run."""
    if not GetOption("no_exec"):
        return None
    stage, _, where = stages.params_from_signature(source[0].read())
    return f"mkdump: would run {stage.name} ({os.path.relpath(str(target[0]), where['root'])})"


_ACTION = SCons.Action.Action(_run_stage, strfunction=_describe)


def _declare(env, opts, top):
    """The whole graph of this run, from the stage table."""
    from mkdump.sources import load_sources
    project = stages.Project(top)
    sources = load_sources(project.sources_toml)
    if len(opts.arches) > 1 and "install" in COMMAND_LINE_TARGETS:
        one_of = " or ".join(f"arch={a}" for a in ARCHES)
        raise MkdumpError(f"Install one arch at a time ({one_of}): each installs /lib/modules/<release>/extra/"
                          "mkexec.ko and /boot/vmlinuz-<release>, so one DESTDIR holds one arch's system kernel.")
    if len(opts.arches) > 1 and "menuconfig" in COMMAND_LINE_TARGETS:
        raise MkdumpError(f"menuconfig opens one arch's kernel: give {' or '.join(f'arch={a}' for a in ARCHES)}.")
    shared = None
    if opts.cache_dir:
        from mkdump_scons import cachedir
        shared = cachedir.shared_env(env, opts.cache_dir)
    out_name = "checked" if shared else "out"
    plan = stages.plan(opts, project, sources, out_name=out_name)
    # A fetch stamp whose file changed since no longer vouches for it: SCons cannot see a file outside the graph.
    stale = stages.stale_fetches(opts.build, sources, project.lock_path)
    made, published = {}, {}
    for n in plan:
        deps = [t for m in n.needs for t in made[m.id]]
        if n.stage.reads_out:
            if n.arch not in published:
                published[n.arch] = _publish(env, shared, n.arch, deps, plan, opts, project, sources)
            deps = published[n.arch]
        cmd = env.Command(nodes(env, n.targets), [env.Value(n.signature())] + deps + nodes(env, n.files), _ACTION)
        made[n.id] = cmd
        if n.arch and any(_inside(t, layout.Layout(opts.build, n.arch, out_name).out) for t in n.targets):
            # SCons deletes targets before their action runs: a failing check must not leave out/ half emptied.
            env.Precious(cmd)
        if shared:
            # A stamp stands for a whole tree, which no cache can hold: never retrieve one bare.
            env.NoCache(cmd)
        # A stamp whose tree or files are gone vouches for nothing, nor does a fetch stamp whose file changed
        # since (outside the graph, SCons cannot see either): the stage runs again, and nothing is removed here.
        if (n.stage.always or any(not os.path.exists(p) for p in n.vouched)
                or (n.stage.scope == "source" and n.each in stale)):
            AlwaysBuild(cmd)
        if n.stage.target:
            Alias(n.stage.target, made[n.id])
    for arch in opts.arches:
        last = [t for n in plan if n.arch == arch and n.stage.default and not _needed_by_default(n, plan)
                for t in made[n.id]]
        Default(published.get(arch) or _publish(env, shared, arch, last, plan, opts, project, sources))


def _needed_by_default(node, plan):
    return any(node in n.needs for n in plan if n.stage.default)


def _inside(path, directory):
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(directory)]) == os.path.abspath(directory)


def _publish(env, shared, arch, made, plan, opts, project, sources):
    """The published products of `arch`: `made` itself, or with cache_dir= the publish node that fills out/
    from checked/ or from the cache."""
    if not shared:
        return made
    from mkdump.sources import LockFile
    from mkdump_scons import cachedir
    lay = layout.Layout(opts.build, arch)
    checked = layout.Layout(opts.build, arch, "checked").out
    names = [os.path.basename(t) for n in plan if n.arch == arch for t in n.targets if _inside(t, checked)]
    lock = LockFile(project.lock_path)
    key, pins = cachedir.input_key(made, arch=arch, opts=opts, project=project, sources=sources, lock=lock,
                                   manifest_options=stages.manifest_options(opts, arch))
    node = cachedir.share(shared, made, names, arch=arch, checked_dir=checked, out_dir=lay.out,
                          check_stamp=lay.stamp("check"), key=key, pins=pins, lock_path=project.lock_path)
    Alias("check", node)
    return node


class _Runtime:
    """Options the actions need at run time but that must not enter any signature."""

    def __init__(self, opts):
        self.__dict__.update(opts.__dict__)
        n = GetOption("num_jobs") or 1
        self.jobs_effective = opts.jobs or (n if n > 1 else opts.deb_parallel or os.cpu_count() or 1)


def _run_repro(target, source, env):
    from mkdump import repro
    o = env["MKDUMP_OPTS"]
    req = repro.Request(top=env.Dir("#").abspath, launch_dir=GetLaunchDir() or os.getcwd(), arglist=list(ARGLIST),
                        build=o.build, arches=o.arches, cache=o.cache, jobs=o.jobs_effective, keep=o.keep,
                        read_paths=[p for p in (o.minik_fragment, o.system_config, o.cc_launcher)
                                    if p and os.path.isabs(p)])
    try:
        repro.run(req, log=log_default)
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


def _repro(env):
    """`scons repro`: two fresh builds in <build>/repro compared; nothing of the outer build dir is built."""
    node = env.Alias("repro", [], SCons.Action.Action(_run_repro, strfunction=lambda target, source, env: None))
    AlwaysBuild(node)


def _pipeline(env):
    top = env.Dir("#").abspath
    opts = commandline.collect(top)
    if opts is None:
        return
    run = env["MKDUMP_OPTS"] = _Runtime(opts)
    if GetOption("num_jobs") == 1 and run.jobs_effective > 1:
        # Stages that do not need each other run at once: both kernels' config and make, mkexec.ko and the modules
        # beside the mini kernel's make. Their makes share jobs= through one jobserver (runner.Jobserver), so the
        # machine runs as many compiles as before, and one kernel's link no longer leaves a core idle. An explicit
        # `scons -j1` keeps the stages one at a time.
        SetOption("num_jobs", run.jobs_effective)
    # -n and -q only look: they write nothing, never wait, and while another run holds the build directory they
    # neither take the lock nor change anything (see buildlock).
    looking = bool(GetOption("no_exec") or GetOption("question"))
    try:
        if not looking:
            # Each build root keeps its own signature database: build= directories are independent of each
            # other and of the checkout, which may be read-only.
            try:
                os.makedirs(opts.build, exist_ok=True)
            except OSError as e:
                raise MkdumpError(f"build={opts.build} cannot be created ({e.strerror}); give a directory you can "
                                  "write.") from None
        lock = buildlock.acquire(opts.build, wait=not looking, log=log_default, record=not GetOption("no_exec"))
        _HELD.append(lock)
        if not looking:
            # Under the lock no other run can be using them: these are the staging places of a run that was killed.
            from mkdump.fsutil import remove_stale_staging
            remove_stale_staging(opts.build, ARCHES, log_default)
        signatures.SignatureDatabase.writes = lock is not None and not looking
        signatures.SignatureDatabase.build = opts.build
        env.SConsignFile(literal(os.path.join(opts.build, ".sconsign")), signatures.DATABASE)
        _repro(env)
        _declare(env, opts, top)
    except MkdumpError as err:
        print(f"scons: *** {err}", file=sys.stderr)
        Exit(2)


# The build directory's lock, open until the process ends.
_HELD = []


def generate(env):
    # With scons -jN the stages run in worker threads, where no signal handler can be set: watch for Ctrl-C from
    # here, the main thread, so that every running make is stopped at once.
    from mkdump import runner
    runner.watch_signals()
    # CPython ends with a full collection of every object still alive: SCons' nodes, every module, everything the
    # graph read made, about 13 ms of a 140 ms no-op on the 2-core VM, to free memory the process gives back
    # anyway. Frozen, they are left to the exit. Nothing relies on that collection: our files are closed by `with`,
    # and SCons writes its signature database before it exits.
    atexit.register(gc.freeze)
    AddMethod(env, _pipeline, "MkdumpPipeline")
    env.Decider(signatures.content_unless_old)


def exists(env):
    """The tool needs the mkdump package beside it and make on the PATH (every kernel stage runs it)."""
    import shutil
    try:
        import mkdump.stages  # noqa: F401
    except ImportError:
        return False
    return shutil.which("make") is not None
