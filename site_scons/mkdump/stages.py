"""The pipeline's stages, declared once.

Each `Stage` says what it is called, what it is done for (each source, each arch, each kernel of an arch), the
frozen dataclass of its parameters, the stages whose results it reads, what it produces and vouches for, and the
function of `mkdump.pipeline` that runs it. `plan` turns the table and the options into `Node`s, one per stage
instance, without SCons: the SCons tool declares one Command per node, `scons -h` lists the table's targets, the
manifest stage depends on what the table says comes before it, and `picture()` is HACKING's drawing of it. Adding a
stage, or a parameter to one, is one edit here (and the function that runs it).

A node's signature is its parameters serialised whole, with where it works: SCons runs a stage again when its
signature, a file it reads or a result of a stage it needs changes.
"""
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Optional

from . import layout
from . import products
from .sources import LockFile

KINDS = products.KERNELS
# The sources whose archives are unpacked (the others, a patch, are read as they are).
UNPACKED = ("linux", "mkexec", "mkdutils")


@dataclass(frozen=True)
class Project:
    """The checkout's own inputs: patches, configs and the sources manifest."""
    top: str

    @property
    def patches_dir(self):
        return os.path.join(self.top, "patches")

    @property
    def configs_dir(self):
        return os.path.join(self.top, "configs")

    @property
    def sources_toml(self):
        return os.path.join(self.patches_dir, "sources.toml")

    @property
    def lock_path(self):
        return os.path.join(self.patches_dir, "sources.lock")

    def series(self, arch, kind):
        return os.path.join(self.patches_dir, products.load(arch)[kind].series)


@dataclass(frozen=True)
class Context:
    """What a stage's function gets besides its parameters. `run` holds the options that must not enter any
    signature (jobs, cc_launcher, verbose, offline, mirrors, DESTDIR): the same products whatever they are."""
    lay: layout.Layout
    project: Project
    run: object
    log: Callable


# ---------------------------------------------------------------- parameters of each stage

@dataclass(frozen=True)
class FetchParams:
    source: str
    definition: dict        # the source as patches/sources.toml declares it; the lock file is checked apart


@dataclass(frozen=True)
class UnpackParams:
    source: str
    tree_sha256: Optional[str]


@dataclass(frozen=True)
class ToolchainParams:
    cc: Optional[str]
    cross_compile: Optional[str]


@dataclass(frozen=True)
class PatchParams:
    kind: str
    fuzz: int


@dataclass(frozen=True)
class ConfigParams:
    kind: str
    dump_driver: Optional[str]      # the mini kernel's only; None for the system kernel
    pae: Optional[bool]             # the mini kernel's, on an arch with the PAE choice; else None
    minik_fragment: Optional[str]
    system_config: Optional[str]    # the system kernel's only


@dataclass(frozen=True)
class BuildParams:
    kind: str
    source_date_epoch: int


@dataclass(frozen=True)
class MkdutilsParams:
    source_date_epoch: int


@dataclass(frozen=True)
class NoParams:
    """A stage decided by what it reads alone."""


@dataclass(frozen=True)
class CheckParams:
    minik_mem: int


@dataclass(frozen=True)
class LoadScriptParams:
    minik_mem: int
    dump_dev: str
    minik_params: str
    prefix: str


@dataclass(frozen=True)
class ManifestParams:
    options: dict           # what the manifest records of the options
    source_date_epoch: int


@dataclass(frozen=True)
class MenuconfigParams:
    kind: str               # the kernel whose configuration the menu opens
    save: str               # where what the user saves goes


def _pae(opts, arch):
    from .arch import load
    return opts.pae if load(arch).pae else None


def config_params(opts, arch, kind):
    """What configures kernel `kind`: each option applies to the one kernel it is for."""
    minik = kind == "minik"
    return ConfigParams(kind, dump_driver=opts.dump_driver if minik else None,
                        pae=_pae(opts, arch) if minik else None,
                        minik_fragment=opts.minik_fragment if minik else None,
                        system_config=None if minik else opts.system_config)


def manifest_options(opts, arch):
    """The options as the manifest records them (and the cache_dir= key holds)."""
    from .stamp import sha256_file
    def digest(path):
        return sha256_file(path) if path and path != "defconfig" else None
    # lspci:FILE as the file's name and its digest (the families it chose are in the mini kernel's config stamp):
    # where the file was on the build machine is no input of what was built.
    lspci = opts.dump_driver[len("lspci:"):] if opts.dump_driver.startswith("lspci:") else None
    return {"dump_driver": f"lspci:{os.path.basename(lspci)}" if lspci else opts.dump_driver,
            "lspci_sha256": digest(lspci), "pae": _pae(opts, arch), "minik_mem": opts.minik_mem,
            "fuzz": opts.fuzz, "dump_dev": opts.dump_dev, "minik_params": opts.minik_params, "prefix": opts.prefix,
            "minik_fragment_sha256": digest(opts.minik_fragment),
            "system_config_sha256": digest(opts.system_config)}


# ---------------------------------------------------------------- what each stage reads beyond its needs

def _patch_inputs(p, arch, project, root):
    """The series, its local patches, and the sources it names (their unpacked tree, or the fetched file)."""
    from .pipeline import series_inputs
    series = project.series(arch, p.kind)
    files, srcs = series_inputs(series, arch, project.patches_dir)
    return [series] + files, [("unpack" if s in UNPACKED else "fetch", s) for s in srcs]


def _config_inputs(p, arch, project, root):
    from .pipeline import config_fragments
    # dump_driver=lspci:FILE names its families only once the tree is there (the config stage reads its tables);
    # the families' fragments are no files, so the default family stands in for them here.
    lspci = p.dump_driver[len("lspci:"):] if p.dump_driver and p.dump_driver.startswith("lspci:") else None
    frags = config_fragments(p.kind, arch, configs_dir=project.configs_dir,
                             dump_driver=None if lspci else p.dump_driver, pae=p.pae,
                             minik_fragment=p.minik_fragment, system_config=p.system_config)
    files = [f for f in frags if isinstance(f, str)]
    files += [os.path.join(project.configs_dir, n) for n in ("rules.toml", "dump-drivers.toml")]
    # The PAE symbol and how a user's .config says its arch come from the arch's file.
    from .arch import load
    files.append(load(arch).path)
    # The user's files are parsed into fragments above, so they are named here: an edit re-runs config.
    files += [f for f in (p.minik_fragment, p.system_config, lspci) if f and f != "defconfig"]
    return files, []


def _toolchain_inputs(p, arch, project, root):
    """Our toolchain data and every program detection may pick (compiler driver, as, ld, host compiler: the
    programs cache_dir='s key holds): an upgraded gcc changes the flags that work and the vermagic."""
    import shutil
    from .cachekey import compiler_tools
    from .arch import load
    from .toolchain import load_arch_data
    tools = compiler_tools(load_arch_data(arch), cc=p.cc, cross_compile=p.cross_compile)
    found = [shutil.which(t) for t in tools]
    return [load(arch).path] + sorted({os.path.realpath(f) for f in found if f}), []


def _host_tool_inputs(p, arch, project, root):
    """The build host's gcc, as and ld, which build mkdutils: an upgraded compiler builds them again."""
    import shutil
    found = [shutil.which(t) for t in ("gcc", "as", "ld")]
    return sorted({os.path.realpath(f) for f in found if f}), []


def _manifest_inputs(p, arch, project, root):
    # Where each source was found is recorded too, which the fetch stamp leaves out.
    return [layout.fetch_where(root, n) for n in _sources(project)], []


def _sources(project):
    from .sources import load_sources
    return load_sources(project.sources_toml)


# ---------------------------------------------------------------- the table

# The scopes done once for every arch, before any arch's stages.
ARCH_FREE = ("source", "unpacked")


@dataclass(frozen=True)
class Stage:
    name: str
    scope: str                      # "source" and "unpacked" (arch independent: each source, each unpacked one),
                                    # "arch", "kernel" (each arch x kernel)
    params: type
    make_params: Callable           # (opts, arch, each, sources) -> params
    produces: Callable              # (lay, each) -> target paths, the stamp (or the stage's one file) first
    needs: tuple = ()               # stages whose results it reads: "stage" (the same kernel, or every instance)
                                    # or "stage:each"
    vouches: Callable = None        # (lay, each) -> files its stamp vouches for; one gone runs the stage again
    inputs: Callable = None         # (params, arch, project, root) -> (files, [(stage, each)])
    target: Optional[str] = None    # the scons target that stops after it
    help: str = ""
    always: bool = False            # runs every time it is asked for
    reads_out: bool = False         # reads out/ as published (with cache_dir=, filled by the publish step from
                                    # checked/ or the cache), never checked/
    default: bool = True            # part of the default target

    @property
    def function(self):
        from . import pipeline
        return getattr(pipeline, self.name)


def _tree_sentinel(directory):
    # Every kernel tree and mkexec's archive has a top Makefile: its absence means the tree is gone.
    return os.path.join(directory, "Makefile")


def _kernel_outputs(lay, kind):
    return [os.path.join(lay.obj(kind), rel) for rel in products.load(lay.arch)[kind].outputs]


STAGES = (
    Stage("fetch", "source", FetchParams,
          make_params=lambda o, arch, s, sources: FetchParams(s, _fetch_definition(sources[s])),
          produces=lambda lay, s: [layout.fetch_stamp(lay.root, s), layout.fetch_where(lay.root, s)],
          target="fetch", help="download and verify every source (after it, offline=1 needs no network)"),
    Stage("unpack", "unpacked", UnpackParams,
          make_params=lambda o, arch, s, sources: UnpackParams(s, sources[s].tree_sha256),
          produces=lambda lay, s: [lay.unpack_stamp(s)],
          needs=("fetch",),
          vouches=lambda lay, s: [_tree_sentinel(lay.src(s))],
          target="unpack", help="unpack the verified sources into <build>/src/ (once, for every arch)"),
    Stage("toolchain", "arch", ToolchainParams,
          make_params=lambda o, arch, each, sources: ToolchainParams(o.cc, o.cross_compile),
          produces=lambda lay, each: [lay.stamp("toolchain")],
          inputs=_toolchain_inputs),
    Stage("patch", "kernel", PatchParams,
          make_params=lambda o, arch, kind, sources: PatchParams(kind, o.fuzz),
          produces=lambda lay, kind: [lay.stamp("patch-" + kind)],
          needs=("unpack:linux",),
          vouches=lambda lay, kind: [_tree_sentinel(lay.tree(kind))],
          inputs=_patch_inputs,
          target="patch", help="patch the mini kernel tree <build>/<arch>/minik/ and the system kernel tree "
                               "<build>/<arch>/system/"),
    Stage("config", "kernel", ConfigParams,
          make_params=lambda o, arch, kind, sources: config_params(o, arch, kind),
          produces=lambda lay, kind: [lay.stamp("config-" + kind)],
          needs=("patch", "toolchain"),
          vouches=lambda lay, kind: [os.path.join(lay.obj(kind), ".config")],
          inputs=_config_inputs,
          target="config", help="configure both kernels and audit the mini kernel's rules"),
    Stage("menuconfig", "arch", MenuconfigParams,
          make_params=lambda o, arch, each, sources: MenuconfigParams(o.kernel, o.menuconfig_save(arch)),
          produces=lambda lay, each: [lay.stamp("menuconfig")],
          needs=("config",), always=True, default=False,
          target="menuconfig", help="open the configuration menu (README step 2) on one configured kernel and save "
                                    "the result: scons menuconfig kernel=minik|system save=FILE"),
    Stage("build", "kernel", BuildParams,
          make_params=lambda o, arch, kind, sources: BuildParams(kind, o.source_date_epoch),
          produces=lambda lay, kind: [lay.stamp("build-" + kind)],
          needs=("patch", "config", "toolchain"),
          vouches=_kernel_outputs,
          target="build", help="build both kernels (in <build>/<arch>/obj/) and mkexec.ko"),
    Stage("mkexec", "arch", NoParams,
          make_params=lambda o, arch, each, sources: NoParams(),
          produces=lambda lay, each: [lay.stamp("mkexec")],
          needs=("unpack:mkexec", "build:system", "toolchain"),
          vouches=lambda lay, each: [os.path.join(lay.mkexec_build, rel)
                                     for rel in products.load(lay.arch)["mkexec"].outputs],
          target="build"),
    Stage("modules", "arch", BuildParams,
          make_params=lambda o, arch, each, sources: BuildParams("system", o.source_date_epoch),
          produces=lambda lay, each: [lay.stamp("modules")],
          needs=("build:system", "toolchain"),
          vouches=lambda lay, each: [os.path.join(lay.obj("system"), name) for name in _modules_files()],
          target="build"),
    Stage("mkdutils", "arch", MkdutilsParams,
          make_params=lambda o, arch, each, sources: MkdutilsParams(o.source_date_epoch),
          produces=lambda lay, each: [lay.stamp("mkdutils")],
          needs=("unpack:mkdutils",),
          vouches=lambda lay, each: [os.path.join(lay.mkdutils_build, rel)
                                     for rel in products.load(lay.arch)["mkdutils"].outputs],
          inputs=_host_tool_inputs,
          target="build"),
    Stage("check", "arch", CheckParams,
          make_params=lambda o, arch, each, sources: CheckParams(o.minik_mem),
          produces=lambda lay, each: [lay.stamp("check")] + [os.path.join(lay.out, n)
                                                              for n in products.published(lay.arch)],
          needs=("build", "mkexec", "modules", "mkdutils"),
          target="check", help="check the artifacts and publish them in <build>/<arch>/out/"),
    Stage("load_script", "arch", LoadScriptParams,
          make_params=lambda o, arch, each, sources: LoadScriptParams(o.minik_mem, o.dump_dev, o.minik_params,
                                                                      o.prefix),
          produces=lambda lay, each: [os.path.join(lay.out, _script_name(lay.arch))],
          # After check: it writes into out/, which a failing check leaves as the last run published it.
          needs=("build:system", "config:minik", "check"),
          inputs=lambda p, arch, project, root: ([os.path.join(project.configs_dir, "dump-drivers.toml")], [])),
    Stage("manifest", "arch", ManifestParams,
          make_params=lambda o, arch, each, sources: ManifestParams(manifest_options(o, arch), o.source_date_epoch),
          produces=lambda lay, each: [os.path.join(lay.out, "manifest.json")],
          needs=("fetch", "toolchain", "patch", "config", "build", "mkexec", "mkdutils", "check",
                 "load_script"),
          inputs=_manifest_inputs),
    Stage("install", "arch", NoParams,
          make_params=lambda o, arch, each, sources: NoParams(),
          produces=lambda lay, each: [lay.stamp("install")],
          needs=("manifest", "load_script"), reads_out=True, always=True, default=False,
          target="install", help="install into DESTDIR (scons install DESTDIR=/tmp/stage)"),
    Stage("boot_test", "arch", NoParams,
          make_params=lambda o, arch, each, sources: NoParams(),
          produces=lambda lay, each: [lay.report("boot-test.json")],
          needs=("check",), always=True, default=False,
          target="boot-test", help="boot the built kernels under QEMU"),
)

BY_NAME = {s.name: s for s in STAGES}


def _fetch_definition(source):
    from .pipeline import fetch_signature
    return fetch_signature(source)


def _modules_files():
    from .modules import CONFIG_NAME, TREE_NAME
    return TREE_NAME, CONFIG_NAME


def _script_name(arch):
    from .loadscript import script_name
    return script_name(arch)


def targets():
    """The scons targets the stages stop after, in pipeline order, with their help."""
    out = {}
    for s in STAGES:
        if s.target and s.help:
            out.setdefault(s.target, s.help)
    return out


_FOR = {"source": "each source", "unpacked": ", ".join(UNPACKED), "arch": "each arch",
        "kernel": "each arch: " + ", ".join(KINDS)}


def picture():
    """The pipeline as HACKING.md draws it: each stage in order, what it is done for, what it reads, its target."""
    reads = {s.name: ", ".join(s.needs) + (" + the sources its series names" if s.inputs is _patch_inputs else "")
             for s in STAGES}
    width = max(len(r) for r in reads.values())
    scope = max(len(f) for f in _FOR.values())
    rows = [f"{'stage':12} {'done for':{scope}} {'reads the results of':{width}} target"]
    for s in STAGES:
        rows.append(f"{s.name:12} {_FOR[s.scope]:{scope}} {reads[s.name] or '-':{width}} {s.target or '(default)'}")
    return "\n".join(rows)


# ---------------------------------------------------------------- the plan

@dataclass
class Node:
    stage: Stage
    arch: Optional[str]
    each: Optional[str]             # the source or kernel it is done for
    params: object
    where: dict                     # root, arch, out_name, top: part of the signature
    targets: list
    vouched: list = field(default_factory=list)
    files: list = field(default_factory=list)
    needs: list = field(default_factory=list)   # the Nodes it reads the results of

    @property
    def id(self):
        return ":".join(x for x in (self.stage.name, self.arch, self.each) if x)

    def signature(self):
        return json.dumps({"stage": self.stage.name, "where": self.where, "params": asdict(self.params)},
                          sort_keys=True)


def params_from_signature(text):
    """The stage, its parameters and where it works, back from a signature: handed whole to the stage."""
    d = json.loads(text)
    stage = BY_NAME[d["stage"]]
    names = {f.name for f in fields(stage.params)}
    return stage, stage.params(**{k: v for k, v in d["params"].items() if k in names}), d["where"]


def plan(opts, project, sources, *, out_name="out"):
    """Every stage instance for these options, in pipeline order, with its inputs and the nodes it needs.

    `out_name` is where check, the load script and the manifest write (`checked` with cache_dir=, see the tool).
    """
    nodes, index = [], {}
    for arch in [None] + list(opts.arches):
        lay = layout.Layout(opts.build, arch, out_name)
        for stage in STAGES:
            if (stage.scope in ARCH_FREE) != (arch is None):
                continue
            each_list = {"source": list(sources), "unpacked": list(UNPACKED), "kernel": list(KINDS),
                         "arch": [None]}[stage.scope]
            for each in each_list:
                params = stage.make_params(opts, arch, each, sources)
                node = Node(stage, arch, each, params,
                            where={"root": opts.build, "arch": arch, "top": project.top,
                                   "out_name": ("out" if stage.reads_out else out_name) if arch else None},
                            targets=stage.produces(lay, each),
                            vouched=stage.vouches(lay, each) if stage.vouches else [])
                refs = [_ref(n, stage, each) for n in stage.needs]
                if stage.inputs:
                    node.files, more = stage.inputs(params, arch, project, opts.build)
                    refs += list(more)
                for name, e in refs:
                    node.needs += _find(index, name, arch, e)
                index.setdefault(stage.name, []).append(node)
                nodes.append(node)
    return nodes


def _ref(need, stage, each):
    """("stage", each or None): the same kernel for a kernel stage's need of another kernel stage."""
    name, _, e = need.partition(":")
    if not e and stage.scope == "kernel" and BY_NAME[name].scope == "kernel":
        e = each
    if not e and stage.scope == "unpacked" and BY_NAME[name].scope == "source":
        e = each
    return name, e or None


def _find(index, name, arch, each):
    found = [n for n in index.get(name, ()) if (n.arch in (arch, None)) and (each is None or n.each == each)]
    if not found:
        raise ValueError(f"stage table: {name}:{each} is needed but not declared before its user")
    return found


def stale_fetches(root, sources, lock_path):
    """The sources whose fetch stamp no longer vouches for their file (see pipeline.fetch_stamp_stale)."""
    from .pipeline import fetch_stamp_stale
    lock = LockFile(lock_path)
    return {name for name, src in sources.items() if fetch_stamp_stale(root, src, lock.get(src.file))}


def changed_by(old, new):
    """The ids of the nodes of `new` whose signature or file inputs differ from `old`'s, and every node that
    needs one of them: what SCons may run again (a stage whose stamp comes out the same stops the chain)."""
    before = {n.id: (n.signature(), n.files) for n in old}
    changed = set()
    for n in new:
        if before.get(n.id) != (n.signature(), n.files) or any(m.id in changed for m in n.needs):
            changed.add(n.id)
    return changed
