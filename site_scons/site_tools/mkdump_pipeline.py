"""SCons tool for mkdump-build: thin Builders over the stage functions in mkdump.pipeline.

Every stage is one Command whose target is a stamp file and whose first source is a Value holding the stage's
parameters as canonical JSON; the action (one module-level function for all stages, so its signature is stable)
reads them back and calls the stage. Options that must not cause rebuilds (jobs, verbose, offline, mirrors,
cc_launcher) reach the action through the construction environment instead, outside its signature.
"""
import json
import os
import shutil
import sys
import time
import types

import SCons.Action
import SCons.CacheDir
import SCons.dblite
import SCons.Errors
import SCons.Node.FS
from SCons.Script import (ARGLIST, ARGUMENTS, COMMAND_LINE_TARGETS, AddMethod, Alias, AlwaysBuild, Default, Exit,
                          GetLaunchDir, GetOption, Help)

from mkdump import buildlock
from mkdump import layout as L
from mkdump import options as O
from mkdump import pipeline as P
from mkdump import products
from mkdump.errors import NO_SPACE, Interrupted, MkdumpError, NoSpace


def _layout(p):
    """The stages after build work in checked/ instead of out/ when cache_dir= is set (see ArchPipeline._share)."""
    return L.Layout(p["root"], p["arch"], p.get("out_name", "out"))


def _literal(path):
    """`path` as SCons' directory settings must be given it to take it as it is: SCons substitutes `$` in them."""
    return path.replace("$", "$$")


def _nodes(env, paths):
    """Nodes for targets and sources: SCons substitutes `$` in a path given as a string, never in a node."""
    return [env.fs.Entry(p) if isinstance(p, str) else p for p in paths]


def _stage_fetch(p, opts, log):
    from mkdump.sources import load_sources
    src = load_sources(p["sources_toml"])[p["source"]]
    P.fetch(src, root=opts.build, cache=opts.cache, sources_dirs=opts.sources, mirrors=opts.mirrors,
            offline=opts.offline, lock_path=p["lock_path"], log=log)


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
    P.build(p["kind"], L.Layout(p["root"], p["arch"]), jobs=opts.jobs_effective, launcher=opts.cc_launcher,
            verbose=opts.verbose, source_date_epoch=p["source_date_epoch"], log=log)


def _stage_mkexec(p, opts, log):
    P.mkexec(L.Layout(p["root"], p["arch"]), launcher=opts.cc_launcher, verbose=opts.verbose, log=log)


def _stage_check(p, opts, log):
    P.check(_layout(p), minik_mem=p["minik_mem"], log=log)


def _stage_load_script(p, opts, log):
    P.load_script(_layout(p), minik_mem=p["minik_mem"], dump_dev=p["dump_dev"],
                  minik_params=p["minik_params"], prefix=p["prefix"], log=log)


def _stage_manifest(p, opts, log):
    from mkdump.sources import load_sources
    P.manifest(_layout(p), sources=load_sources(p["sources_toml"]),
               opts_for_manifest=p["options"], source_date_epoch=p["source_date_epoch"], top=p["top"])


def _stage_install(p, opts, log):
    P.install(L.Layout(p["root"], p["arch"]), destdir=opts.destdir, prefix=opts.prefix, log=log)


def _stage_boot_test(p, opts, log):
    P.boot_test(_layout(p), minik_mem=opts.minik_mem, jobs=opts.jobs_effective, log=log)


_STAGES = {
    "fetch": _stage_fetch,
    "unpack": _stage_unpack,
    "toolchain": _stage_toolchain,
    "patch": _stage_patch,
    "config": _stage_config,
    "build": _stage_build,
    "mkexec": _stage_mkexec,
    "check": _stage_check,
    "load_script": _stage_load_script,
    "manifest": _stage_manifest,
    "install": _stage_install,
    "boot_test": _stage_boot_test,
}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _run_stage(target, source, env):
    params = json.loads(source[0].read())
    build = env["MKDUMP_OPTS"].build
    try:
        _STAGES[params["stage"]](params, env["MKDUMP_OPTS"], _log)
    except Interrupted as err:
        print(f"mkdump: {err}", file=sys.stderr, flush=True)
        return 2
    except NoSpace as err:
        _no_space(build, err.path, f"{err.what}: {err.reason}", str(err))
        return 2
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        # A failed write() names no file: the stage was writing where it writes, DESTDIR for install.
        where = e.filename or (env["MKDUMP_OPTS"].destdir if params["stage"] == "install" else build)
        what = f"{e.strerror} writing {where}"
        _no_space(build, where, what, f"{what}; free some space there and run again.")
        return 2
    return 0


def _inside(path, directory):
    path, directory = os.path.abspath(path), os.path.abspath(directory)
    return os.path.commonpath([path, directory]) == directory


# Said once per run: after a stage reported the full disk, the signature database fails to be written too.
_SAID_NO_SPACE = []


def _no_space(build, path, detail, elsewhere):
    """One sentence for a full disk: the build directory's when `path` is in it (`detail` says what failed), else
    `elsewhere` (a download cache, say)."""
    if _inside(path, build):
        message = f"the build directory {build} is full ({detail}); free some space there and run again."
    else:
        message = elsewhere
    if not _SAID_NO_SPACE:
        print(f"mkdump: error: {message}", file=sys.stderr, flush=True)
    _SAID_NO_SPACE.append(path)


def _quiet(target, source, env):
    return None  # the stages print their own progress line


_ACTION = SCons.Action.Action(_run_stage, strfunction=_quiet)


def _user_errors(method):
    """Declaring the graph reads series, fragments and the sources manifest: their errors are user errors too."""
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except MkdumpError as err:
            print(f"scons: *** {err}", file=sys.stderr)
            Exit(2)
    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class Pipeline:
    """Declares the graph for one build; SConstruct calls its methods in pipeline order."""

    @_user_errors
    def __init__(self, env, opts, top, read_only=False):
        self.env = env
        self.opts = opts
        self.top = top
        # -n or -q while another run holds the build directory: look, never touch.
        self.read_only = read_only
        self.patches_dir = os.path.join(top, "patches")
        self.configs_dir = os.path.join(top, "configs")
        self.sources_toml = os.path.join(self.patches_dir, "sources.toml")
        self.lock = os.path.join(self.patches_dir, "sources.lock")
        from mkdump.sources import LockFile, load_sources
        self.sources = load_sources(self.sources_toml)
        self._lock = LockFile(self.lock)
        self.fetched = {}
        self.shared_env = _shared_env(env, opts.cache_dir) if opts.cache_dir else None

    def _stage(self, targets, params, deps=(), requires=(), void=False):
        """One stage: `requires` are paths the stamp vouches for; if one is gone, or `void`, the stamp is void."""
        stale = void or any(not os.path.exists(p) for p in requires)
        if stale and not self.read_only:
            for t in targets:
                if os.path.exists(t):
                    os.remove(t)
        value = self.env.Value(json.dumps(params, sort_keys=True))
        nodes = self.env.Command(_nodes(self.env, targets), [value] + _nodes(self.env, deps), _ACTION)
        if stale and self.read_only:
            AlwaysBuild(nodes)
        if self.shared_env:
            # A stamp stands for a whole tree, which no cache can hold: never retrieve one bare.
            self.env.NoCache(nodes)
        return nodes

    @_user_errors
    def fetch(self):
        root = self.opts.build
        for name, src in self.sources.items():
            node = self._stage([L.fetch_stamp(root, name), L.fetch_where(root, name)],
                               dict(P.fetch_signature(src), stage="fetch", source=name,
                                    sources_toml=self.sources_toml, lock_path=self.lock),
                               void=P.fetch_stamp_stale(root, src, self._lock.get(src.file)))
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
        self.products = products.load(arch)
        self.unpacked = {}
        # With cache_dir=, check, the manifest and the load script write to checked/ and _share() fills out/.
        self.work_out = {"out_name": "checked"} if pipe.opts.cache_dir else {}
        self.work = L.Layout(pipe.opts.build, arch, **self.work_out)

    def _pae(self):
        return self.opts.pae if self.arch == "i386" else None

    def _base(self, stage, **kw):
        return dict(kw, stage=stage, root=self.lay.root, arch=self.arch)

    @_user_errors
    def unpack(self):
        for name in ("linux", "mkexec"):
            node = self.p._stage([self.lay.stamp("unpack-" + name)],
                                 self._base("unpack", source=name, sources_toml=self.p.sources_toml,
                                            tree_sha256=self.p.sources[name].tree_sha256),
                                 deps=[self.p.fetched[name]], requires=[P.unpacked_dir(self.lay, name)])
            self.unpacked[name] = node[0]
            Alias("unpack", node)
        return self.unpacked

    @_user_errors
    def toolchain(self):
        # Detection re-runs when the options, our toolchain data or a program it may pick (compiler driver, as,
        # ld, host compiler: the programs cache_dir='s key holds) change; an upgraded gcc changes the flags that
        # work and the vermagic. The builds re-run when what it detects (versions, flags) differs.
        from mkdump.cachekey import compiler_tools
        from mkdump.arch import load as load_arch
        from mkdump.toolchain import load_arch_data
        tools = compiler_tools(load_arch_data(self.arch), cc=self.opts.cc, cross_compile=self.opts.cross_compile)
        found = [shutil.which(t) for t in tools]
        deps = [load_arch(self.arch).path] + sorted({os.path.realpath(f) for f in found if f})
        node = self.p._stage([self.lay.stamp("toolchain")],
                             self._base("toolchain", cc=self.opts.cc, cross_compile=self.opts.cross_compile),
                             deps=deps)
        self.toolchain_stamp = node[0]
        return node

    @_user_errors
    def kernel(self, kind):
        """patch -> config -> build for one of the two kernel trees."""
        tree = self.lay.tree(kind)
        product = self.products[kind]
        series = os.path.join(self.p.patches_dir, product.series)
        files, srcs = P.series_inputs(series, self.arch, self.p.patches_dir)
        deps = [series, self.unpacked["linux"]] + files
        for s in srcs:
            deps.append(self.unpacked[s] if s in self.unpacked else self.p.fetched[s])
        patched = self.p._stage([self.lay.stamp("patch-" + kind)],
                                self._base("patch", kind=kind, series=series, patches_dir=self.p.patches_dir,
                                           fuzz=self.opts.fuzz),
                                deps=deps, requires=[tree])
        Alias("patch", patched)

        minik = kind == "minik"
        cfg = dict(configs_dir=self.p.configs_dir,
                   dump_driver=self.opts.dump_driver if minik else None,
                   pae=self._pae() if minik else None,
                   minik_fragment=self.opts.minik_fragment if minik else None,
                   system_config=None if minik else self.opts.system_config)
        frags = P.config_fragments(kind, self.arch, **cfg)
        cfg_deps = [patched[0], self.toolchain_stamp] + [f for f in frags if isinstance(f, str)] + [
            os.path.join(self.p.configs_dir, n) for n in ("rules.toml", "dump-drivers.toml")]
        # The user's files are parsed into Fragment objects above, so they are named here: an edit re-runs config.
        cfg_deps += [f for f in (cfg["minik_fragment"], cfg["system_config"]) if f and f != "defconfig"]
        configured = self.p._stage([self.lay.stamp("config-" + kind)],
                                   self._base("config", kind=kind, **cfg),
                                   deps=cfg_deps, requires=[os.path.join(tree, ".config")])
        Alias("config", configured)

        built = self.p._stage([self.lay.stamp("build-" + kind)],
                              self._base("build", kind=kind, source_date_epoch=self.opts.source_date_epoch),
                              deps=[patched[0], configured[0], self.toolchain_stamp],
                              requires=[os.path.join(tree, rel) for rel in product.outputs])
        Alias("build", built)
        setattr(self, kind, built[0])
        return built

    @_user_errors
    def mkexec(self):
        node = self.p._stage([self.lay.stamp("mkexec")], self._base("mkexec"),
                             deps=[self.unpacked["mkexec"], self.system, self.toolchain_stamp],
                             requires=[os.path.join(self.lay.mkexec_build, rel)
                                       for rel in self.products["mkexec"].outputs])
        Alias("build", node)
        self.module = node[0]
        return node

    @_user_errors
    def check(self):
        """Check the artifacts, then publish them in out/ (nothing unchecked reaches out/)."""
        outs = [os.path.join(self.work.out, n) for n in products.published(self.arch)]
        node = self.p._stage([self.lay.stamp("check")] + outs,
                             self._base("check", minik_mem=self.opts.minik_mem, **self.work_out),
                             deps=[self.minik, self.system, self.module])
        # SCons deletes a target before its action runs: a failing check would leave out/ half emptied.
        self.env.Precious(outs)
        Alias("check", node)
        self.checked = node
        return node

    @_user_errors
    def outputs(self):
        """The load script and the manifest, the last products of the default target."""
        from mkdump.loadscript import script_name
        o = self.opts
        script = self.p._stage([os.path.join(self.work.out, script_name(self.arch))],
                               self._base("load_script", minik_mem=o.minik_mem, dump_dev=o.dump_dev,
                                          minik_params=o.minik_params, prefix=o.prefix, **self.work_out),
                               deps=[self.system])
        manifest_opts = {
            "dump_driver": o.dump_driver, "pae": self._pae(),
            "minik_mem": o.minik_mem, "fuzz": o.fuzz, "dump_dev": o.dump_dev, "minik_params": o.minik_params,
            "prefix": o.prefix,
            "minik_fragment_sha256": P.optional_sha256(o.minik_fragment),
            "system_config_sha256": P.optional_sha256(None if o.system_config == "defconfig" else o.system_config),
        }
        stamps = [self.lay.stamp(n) for n in ("toolchain", "patch-minik", "patch-system", "config-minik",
                                             "config-system", "build-minik", "build-system", "mkexec")]
        fetched = [L.fetch_where(self.opts.build, n) for n in self.p.sources] + list(self.p.fetched.values())
        manifest = self.p._stage([os.path.join(self.work.out, "manifest.json")],
                                 self._base("manifest", sources_toml=self.p.sources_toml, options=manifest_opts,
                                            top=self.p.top,
                                            source_date_epoch=o.source_date_epoch, **self.work_out),
                                 deps=stamps + fetched + list(self.checked) + list(script))
        self.env.Precious(manifest + script)
        self.published = manifest + script
        if self.p.shared_env:
            self.published = self._share(self.published, manifest_opts)
        Default(self.published)
        return self.published

    def _input_key(self, made, manifest_opts):
        """The cache key of this arch's out/ (mkdump.cachekey) and the source pins it holds. The project files in
        it are the graph's own leaves behind `made`, so a file a stage starts reading enters the key by itself."""
        from mkdump import cachekey as K
        from mkdump.toolchain import load_arch_data
        o = self.opts
        files = _leaf_files(made) + [self.p.sources_toml, str(products.PRODUCTS_TOML)] + K.code_files(self.p.top)
        project, external = K.file_digests(self.p.top, files)
        tools = K.compiler_tools(load_arch_data(self.arch), cc=o.cc, cross_compile=o.cross_compile)
        pins = K.source_pins(self.p.sources, self.p._lock)
        description = K.describe(
            arch=self.arch, project=project, external=external, pins=pins,
            programs=K.program_digests(tools, os.environ.get("PATH", os.defpath)),
            options=dict(manifest_opts, cc=o.cc, cross_compile=o.cross_compile,
                         source_date_epoch=o.source_date_epoch))
        return K.digest(description), pins

    def _share(self, made, manifest_opts):
        """cache_dir=: one publish node fills out/. Its only source is the input key, so SCons can retrieve its
        targets without bringing the stages up to date; the stages (`made`: the manifest and load script, and
        through them everything else) are an order-only prerequisite, declared only when the cache cannot
        supply every artifact of this key, or for `scons -c`."""
        from mkdump.cachekey import unpinned
        from mkdump.loadscript import script_name
        names = ["manifest.json"] + list(products.published(self.arch)) + [script_name(self.arch)]
        key, pins = self._input_key(made, manifest_opts)
        env = self.p.shared_env
        params = {"arch": self.arch, "key": key, "names": names, "checked": self.work.out, "out": self.lay.out,
                  "check_stamp": self.lay.stamp("check")}
        node = env.Command(_nodes(env, [os.path.join(self.lay.out, n) for n in names]), env.Value(json.dumps(params)),
                           _PUBLISH)
        for t in node:
            t.attributes.mkdump_key = key
        loose = unpinned(pins)
        if loose:
            env.NoCache(node)
            _log(f"mkdump: [{self.arch}] cache_dir: not used by this run, source {', '.join(loose)} is not pinned "
                 f"yet (this run's fetch records it in {self.p.lock}; commit that file).")
        cache = env.get_CacheDir()
        # --cache-disable only reaches SCons.CacheDir once the SConscripts are read: ask the option itself.
        hit = not (loose or GetOption("cache_disable")) and all(os.path.isfile(cache.cachepath(t)[1]) for t in node)
        if GetOption("clean") or not hit:
            env.Requires(node, made)
            for t in node:
                t.attributes.mkdump_stages = True
        Alias("check", node)
        return node

    @_user_errors
    def install(self):
        if len(self.opts.arches) > 1 and "install" in COMMAND_LINE_TARGETS:
            raise MkdumpError("Install one arch at a time (arch=x86_64 or arch=i386): each installs "
                              "/lib/modules/<release>/extra/mkexec.ko and /boot/vmlinuz-<release>, so one DESTDIR "
                              "holds one arch's system kernel.")
        node = self.p._stage([self.lay.stamp("install")], self._base("install"), deps=self.published)
        AlwaysBuild(node)
        Alias("install", node)

    @_user_errors
    def boot_test(self):
        node = self.p._stage([self.lay.report("boot-test.json")], self._base("boot_test", **self.work_out),
                             deps=self.checked)
        AlwaysBuild(node)
        Alias("boot-test", node)


def _leaf_files(nodes):
    """Every file the stages behind `nodes` read that no stage makes: the project's inputs as the graph knows
    them (plus the compiler binary and a user's fragment or .config, outside the checkout)."""
    seen, leaves, todo = set(), [], list(nodes)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.has_builder():
            todo.extend(n.sources + n.depends)
        elif isinstance(n, SCons.Node.FS.Base):
            leaves.append(n.get_abspath())
    return sorted(leaves)


class _SharedCache(SCons.CacheDir.CacheDir):
    """cache_dir=: an entry is named by the input key and the artifact's out/ name alone (SCons' own names add
    the target's path, so teammates with another build= would never share), and each retrieved artifact is
    checked against the retrieved manifest, because SCons copies entries without looking at them."""

    def cachepath(self, node):
        key = getattr(node.attributes, "mkdump_key", None)
        if not self.is_enabled() or key is None:
            return None, None
        from mkdump.cachekey import entry
        name = entry(key, node.name)
        subdir = os.path.join(self.path, name[:self.config["prefix_len"]].upper())
        return subdir, os.path.join(subdir, name)

    def retrieve(self, node):
        if not super().retrieve(node):
            return False
        if SCons.Action.execute_actions:
            from mkdump.cachekey import check_retrieved
            group = node.get_executor().get_all_targets()
            manifest = next(t for t in group if t.name == "manifest.json")
            try:
                check_retrieved(node.dir.get_abspath(), node.name,
                                [self.cachepath(node)[1], self.cachepath(manifest)[1]])
            except MkdumpError as err:
                for t in group:
                    if os.path.exists(t.get_abspath()):
                        os.remove(t.get_abspath())
                raise SCons.Errors.BuildError(node=node, errstr=str(err), exitstatus=2) from None
        return True


def _shared_env(env, cache_dir):
    """The environment of the publish nodes only: no stage is ever built with a CacheDir."""
    shared = env.Clone()
    try:
        shared.CacheDir(_literal(cache_dir), custom_class=_SharedCache)
    except (SCons.Errors.SConsEnvironmentError, OSError) as e:
        raise MkdumpError(f"cache_dir={cache_dir} cannot be used as a build cache ({e}); give a directory you can "
                          "create or read, or leave cache_dir unset.") from None
    return shared


def _publish(target, source, env):
    p = json.loads(source[0].read())
    if not getattr(target[0].attributes, "mkdump_stages", False):
        # Declared as a hit, so no stage ran: the entries went away after the graph was made.
        print(f"mkdump: error: the cache_dir= entries of {p['out']} disappeared during this run; run scons again "
              "to build them.", file=sys.stderr, flush=True)
        return 2
    from mkdump.cachekey import publish
    _log(f"mkdump: [{p['arch']}] publishing the checked artifacts to {p['out']}")
    try:
        publish(p["checked"], p["out"], p["names"], p["check_stamp"])
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


_PUBLISH = SCons.Action.Action(_publish, strfunction=_quiet)


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
        repro.run(req, log=_log)
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


def _repro(env):
    """`scons repro`: two fresh builds in <build>/repro compared; nothing of the outer build dir is built."""
    node = env.Alias("repro", [], SCons.Action.Action(_run_repro, strfunction=_quiet))
    AlwaysBuild(node)


def _options(env, top):
    from mkdump import kconfig
    families = kconfig.dump_driver_families(os.path.join(top, "configs"))
    names = list(families)
    default_driver = next((n for n, f in families.items() if f.get("default")), names[0])
    specs = O.specs(names, default_driver)
    drivers_help = "\nDump driver families (dump_driver=):\n" + "".join(
        f"  {n:12} {f.get('description', '')} [{', '.join(f['symbols'])}]\n" for n, f in families.items())
    Help(_HELP_HEAD + "".join(_format_option(s) for s in specs) + drivers_help + _HELP_TAIL)
    if GetOption("help"):
        return None
    # Values are taken as typed, never through SCons' Variables: they would live in the construction environment,
    # where SCons substitutes `$` (build=out$dir made a directory out<built-in function dir>) and evaluates
    # `${...}` as Python, even while making the help text.
    raw = {s.name: ARGUMENTS.get(s.name, s.default) for s in specs}
    unknown = [name for name in ARGUMENTS if name not in raw]
    try:
        if unknown:
            raise MkdumpError(O.unknown_message(unknown))
        return O.parse(raw, dump_drivers=names, base_dir=GetLaunchDir() or os.getcwd())
    except MkdumpError as err:
        print(f"scons: *** {err}", file=sys.stderr)
        Exit(2)


def _format_option(spec):
    return f"  {spec.name:17} {spec.help}\n  {'':17} (default: {spec.default if spec.default != '' else 'none'})\n"


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
  repro      build twice in <build>/repro/{a,b} under different conditions and compare every output

Variables:
"""

_HELP_TAIL = """
Files: <build>/<arch>/out/ holds vmlinux.bin, mkexec.ko, manifest.json and the load script;
<build>/<arch>/logs/ the build logs; <build>/<arch>/reports/ the patch and check reports.

Sharing results: with cache_dir=DIR, <build>/<arch>/out/ is retrieved from DIR when every input (sources and
their pins, patches, configs, options, compiler, as and ld) matches, without running any stage; otherwise the
stages run in <build>/<arch>/checked/ and the checked artifacts are copied to out/ and DIR. SCons' options apply:
--cache-readonly (retrieve, never push), --cache-disable (ignore DIR), --cache-debug=- (show each lookup).

One run at a time per build directory: a second scons on the same build= waits for the first, saying so
("waiting for another mkdump build in DIR (pid N) to finish"). scons -n and scons -q never wait: while another
run is going on they answer from what it has done so far and change nothing. scons -h takes nothing.
"""


def _pipeline(env):
    top = env.Dir("#").abspath
    opts = _options(env, top)
    if opts is None:
        return None
    env["MKDUMP_OPTS"] = _Runtime(opts)
    # Each build root keeps its own signature database: build= directories are independent of each other and
    # of the checkout, which may be read-only.
    try:
        os.makedirs(opts.build, exist_ok=True)
    except OSError as e:
        print(f"scons: *** build={opts.build} cannot be created ({e.strerror}); give a directory you can write.",
              file=sys.stderr)
        Exit(2)
    # One run at a time per build directory, for the whole run. -n and -q only look: they never wait, and while
    # another run holds the directory they neither take the lock nor change anything (see buildlock).
    looking = bool(GetOption("no_exec") or GetOption("question"))
    try:
        lock = buildlock.acquire(opts.build, wait=not looking, log=_log)
    except MkdumpError as err:
        print(f"scons: *** {err}", file=sys.stderr)
        Exit(2)
    _HELD.append(lock)
    if not looking:
        # Under the lock no other run can be using them: these are the staging places of a run that was killed.
        from mkdump.fsutil import remove_stale_staging
        remove_stale_staging(opts.build, O.ARCHES, _log)
    _SignatureDatabase.writes = lock is not None
    _SignatureDatabase.build = opts.build
    env.SConsignFile(_literal(os.path.join(opts.build, ".sconsign")), _SIGNATURE_DB)
    _repro(env)
    return Pipeline(env, opts, top, read_only=lock is None)


# The build directory's lock, open until the process ends.
_HELD = []


class _SignatureDatabase(SCons.dblite._Dblite):
    """SCons' signature database, written only by a run that holds the build directory's lock (a `scons -q` beside
    a running build would otherwise put back the signatures it read at its start over those of the build), and
    with a full disk reported in one sentence instead of SCons' traceback."""
    writes = True
    build = None

    def sync(self):
        if not self.writes:
            self._needs_sync = False
            return
        try:
            super().sync()
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            # SCons writes a temporary file and renames it over the database, so the database is as the last run
            # left it: the stages this run finished run again next time. Never try again (SCons would at exit).
            self._needs_sync = False
            if os.path.exists(self._tmp_name):
                os.unlink(self._tmp_name)
            what = f"{e.strerror} writing SCons' signature database {self._tmp_name}"
            _no_space(self.build, self._tmp_name, what, f"{what}; free some space there and run again.")
            raise SystemExit(2) from None


_SIGNATURE_DB = types.ModuleType("mkdump_signature_db")
_SIGNATURE_DB.open = lambda file, flag="r", mode=0o666: _SignatureDatabase(file, flag, mode)


def _content_unless_old(dependency, target, prev_ni, repo_node=None):
    """SCons' content-timestamp, except that a file whose whole-second timestamp is the recorded one but which
    was written within the last few seconds has its content checked: SCons records timestamps in whole seconds, so
    a stamp or a user's file rewritten within the second of the last run (quick runs one after the other) looked
    unchanged and its dependents were skipped."""
    timestamp = dependency.get_timestamp()
    if timestamp != getattr(prev_ni, "timestamp", None) or time.time() - timestamp < _RECENT_SECONDS:
        return dependency.changed_content(target, prev_ni, repo_node)
    return False


_RECENT_SECONDS = 3


def generate(env):
    AddMethod(env, _pipeline, "MkdumpPipeline")
    env.Decider(_content_unless_old)


def exists(env):
    return True
