"""SCons tool for mkdump-build: thin Builders over the stage functions in mkdump.pipeline.

Every stage is one Command whose target is a stamp file and whose first source is a Value holding the stage's
parameters as canonical JSON; the action (one module-level function for all stages, so its signature is stable)
reads them back and calls the stage. Options that must not cause rebuilds (jobs, verbose, offline, mirrors) reach
the action through the construction environment instead, outside its signature.
"""
import json
import os
import sys

import SCons.Action
from SCons.Script import (ARGUMENTS, AddMethod, Alias, AlwaysBuild, Default, Exit, GetOption, Help, Variables)

from mkdump import layout as L
from mkdump import options as O
from mkdump import pipeline as P
from mkdump import stamp
from mkdump.errors import MkdumpError


def _stage_fetch(p, opts, log):
    from mkdump.sources import load_sources
    src = load_sources(p["sources_toml"])[p["source"]]
    P.fetch(src, root=opts.build, cache=opts.cache, sources_dirs=opts.sources, mirrors=opts.mirrors,
            offline=opts.offline, lock_path=p["lock"], log=log)


def _stage_unpack(p, opts, log):
    from mkdump.sources import load_sources
    src = load_sources(p["sources_toml"])[p["source"]]
    P.unpack(src, L.Layout(p["root"], p["arch"]), log=log)


def _stage_toolchain(p, opts, log):
    P.toolchain(L.Layout(p["root"], p["arch"]), cc=p["cc"], cross_compile=p["cross_compile"], log=log)


def _stage_patch(p, opts, log):
    P.patch(p["kind"], L.Layout(p["root"], p["arch"]), series_path=p["series"], patches_dir=p["patches_dir"],
            fuzz=p["fuzz"], log=log)


def _stage_config(p, opts, log):
    P.config(p["kind"], L.Layout(p["root"], p["arch"]), configs_dir=p["configs_dir"],
             dump_driver=p["dump_driver"], pae=p["pae"], minik_fragment=p["minik_fragment"],
             system_config=p["system_config"], log=log)


def _stage_build(p, opts, log):
    P.build(p["kind"], L.Layout(p["root"], p["arch"]), jobs=opts.jobs_effective, verbose=opts.verbose,
            source_date_epoch=p["source_date_epoch"], log=log)


_STAGES = {
    "fetch": _stage_fetch,
    "unpack": _stage_unpack,
    "toolchain": _stage_toolchain,
    "patch": _stage_patch,
    "config": _stage_config,
    "build": _stage_build,
}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _run_stage(target, source, env):
    params = json.loads(source[0].read())
    try:
        _STAGES[params["stage"]](params, env["MKDUMP_OPTS"], _log)
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


def _quiet(target, source, env):
    return None  # the stages print their own progress line


_ACTION = SCons.Action.Action(_run_stage, strfunction=_quiet)


class Pipeline:
    """Declares the graph for one build; SConstruct calls its methods in pipeline order."""

    def __init__(self, env, opts, top):
        self.env = env
        self.opts = opts
        self.top = top
        self.patches_dir = os.path.join(top, "patches")
        self.configs_dir = os.path.join(top, "configs")
        self.sources_toml = os.path.join(self.patches_dir, "sources.toml")
        self.lock = os.path.join(self.patches_dir, "sources.lock")
        from mkdump.sources import LockFile, load_sources
        self.sources = load_sources(self.sources_toml)
        self._lock = LockFile(self.lock)
        self.fetched = {}

    def _stage(self, targets, params, deps=(), requires=()):
        """One stage: `requires` are paths the stamp vouches for; if one is gone the stamp is void."""
        if any(not os.path.exists(p) for p in requires):
            for t in targets:
                if os.path.exists(t):
                    os.remove(t)
        value = self.env.Value(json.dumps(params, sort_keys=True))
        return self.env.Command(list(targets), [value] + list(deps), _ACTION)

    def fetch(self):
        root = self.opts.build
        for name, src in self.sources.items():
            try:
                where = stamp.read(L.fetch_where(root, name))["path"]
            except (OSError, ValueError, KeyError):
                where = None
            sig = P.fetch_signature(src, root=root, lock_sha256=self._lock.get(src.file))
            sig.pop("present")
            node = self._stage([L.fetch_stamp(root, name), L.fetch_where(root, name)],
                               dict(sig, stage="fetch", source=name, sources_toml=self.sources_toml,
                                    lock=self.lock),
                               requires=[where] if where else [L.fetch_where(root, name)])
            self.fetched[name] = node[0]
            Alias("fetch", node)
        return self.fetched

    def arch(self, arch):
        return ArchPipeline(self, arch)


class ArchPipeline:
    def __init__(self, pipe, arch):
        self.p = pipe
        self.env = pipe.env
        self.opts = pipe.opts
        self.lay = L.Layout(pipe.opts.build, arch)
        self.arch = arch
        self.unpacked = {}

    def _base(self, stage, **kw):
        return dict(kw, stage=stage, root=self.lay.root, arch=self.arch)

    def unpack(self):
        for name in ("linux", "mkexec"):
            node = self.p._stage([self.lay.stamp("unpack-" + name)],
                                 self._base("unpack", source=name, sources_toml=self.p.sources_toml,
                                            tree_sha256=self.p.sources[name].tree_sha256),
                                 deps=[self.p.fetched[name]], requires=[P.unpacked_dir(self.lay, name)])
            self.unpacked[name] = node[0]
            Alias("unpack", node)
        return self.unpacked

    def toolchain(self):
        node = self.p._stage([self.lay.stamp("toolchain")],
                             self._base("toolchain", cc=self.opts.cc, cross_compile=self.opts.cross_compile))
        self.toolchain_stamp = node[0]
        return node

    def kernel(self, kind):
        """patch -> config -> build for one of the two kernel trees."""
        tree = self.lay.tree(kind)
        series = os.path.join(self.p.patches_dir, kind + ".series")
        files, srcs = P.series_inputs(series, self.arch, self.p.patches_dir)
        deps = [series, self.unpacked["linux"]] + files
        for s in srcs:
            deps.append(self.unpacked[s] if s in self.unpacked else self.p.fetched[s])
        patched = self.p._stage([self.lay.stamp("patch-" + kind)],
                                self._base("patch", kind=kind, series=series, patches_dir=self.p.patches_dir,
                                           fuzz=self.opts.fuzz),
                                deps=deps, requires=[tree])
        Alias("patch", patched)

        from mkdump import kconfig
        frags = kconfig.fragments_for(self.p.configs_dir, arch=self.arch, kind=kind,
                                      dump_driver=self.opts.dump_driver, pae=self.opts.pae,
                                      user_fragment=self.opts.minik_fragment if kind == "minik" else None)
        cfg_deps = [patched[0], self.toolchain_stamp] + [f for f in frags if isinstance(f, str)]
        if kind == "system" and self.opts.system_config:
            cfg_deps.append(self.opts.system_config)
        configured = self.p._stage([self.lay.stamp("config-" + kind)],
                                   self._base("config", kind=kind, configs_dir=self.p.configs_dir,
                                              dump_driver=self.opts.dump_driver, pae=self.opts.pae,
                                              minik_fragment=self.opts.minik_fragment,
                                              system_config=self.opts.system_config),
                                   deps=cfg_deps, requires=[os.path.join(tree, ".config")])
        Alias("config", configured)

        built = self.p._stage([self.lay.stamp("build-" + kind)],
                              self._base("build", kind=kind, source_date_epoch=self.opts.source_date_epoch),
                              deps=[patched[0], configured[0], self.toolchain_stamp],
                              requires=[os.path.join(tree, rel) for rel in P.kernel_outputs(kind, self.arch)])
        Alias("build", built)
        return built


class _Runtime:
    """Options the actions need at run time but that must not enter any signature."""

    def __init__(self, opts):
        self.__dict__.update(opts.__dict__)
        n = GetOption("num_jobs") or 1
        self.jobs_effective = opts.jobs or (n if n > 1 else os.cpu_count() or 1)


def _options(env, top):
    from mkdump import kconfig
    families = kconfig.dump_driver_families(os.path.join(top, "configs"))
    names = list(families)
    default_driver = next((n for n, f in families.items() if f.get("default")), names[0])
    vars_ = Variables(None, ARGUMENTS)
    for spec in O.specs(names, default_driver):
        vars_.Add(spec.name, spec.help, spec.default)
    vars_.Update(env)
    drivers_help = "\nDump driver families (dump_driver=):\n" + "".join(
        f"  {n:12} {f.get('description', '')} [{', '.join(f['symbols'])}]\n" for n, f in families.items())
    Help(_HELP_HEAD + vars_.GenerateHelpText(env) + drivers_help + _HELP_TAIL)
    if GetOption("help"):
        return None
    unknown = vars_.UnknownVariables()
    try:
        if unknown:
            raise MkdumpError(O.unknown_message(unknown))
        raw = {s.name: env.subst(str(env[s.name]), raw=1) for s in O.specs(names, default_driver)}
        return O.parse(raw, dump_drivers=names, base_dir=GetLaunchDirSafe())
    except MkdumpError as err:
        print(f"scons: *** {err}", file=sys.stderr)
        Exit(2)


def GetLaunchDirSafe():
    from SCons.Script import GetLaunchDir
    return GetLaunchDir() or os.getcwd()


_HELP_HEAD = """mkdump-build: the Mini Kernel Dump recipe for Linux 2.6.9 as one command.

Usage: scons [TARGET...] [VARIABLE=VALUE...]
Targets (each stops after its stage; the default runs up to the checked artifacts and manifest):
  fetch      download and verify every source (after it, offline=1 needs no network)
  unpack     unpack the verified sources into <build>/<arch>/src/
  patch      patch the mini kernel tree <build>/<arch>/minik/ and the system kernel tree <build>/<arch>/system/
  config     configure both kernels and audit the mini kernel's rules
  build      build both kernels and mkexec.ko
  check      check the artifacts and publish them in <build>/<arch>/out/
  install    install into DESTDIR (scons install DESTDIR=/tmp/stage)
  boot-test  boot the built kernels under QEMU

Variables:
"""

_HELP_TAIL = """
Files: <build>/<arch>/out/ holds vmlinux.bin, mkexec.ko, manifest.json and the load script;
<build>/<arch>/logs/ the build logs; <build>/<arch>/reports/ the patch and check reports.
"""


def _pipeline(env):
    top = env.Dir("#").abspath
    opts = _options(env, top)
    if opts is None:
        return None
    env["MKDUMP_OPTS"] = _Runtime(opts)
    return Pipeline(env, opts, top)


def generate(env):
    AddMethod(env, _pipeline, "MkdumpPipeline")


def exists(env):
    return True
