"""The stages as functions of (parameters, context) -> outputs + stamp; `mkdump.stages` declares them, the SCons
tool calls them through that table, and tests can call them too.

Each stage function takes its parameters (the frozen dataclass `mkdump.stages` declares for it) and a
`stages.Context` (layout, project, run-time options, log). It reads what earlier stages left (their stamps and
trees, through `layout`), does its work in a staging place, moves the result into place and writes its own stamp
last.

Stage modules are imported inside the functions that use them: every run, a no-op included, reads this file, and
importing requests and pyelftools alone would cost most of a no-op run's budget.
"""
import filecmp
import hashlib
import os
import secrets
import shutil
import stat
import threading

from . import layout
from .fsutil import link_tree, replace_dir, staging_dir, write_atomic
from .logs import log_default
from . import products
from . import stamp
from .errors import NO_SPACE, MkdumpError, NoSpace
from .narhash import normalize_sha256
from .options import ARCHES


# ---------------------------------------------------------------- fetch

def fetch_signature(source):
    """What decides what the fetch stage must produce: the source's definition. The lock file is checked by
    fetch_stamp_stale instead: trust on first use writes it during the stage, so in the signature it would make
    the run after every first use fetch again."""
    return {
        "name": source.name, "file": source.file, "urls": list(source.urls),
        "alternatives": list(source.alternatives), "sha256": source.sha256,
        "tree_sha256": source.tree_sha256,
    }


def file_identity(path):
    """What changes whenever a file's bytes may have: an edit that puts the old mtime back still moves the ctime.
    Cheap enough for every run, which hashing Linux's archive is not."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def fetch_stamp_stale(root, source, lock_sha256):
    """Whether the fetch stamp of `source` no longer vouches for its file, so the stage must verify it again: the
    file is gone or was changed since, or `lock_sha256` (the lock file's entry for an unpinned source) is not
    what was verified."""
    try:
        where = stamp.read(layout.fetch_where(root, source.name))
        verified = stamp.read(layout.fetch_stamp(root, source.name))["sha256"]
        path = where["path"]
    except (OSError, ValueError, KeyError):
        return False    # no stamp to void: SCons runs the stage anyway
    try:
        if file_identity(path) != where.get("identity"):
            return True
    except OSError:
        return True
    return not (source.sha256 or source.tree_sha256) and lock_sha256 != verified


def fetch(p, ctx):
    from .fetch import Fetcher
    from .sources import LockFile, load_sources
    source = load_sources(ctx.project.sources_toml)[p.source]
    root, run = ctx.lay.root, ctx.run
    fetcher = Fetcher(run.cache, sources_dirs=run.sources, mirrors=run.mirrors, offline=run.offline,
                      lock=LockFile(ctx.project.lock_path), log=ctx.log)
    got = fetcher.fetch(source)
    path = os.path.abspath(got.path)
    stamp.write(layout.fetch_where(root, source.name), {"path": path, "url": got.url, "origin": got.origin,
                                                   "file": got.file, "identity": file_identity(path)})
    stamp.write(layout.fetch_stamp(root, source.name),
                {"name": source.name, "sha256": got.sha256, "tree_sha256": got.tree_sha256})
    return got


def fetched_path(root, source_name):
    """The verified file of a source, checked again against the fetch stamp: the cache or a sources= directory
    may have changed since fetch verified it, and an unpinned file has no other guard."""
    where = stamp.read(layout.fetch_where(root, source_name))
    path = where["path"]
    if not os.path.isfile(path):
        raise MkdumpError(f"The verified copy of source {source_name!r} ({path}) has disappeared; "
                          "run `scons fetch` again.")
    expected = stamp.read(layout.fetch_stamp(root, source_name))["sha256"]
    actual = stamp.sha256_file(path)
    if actual != expected:
        raise MkdumpError(f"{path} changed after it was verified (SHA-256 {actual}, verified {expected}); "
                          "run `scons fetch` again to fetch and verify it anew.")
    return path


# ---------------------------------------------------------------- unpack

def unpack(p, ctx):
    from . import treestore
    from . import unpack as unpacking
    lay = ctx.lay
    archive = fetched_path(lay.root, p.source)
    dest = lay.src(p.source)
    # A tree the kernel trees share is kept in the download cache's tree store (mkdump.treestore), as links: the
    # next build directory links and hashes it instead of unpacking the archive again.
    cache = ctx.run.cache
    storable = p.source in SHARED_TREES and p.tree_sha256 and treestore.same_filesystem(cache, lay.root)
    linked = storable and treestore.link_from_store(cache, p.tree_sha256, dest, log=ctx.log)
    if linked:
        tree = normalize_sha256(p.tree_sha256)
    else:
        tree = unpacking.unpack(archive, dest, expect_tree_sha256=p.tree_sha256, log=ctx.log)
    if p.source == "mkexec":
        from .mkexec import find_layout
        find_layout(dest)
    if p.source == "mkdutils":
        from .mkdutils import find_layout
        find_layout(dest)
    with _PRISTINE:
        _seal(lay, p.source)
        if storable and not linked:
            # Before the state is recorded: each link moves the ctime of the file it links.
            treestore.add_to_store(cache, tree, dest, log=ctx.log)
        _record_tree_state(lay, p.source)
    stamp.write(lay.unpack_stamp(p.source), {"source": p.source, "tree_sha256": tree})
    _remove_per_arch_copies(lay, p.source, ctx.log)


# The sources whose pristine tree the kernel trees share: read-only, and kept in the download cache's tree store.
SHARED_TREES = ("linux",)


def _remove_per_arch_copies(lay, source_name, log):
    """Versions before the shared trees unpacked every source once per arch, under <build>/<arch>/src/; such a
    copy is never read again, and Linux's takes 250 MB."""
    from .arch import names
    for arch in names():
        old = os.path.join(lay.root, arch, "src", os.path.basename(lay.src(source_name)))
        if os.path.isdir(old) and not os.path.islink(old):
            log(f"mkdump: removing {old}: every arch now shares {lay.src(source_name)}")
            shutil.rmtree(old, ignore_errors=True)


def _seal(lay, source_name):
    """Make the files of Linux's pristine tree read-only: the kernel trees share them (hard links), so a write
    through a kernel tree would change the pristine tree and every tree made from it. Directories stay writable,
    so that the tree can still be replaced. The tree hash records no write bits."""
    if source_name not in SHARED_TREES:
        return      # mkexec's tree is copied, not shared, and its build copy edits Makefile.base
    for dirpath, _, filenames in os.walk(lay.src(source_name)):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o222:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o222)


def tree_state(root):
    """A digest of every entry's name, mode, size, inode and times under `root`: any edit, even one that puts the
    old mtime back, changes it (the ctime moves). Cheap enough before every copy, which the tree hash is not."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [""] + sorted(dirnames + filenames):
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)}\0{st.st_mode} {st.st_size} {st.st_ino} "
                     f"{st.st_mtime_ns} {st.st_ctime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _state_path(lay, source_name):
    # Beside the unpack stamp but no part of it: the stages downstream depend on the tree's contents, not on its
    # inodes, so unpacking the same tree again must not re-patch anything.
    return lay.unpack_stamp(source_name, ".state")


def _record_tree_state(lay, source_name):
    stamp.write(_state_path(lay, source_name), {"state": tree_state(lay.src(source_name))})


def pristine_tree(lay, source_name, *, log=log_default):
    """The unpacked tree of `source_name`, as unpack verified it, for a stage about to copy or read it.

    A tree changed since (an edit meant for a kernel tree, a deleted file) is unpacked again from the verified
    archive, so no change made there reaches a kernel tree. A tree whose state differs but whose tree hash is still
    the verified one (a file touched, a build directory from before the state was recorded) is only recorded anew.
    """
    with _PRISTINE:
        return _pristine_tree(lay, source_name, log)


# With scons -j the two patch stages run in threads of one process: one must not unpack the tree again while the
# other checks it.
_PRISTINE = threading.Lock()


def _pristine_tree(lay, source_name, log):
    from . import unpack as unpacking
    from .narhash import nar_sha256
    dest = lay.src(source_name)
    if os.path.isdir(dest):
        _seal(lay, source_name)     # a tree unpacked before trees shared its files
    try:
        recorded = stamp.read(_state_path(lay, source_name))["state"]
    except (OSError, ValueError, KeyError):
        recorded = None
    if recorded is not None and os.path.isdir(dest) and tree_state(dest) == recorded:
        return dest
    verified = stamp.read(lay.unpack_stamp(source_name))["tree_sha256"]
    if not (os.path.isdir(dest) and nar_sha256(dest) == verified):
        log(f"mkdump: {dest} changed after it was unpacked and verified; unpacking it again")
        unpacking.unpack(fetched_path(lay.root, source_name), dest, expect_tree_sha256=verified, log=log)
    _seal(lay, source_name)
    _record_tree_state(lay, source_name)
    return dest


# ---------------------------------------------------------------- patch

def read_series(series_path, arch):
    from .patching import parse_series
    try:
        with open(series_path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise MkdumpError(f"The patch series {series_path} cannot be read ({e.strerror}); restore it from the "
                          "repository.") from None
    return parse_series(text, arch=arch, filename=series_path, arches=ARCHES)


def series_inputs(series_path, arch, patches_dir):
    """Files and sources a series depends on, for SCons: (local patch paths, source names)."""
    files, srcs = [], []
    for e in read_series(series_path, arch):
        if e.kind == "source":
            srcs.append(e.source)
        else:
            files.append(os.path.join(patches_dir, e.path))
    return files, srcs


def own_files(tree, pristine):
    """The regular files of `tree` that are not the pristine tree's own (hard links to it): what patches wrote."""
    own = set()
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(path, tree)
            try:
                shared = os.path.samestat(st, os.lstat(os.path.join(pristine, rel)))
            except FileNotFoundError:
                shared = False
            if not shared:
                own.add(rel)
    return own


def _same_file_contents(a, b):
    return os.path.isfile(a) and not os.path.islink(a) and filecmp.cmp(a, b, shallow=False)


def keep_timestamps(pristine, old, new):
    """Make the times of the tree `new` say what changed since the tree `old` it replaces, so that make in the
    object directory rebuilds only what depends on the files whose contents changed: a file the patches wrote
    that holds what the old tree held there gets the old file's times; a file the old tree's patches wrote that
    is the pristine tree's again (a patch left the series) becomes a copy with a fresh mtime, as the shared
    file is older than what the old version built."""
    if not os.path.isdir(old):
        return
    new_own, old_own = own_files(new, pristine), own_files(old, pristine)
    for rel in sorted(new_own):
        before = os.path.join(old, rel)
        if _same_file_contents(before, os.path.join(new, rel)):
            st = os.stat(before)
            os.utime(os.path.join(new, rel), ns=(st.st_atime_ns, st.st_mtime_ns))
    for rel in sorted(old_own - new_own):
        now = os.path.join(new, rel)
        if os.path.isfile(now) and not _same_file_contents(os.path.join(old, rel), now):
            tmp = now + ".mkdump-tmp"
            shutil.copyfile(now, tmp)
            os.chmod(tmp, stat.S_IMODE(os.stat(now).st_mode))
            os.replace(tmp, now)


# In the patch stamp: which copy of the tree the later stages of that tree worked on. Not an input of anything
# the build makes, so the manifest leaves it out.
TREE_ID = "tree_id"


def source_tree(lay, kind):
    """The patched tree of `kind`, for a stage about to configure or build it in its object directory. A tree
    configured or built in place (by a version of mkdump-build that built there) would hand 2.6.9 its stale
    .config and objects instead of the object directory's."""
    from .kbuild import built_in_place
    tree = lay.tree(kind)
    left = built_in_place(tree)
    if left:
        raise MkdumpError(f"The {kind} kernel tree {tree} was configured or built in place (it has "
                          f"{' and '.join(left)}); remove it and run again: the patch stage makes it anew, and "
                          f"the kernel is then built in {lay.obj(kind)}.")
    return tree


def patch(p, ctx):
    from .patching import PatchRejected, apply_series
    lay, kind, log = ctx.lay, p.kind, ctx.log
    series_path, patches_dir = ctx.project.series(lay.arch, kind), ctx.project.patches_dir
    patches, described = [], []
    for e in read_series(series_path, lay.arch):
        if e.kind == "source":
            if e.member:
                path = os.path.join(pristine_tree(lay, e.source, log=log), e.member)
                if not os.path.isfile(path):
                    raise MkdumpError(f"{series_path}:{e.lineno}: source {e.source!r} has no member {e.member!r}; "
                                      "check the archive's layout against the series.")
            else:
                path = fetched_path(lay.root, e.source)
        else:
            path = os.path.join(patches_dir, e.path)
        with open(path, "rb") as f:
            data = f.read()
        patches.append((e.ref, data, e.strip))
        described.append({"ref": e.ref, "strip": e.strip, "sha256": hashlib.sha256(data).hexdigest()})

    dest = lay.tree(kind)
    report_path = lay.report(f"patch-{kind}.txt")
    log(f"mkdump: [{lay.arch}] patching the {kind} tree ({len(patches)} patches)")
    # From the pristine tree's check to the last link made or removed: every link moves the ctime of a pristine
    # file, so its state is recorded again at the end, which keeps the next check cheap.
    with _PRISTINE:
        pristine = _pristine_tree(lay, "linux", log)
        staging = staging_dir(dest)
        try:
            link_tree(pristine, staging, f"patching the {kind} tree {dest}")
            try:
                report = apply_series(staging, patches, fuzz=p.fuzz, log=log)
            except PatchRejected as err:
                write_atomic(report_path, err.report)
                raise MkdumpError(f"{err} Full report: {report_path}. The {kind} tree was not changed.") from None
            except OSError as err:
                # With the tree linked, the patched files are the first thing the stage needs space for.
                if err.errno in NO_SPACE:
                    raise NoSpace(f"writing the patched files into {staging}", staging, os.strerror(err.errno))
                raise
            keep_timestamps(pristine, dest, staging)
            replace_dir(staging, dest)
            staging = None
        finally:
            failed = staging is not None
            if failed:
                shutil.rmtree(staging, ignore_errors=True)
            try:
                _record_tree_state(lay, "linux")
            except OSError:
                if not failed:
                    raise   # the stage's own error (a full disk) comes first; the next check is the slow one
    write_atomic(report_path, report.text)
    # A new tree has no .config and no build: its stamp must differ from the last one even when the patches are
    # the same (fuzz= changed), so that config and build, which depend on it, run again on the new tree.
    stamp.write(lay.stamp("patch-" + kind), {"kind": kind, "patches": described, "report": report.to_dict(),
                                             TREE_ID: secrets.token_hex(16)})


# ---------------------------------------------------------------- toolchain

def toolchain(p, ctx):
    from .toolchain import detect
    lay = ctx.lay
    tc = detect(lay.arch, cc=p.cc, cross_compile=p.cross_compile)
    data = tc.to_dict()
    stamp.write(lay.stamp("toolchain"), data)
    ctx.log(f"mkdump: [{lay.arch}] toolchain: gcc {data.get('gcc_version')}, binutils {data.get('binutils_version')}")


def detected_toolchain(lay):
    """The toolchain stage's result: detection ran once, its stamp is what later stages use."""
    from .toolchain import Toolchain
    return Toolchain.from_dict(stamp.read(lay.stamp("toolchain")))


def toolchain_make_args(lay):
    return detected_toolchain(lay).make_args()


# ---------------------------------------------------------------- config

def config_fragments(kind, arch, *, configs_dir, dump_driver, pae, minik_fragment, system_config):
    """The fragments a kernel's configuration applies. With system_config= the user's own .config is the whole
    request for the system kernel ("apply the same configuration as the usual system"); only the rules (MODULES
    on) are still audited."""
    from . import kconfig
    if kind == "system" and system_config:
        return []
    return kconfig.fragments_for(configs_dir, arch=arch, kind=kind, dump_driver=dump_driver, pae=pae,
                                 user_fragment=minik_fragment)


def dump_driver_from_lspci(value, lay, configs_dir, log):
    """dump_driver=lspci:FILE as the families that drive the storage controllers FILE lists, matched against the
    driver tables of the pristine tree; said on the console with every controller no family drives."""
    from . import kconfig, lspci
    path = value[len("lspci:"):]
    choice = lspci.resolve(path, pristine_tree(lay, "linux", log=log), kconfig.dump_driver_families(configs_dir))
    log(f"mkdump: [{lay.arch}] dump_driver=lspci:{os.path.basename(path)}: chose {choice.summary()}")
    for note in choice.notes:
        log(f"mkdump: [{lay.arch}] dump_driver=lspci:{os.path.basename(path)}: {note}")
    return ",".join(choice.families)


def config(p, ctx):
    from . import kconfig
    lay, kind, log, system_config = ctx.lay, p.kind, ctx.log, p.system_config
    dump_driver = p.dump_driver
    if dump_driver and dump_driver.startswith("lspci:"):
        dump_driver = dump_driver_from_lspci(dump_driver, lay, ctx.project.configs_dir, log)
    frags = config_fragments(kind, lay.arch, configs_dir=ctx.project.configs_dir, dump_driver=dump_driver,
                             pae=p.pae, minik_fragment=p.minik_fragment, system_config=system_config)
    log(f"mkdump: [{lay.arch}] configuring the {kind} kernel")
    source_tree(lay, kind)
    base = None
    if kind == "system" and system_config:
        base = (os.path.join(lay.tree(kind), "arch", lay.arch, "defconfig") if system_config == "defconfig"
                else system_config)
    summary = kconfig.configure(lay.tree(kind), arch=lay.arch, kind=kind, fragments=frags,
                                make_args=toolchain_make_args(lay), log=log, base_config=base, obj=lay.obj(kind))
    if system_config == "defconfig" and kind == "system":
        # Recorded as the user named it: the tree's path differs between build directories.
        summary["base_config"] = summary["user_config"]["path"] = f"defconfig (arch/{lay.arch}/defconfig)"
    report, report_path = kconfig.user_config_report(summary), lay.report(f"config-{kind}.txt")
    if report is not None:
        write_atomic(report_path, report)
        log(f"config: {kind} {lay.arch}: what of {system_config} was left out or changed, and why: {report_path}")
    elif os.path.exists(report_path):
        os.remove(report_path)      # it described a system_config= this configuration no longer uses
    stamp.write(lay.stamp("config-" + kind), summary)


# ---------------------------------------------------------------- build

def build(p, ctx):
    from . import kbuild
    lay, kind, run = ctx.lay, p.kind, ctx.run
    product = products.load(lay.arch)[kind]
    tree, obj = source_tree(lay, kind), lay.obj(kind)
    tc = detected_toolchain(lay)
    # How many objects the last complete build of this configuration compiled: the progress line's total.
    config_id = stamp.read(lay.stamp("config-" + kind))["values_sha256"]
    counts_path = lay.report(f"objects-{kind}.json")
    try:
        counts = stamp.read(counts_path)
    except (OSError, ValueError):
        counts = {}
    compiled = kbuild.run_make(tree, list(product.make_targets), toolchain=tc, jobs=run.jobs_effective,
                               launcher=run.cc_launcher, verbose=run.verbose, log_path=lay.log("build-" + kind),
                               env_extra={"SOURCE_DATE_EPOCH": str(p.source_date_epoch)}, log=ctx.log,
                               expected_objects=counts.get(config_id), obj=obj,
                               label=f"[{lay.arch}] {kind} make {' '.join(product.make_targets)}")
    if compiled and compiled >= counts.get(config_id, 0):
        stamp.write(counts_path, {config_id: compiled})
    outputs = {}
    for rel in product.outputs:
        path = os.path.join(obj, rel)
        if not os.path.isfile(path):
            raise MkdumpError(f"The {product.title} build finished without producing {rel}; "
                              f"see {lay.log('build-' + kind)}.")
        outputs[rel] = stamp.sha256_file(path)
    stamp.write(lay.stamp("build-" + kind),
                {"kind": kind, "release": kbuild.kernel_release(tree, obj), "outputs": outputs})


# ---------------------------------------------------------------- mkexec

def mkexec(p, ctx):
    from .mkexec import build_module
    lay, log = ctx.lay, ctx.log
    release = stamp.read(lay.stamp("build-system"))["release"]
    log(f"mkdump: [{lay.arch}] building mkexec.ko against the system kernel {release}")
    ko = build_module(pristine_tree(lay, "mkexec", log=log), lay.mkexec_build, arch=lay.arch,
                      kdir=lay.obj("system"), ksrc=lay.tree("system"), kver=release,
                      kmoddir=f"/lib/modules/{release}/extra",
                      toolchain=detected_toolchain(lay), launcher=ctx.run.cc_launcher, log_path=lay.log("mkexec"),
                      verbose=ctx.run.verbose, log=log, jobs=ctx.run.jobs_effective)
    stamp.write(lay.stamp("mkexec"),
                {"module": os.path.relpath(ko, lay.mkexec_build), "sha256": stamp.sha256_file(ko)})


# ---------------------------------------------------------------- check and publish


def run_checks(lay, *, minik_mem):
    from . import arch as arches
    from . import elfcheck
    from .kconfig import read_config_values
    arch = lay.arch
    minik, system = lay.obj("minik"), lay.obj("system")
    ko = os.path.join(lay.mkexec_build, products.load(arch)["mkexec"].outputs[0])
    sys_vmlinux = os.path.join(system, "vmlinux")
    module_c = os.path.join(lay.tree("system"), "arch", arch, "kernel", "module.c")
    with open(module_c, encoding="latin-1") as f:
        allowed = elfcheck.loader_allowed_relocs(f.read(), arch, source=module_c)
    exports = elfcheck.kernel_exports(sys_vmlinux)
    checks = elfcheck.check_module(
        ko, arch=arch, vermagic=elfcheck.vmlinux_vermagic(sys_vmlinux), allowed_relocs=allowed, exports=exports,
        gpl_only=exports - elfcheck.kernel_exports(sys_vmlinux, include_gpl_only=False))
    modversions = read_config_values(os.path.join(system, ".config")).get("MODVERSIONS") == "y"
    crcs = elfcheck.kernel_crcs(sys_vmlinux, os.path.join(system, "Module.symvers"))
    checks.append(elfcheck.check_versions(ko, crcs=crcs, modversions=modversions))
    vmlinux = os.path.join(minik, "vmlinux")
    checks.append(elfcheck.check_vmlinux_bin(vmlinux,
                                             os.path.join(minik, products.published(arch)["vmlinux.bin"][1])))
    checks.append(elfcheck.check_footprint(vmlinux, minik_mem_mb=minik_mem))
    head = os.path.join(lay.tree("minik"), "arch", arch, "boot", "compressed", "head.S")
    with open(head, encoding="latin-1") as f:
        checks.append(elfcheck.check_load_address(vmlinux, elfcheck.head_s_load_address(f.read(), source=head),
                                                  entry_symbol=arches.load(arch).elf.entry_symbol))
    checks.extend(elfcheck.check_constraints(vmlinux))
    return checks


def check(p, ctx):
    lay = ctx.lay
    checks = run_checks(lay, minik_mem=p.minik_mem)
    for c in checks:
        ctx.log(f"mkdump: [{lay.arch}] {c}")
    results = [c.to_dict() for c in checks]
    stamp.write(lay.report("check.json"), results)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise MkdumpError(f"{len(failed)} of {len(checks)} artifact checks failed ({', '.join(failed)}); nothing "
                          f"was published to {lay.out}. Details: {lay.report('check.json')}.")
    # Every artifact is copied before any reaches out/, so a failure (a full disk, a missing file) leaves out/ as
    # the last run published it; the SCons tool keeps SCons from deleting them before this stage runs.
    staging = staging_dir(lay.out)
    try:
        outputs = {}
        for name, (product, rel) in products.published(lay.arch).items():
            shutil.copyfile(os.path.join(lay.product_dir(product), rel), os.path.join(staging, name))
            outputs[name] = stamp.sha256_file(os.path.join(staging, name))
        os.makedirs(lay.out, exist_ok=True)
        # A manifest describes the files beside it: the old one must not outlive the artifacts it names.
        manifest = os.path.join(lay.out, "manifest.json")
        if os.path.lexists(manifest):
            os.remove(manifest)
        for name in outputs:
            os.replace(os.path.join(staging, name), os.path.join(lay.out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stamp.write(lay.stamp("check"), {"checks": results, "published": outputs})


def modules(p, ctx):
    """The system kernel's modules as `modules_install` lays them out, packed in its object directory for check
    to publish (mkdump.modules); an empty lib/modules/<release> for a kernel built without modules."""
    from . import modules as mods
    lay = ctx.lay
    obj, release = lay.obj("system"), stamp.read(lay.stamp("build-system"))["release"]
    staging = staging_dir(os.path.join(lay.arch_dir, "modules"))
    try:
        moddir = os.path.join(staging, "lib", "modules", release)
        if mods.config_has_modules(os.path.join(obj, ".config")):
            mods.modules_install(source_tree(lay, "system"), staging, obj=obj, make_args=toolchain_make_args(lay),
                                 log_path=lay.log("modules-install"), log=ctx.log, jobs=ctx.run.jobs_effective)
        os.makedirs(moddir, exist_ok=True)
        count = mods.pack(moddir, release, os.path.join(obj, mods.TREE_NAME), epoch=p.source_date_epoch)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with open(os.path.join(obj, ".config"), encoding="latin-1") as f:
        write_atomic(os.path.join(obj, mods.CONFIG_NAME), mods.installable_config(f.read()))
    ctx.log(f"mkdump: [{lay.arch}] {count} modules of the system kernel {release} packed for install")
    stamp.write(lay.stamp("modules"), {"release": release, "modules": count,
                                       "sha256": stamp.sha256_file(os.path.join(obj, mods.TREE_NAME))})


def mkdutils(p, ctx):
    """mkdutils built with today's gcc for this machine in a staged copy, its tools checked, packed as
    mkdutils.tar (mkdump.mkdutils)."""
    from . import mkdutils as tools
    lay = ctx.lay
    src = tools.find_layout(pristine_tree(lay, "mkdutils", log=ctx.log))
    dest = lay.mkdutils_build
    staging = staging_dir(dest)
    try:
        work = os.path.join(staging, "mkdutils")
        built = tools.build(src, work, log_path=lay.log("mkdutils"), log=ctx.log, jobs=ctx.run.jobs_effective)
        tools.strip(work, built, log_path=lay.log("mkdutils-strip"))
        checks = tools.check_tools(work, built, [os.path.abspath(staging), os.path.abspath(dest),
                                                 os.path.abspath(lay.root)])
        for c in checks:
            ctx.log(f"mkdump: [{lay.arch}] {'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['figure']}")
        failed = [c["name"] for c in checks if not c["ok"]]
        if failed:
            raise MkdumpError(f"{', '.join(failed)} failed its check (see above); nothing was kept of this build "
                              f"(log: {lay.log('mkdutils')})")
        names = tools.pack(work, built, os.path.join(work, tools.PRODUCT), epoch=p.source_date_epoch)
        replace_dir(work, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stamp.write(lay.stamp("mkdutils"), {"tools": names, "cc": tools.compiler_version(),
                                        "cc_flags": list(tools.CC_FLAGS), "checks": checks,
                                        "sha256": stamp.sha256_file(os.path.join(dest, tools.PRODUCT))})


# ---------------------------------------------------------------- load script, manifest, install

def load_script(p, ctx):
    from .install import target_paths
    from .loadscript import render_load_script, script_name
    lay = ctx.lay
    if p.dump_dev:
        _check_dump_dev(p.dump_dev, lay, ctx.project.configs_dir)
    release = stamp.read(lay.stamp("build-system"))["release"]
    paths = target_paths(arch=lay.arch, release=release, prefix=p.prefix)
    text = render_load_script(arch=lay.arch, mem_mb=p.minik_mem, dump_dev=p.dump_dev or None,
                              parameters=p.minik_params, vmlinux_bin_path=paths["vmlinux.bin"],
                              module_path=paths["mkexec.ko"])
    write_atomic(os.path.join(lay.out, script_name(lay.arch)), text, 0o755)


def _check_dump_dev(dump_dev, lay, configs_dir):
    """The load script's default dump device is a disk the mini kernel drives: a wrong one is found at crash time."""
    from . import kconfig
    from .loadscript import MINOR_BITS, encode_dump_dev
    values = kconfig.read_config_values(os.path.join(lay.obj("minik"), ".config"))
    problem = kconfig.dump_dev_problem(dump_dev, encode_dump_dev(dump_dev) >> MINOR_BITS, values,
                                       kconfig.dump_driver_families(configs_dir))
    if problem:
        raise MkdumpError(problem)


def manifest(p, ctx):
    """Write out/manifest.json from the stamps of every stage."""
    from . import manifest as manifests
    from .loadscript import script_name
    from .sources import load_sources
    lay, sources = ctx.lay, load_sources(ctx.project.sources_toml)
    srcs = {}
    for name, src in sorted(sources.items()):
        got = stamp.read(layout.fetch_stamp(lay.root, name))
        where = stamp.read(layout.fetch_where(lay.root, name))
        srcs[name] = {"file": where["file"], "sha256": got["sha256"], "tree_sha256": got["tree_sha256"],
                      "pinned": {"sha256": src.sha256, "tree_sha256": src.tree_sha256},
                      "url": where["url"], "declared_urls": list(src.urls)}
    patches = {k: {n: v for n, v in stamp.read(lay.stamp("patch-" + k)).items() if n != TREE_ID}
               for k in ("minik", "system")}
    configs = {k: stamp.read(lay.stamp("config-" + k)) for k in ("minik", "system")}
    tc = stamp.read(lay.stamp("toolchain"))
    checked = stamp.read(lay.stamp("check"))
    # mkdutils is built and checked for this machine, not the target: its checks join the others, its compiler
    # is recorded beside the kernel's.
    built = stamp.read(lay.stamp("mkdutils"))
    checks = checked["checks"] + built["checks"]
    tc = dict(tc, mkdutils={"cc": built.get("cc"), "cc_flags": built["cc_flags"]})
    outputs = [manifests.file_entry(os.path.join(lay.out, n)) for n in sorted(products.published(lay.arch))]
    outputs.append(manifests.file_entry(os.path.join(lay.out, script_name(lay.arch))))
    text = manifests.render(arch=lay.arch, source_date_epoch=p.source_date_epoch, sources=srcs, patches=patches,
                            configs=configs, toolchain=tc, options=p.options, outputs=outputs,
                            checks=checks, prefixes=[(ctx.project.top, ""), (lay.root, "$build/")])
    write_atomic(os.path.join(lay.out, "manifest.json"), text)


def install(p, ctx):
    from . import install as installing
    from .loadscript import script_name
    lay, destdir = ctx.lay, ctx.run.destdir
    if not destdir:
        raise MkdumpError("install needs DESTDIR: run `scons install DESTDIR=/path/to/stage` "
                          "(DESTDIR=/ installs on this machine).")
    # From out/ alone: with cache_dir= out/ may come from the cache while no stage ran here.
    from .elfcheck import module_release
    release = module_release(os.path.join(lay.out, "mkexec.ko"))
    files = {"vmlinux.bin": "vmlinux.bin", "System.map": "minik-System.map", "manifest.json": "manifest.json",
             "load-script": script_name(lay.arch), "mkexec.ko": "mkexec.ko", "kernel-image": "system-bzImage",
             "kernel-map": "system-System.map", "kernel-config": "system-config"}
    installing.install(lay.out, destdir=destdir, prefix=ctx.run.prefix, release=release, files=files, arch=lay.arch,
                       log=ctx.log, modules="system-modules.tar", depmod_log=lay.log("depmod"),
                       tools="mkdutils.tar")


def menuconfig(p, ctx):
    """The configuration menu on the configured tree of kernel p.kind; the tree is not changed."""
    from . import menuconfig as menu
    from .stages import config_params
    lay, c = ctx.lay, config_params(ctx.run, ctx.lay.arch, p.kind)
    dump_driver = c.dump_driver
    if dump_driver and dump_driver.startswith("lspci:"):
        dump_driver = dump_driver_from_lspci(dump_driver, lay, ctx.project.configs_dir, ctx.log)
    frags = config_fragments(p.kind, lay.arch, configs_dir=ctx.project.configs_dir, dump_driver=dump_driver,
                             pae=c.pae, minik_fragment=c.minik_fragment, system_config=c.system_config)
    menu.menuconfig(lay.tree(p.kind), arch=lay.arch, kind=p.kind, save=p.save, fragments=frags,
                    configs_dir=ctx.project.configs_dir, log=ctx.log, obj=lay.obj(p.kind))
    stamp.write(lay.stamp("menuconfig"), {"kind": p.kind, "save": p.save})


def _prove_dump_disks(lay, minik_mem, log):
    """The mini kernel stand-alone with each emulated disk its built-in drivers drive (mkdump.dumpdisk); consoles
    and a report in reports/."""
    from . import dumpdisk
    from .kconfig import read_config_values
    values = read_config_values(os.path.join(lay.obj("minik"), ".config"))
    reports = dumpdisk.prove(lay.arch, os.path.join(lay.out, "minik-bzImage"), values, mem_mb=minik_mem,
                             workdir=lay.arch_dir, console_dir=os.path.dirname(lay.report("x")), log=log)
    for r in (r for r in reports if r["proved"]):
        log(f"mkdump: [{lay.arch}] boot test: the mini kernel found its dump disk on {r['disk']} "
            f"({r['device']}: {' '.join(r['partitions'])}; dump_dev={r['dump_dev']['name']} "
            f"{r['dump_dev']['value']}) with {r['memory_kb']}k of {r['mem_mb']} MB")
    if not reports:
        log(f"mkdump: [{lay.arch}] boot test: QEMU emulates no disk controller the mini kernel's dump driver "
            "drives (kernel/boot-disks.toml): its driver is proved by the build only")
    stamp.write(lay.report("boot-minik-disks.json"), reports)
    return reports


def boot_test(p, ctx):
    from . import boot
    lay, log, minik_mem, jobs = ctx.lay, ctx.log, ctx.run.minik_mem, ctx.run.jobs_effective
    tc = detected_toolchain(lay)
    minik = boot.prove_minik(lay.arch, os.path.join(lay.out, "minik-bzImage"), mem_mb=minik_mem, log=log,
                             console_log=lay.log("boot-minik"))
    minik["dump_disks"] = _prove_dump_disks(lay, minik_mem, log)
    ko = boot.build_test_module(lay.obj("system"), os.path.join(lay.arch_dir, "boot-test-module"),
                                make_args=toolchain_make_args(lay), jobs=jobs, log=log)
    from .kconfig import read_config_values
    values = read_config_values(os.path.join(lay.obj("system"), ".config"))
    smp = 2 if values.get("SMP") == "y" else 1
    disk_tree = disk_note = None
    if values.get("EXT3_FS") in ("y", "m"):
        disk_tree = lay.obj("system")
    else:
        # The lean default has neither a filesystem nor a disk driver to prove; a user's configuration has both.
        disk_note = "not proved: the system kernel's configuration has no ext3 (CONFIG_EXT3_FS)"
        log(f"mkdump: [{lay.arch}] boot test: disk {disk_note}")
    system = boot.prove_system(lay.arch, os.path.join(lay.out, "system-bzImage"), ko, toolchain_cc=tc.cc_command(),
                               extra_module=os.path.join(lay.out, "mkexec.ko"),
                               log=log, console_log=lay.log("boot-system"), smp=smp, disk_tree=disk_tree,
                               config_values=values, workdir=lay.arch_dir,
                               serial_console=values.get("SERIAL_8250_CONSOLE") == "y")
    if disk_note:
        system["disk"] = disk_note
    stamp.write(lay.report("boot-test.json"), {"minik": minik, "system": system})
    log(f"mkdump: [{lay.arch}] boot test passed (consoles: {lay.log('boot-minik')}, {lay.log('boot-system')})")

