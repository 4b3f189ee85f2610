"""The stages as functions of (inputs, options) -> outputs + stamp. The SCons tool calls these; tests can too.

Each function reads what earlier stages left (their stamps and trees, through `layout`), does its work in a
staging place, moves the result into place and writes its own stamp last.
"""
import os
import shutil
import subprocess
import sys
import tempfile

from . import layout as L
from . import stamp
from .errors import MkdumpError


def _log_default(msg):
    print(msg, file=sys.stderr, flush=True)


def _sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def replace_dir(staging, dest):
    """Move a finished staging directory to dest, replacing an old dest only once the new one is complete."""
    trash = None
    if os.path.lexists(dest):
        trash = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".old-", dir=os.path.dirname(dest))
        os.rename(dest, os.path.join(trash, "d"))
    os.rename(staging, dest)
    if trash:
        shutil.rmtree(trash)


def staging_dir(dest):
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".tmp-", dir=parent)


# ---------------------------------------------------------------- fetch

def fetch_signature(source, *, root, lock_sha256):
    """What decides whether a source must be fetched again: its definition, its lock entry, and whether the
    verified file recorded last time is still where it was."""
    present = False
    try:
        where = stamp.read(L.fetch_where(root, source.name))
        present = os.path.isfile(where["path"])
    except (OSError, ValueError, KeyError):
        pass
    return {
        "name": source.name, "file": source.file, "urls": list(source.urls),
        "alternatives": list(source.alternatives), "sha256": source.sha256,
        "tree_sha256": source.tree_sha256, "lock": lock_sha256, "present": present,
    }


def fetch(source, *, root, cache, sources_dirs, mirrors, offline, lock_path, log=_log_default):
    from .fetch import Fetcher
    from .sources import LockFile
    fetcher = Fetcher(cache, sources_dirs=sources_dirs, mirrors=mirrors, offline=offline,
                      lock=LockFile(lock_path), log=log)
    got = fetcher.fetch(source)
    stamp.write(L.fetch_where(root, source.name),
                {"path": os.path.abspath(got.path), "url": got.url, "origin": got.origin, "file": got.file})
    stamp.write(L.fetch_stamp(root, source.name),
                {"name": source.name, "sha256": got.sha256, "tree_sha256": got.tree_sha256})
    return got


def fetched_path(root, source_name):
    where = stamp.read(L.fetch_where(root, source_name))
    if not os.path.isfile(where["path"]):
        raise MkdumpError(f"The verified copy of source {source_name!r} ({where['path']}) has disappeared; "
                          "run `scons fetch` again.")
    return where["path"]


# ---------------------------------------------------------------- unpack

def unpacked_dir(lay, source_name):
    return lay.linux_src if source_name == "linux" else os.path.join(lay.arch_dir, "src", source_name)


def unpack(source, lay, *, log=_log_default):
    from . import unpack as U
    archive = fetched_path(lay.root, source.name)
    dest = unpacked_dir(lay, source.name)
    log(f"mkdump: [{lay.arch}] unpacking {os.path.basename(archive)} into {dest}")
    tree = U.unpack(archive, dest, expect_tree_sha256=source.tree_sha256, log=log)
    if source.name == "mkexec":
        from .mkexec import find_layout
        find_layout(dest)
    stamp.write(lay.stamp("unpack-" + source.name),
                {"source": source.name, "sha256": _sha256_file(archive), "tree_sha256": tree})


# ---------------------------------------------------------------- patch

def read_series(series_path, arch):
    from .patching import parse_series
    with open(series_path, encoding="utf-8") as f:
        return parse_series(f.read(), arch=arch, filename=series_path)


def series_inputs(series_path, arch, patches_dir):
    """Files and sources a series depends on, for SCons: (local patch paths, source names)."""
    files, srcs = [], []
    for e in read_series(series_path, arch):
        if e.kind == "source":
            srcs.append(e.source)
        else:
            files.append(os.path.join(patches_dir, e.path))
    return files, srcs


def _copy_tree(src, dest):
    # cp -a is several times faster than shutil.copytree on the 16,448-file tree, and keeps modes and links.
    subprocess.run(["cp", "-a", "--reflink=auto", "--", src + "/.", dest], check=True)


def patch(kind, lay, *, series_path, patches_dir, fuzz=0, log=_log_default):
    from .patching import PatchRejected, apply_series
    patches, described = [], []
    for e in read_series(series_path, lay.arch):
        if e.kind == "source":
            if e.member:
                path = os.path.join(unpacked_dir(lay, e.source), e.member)
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
        described.append({"ref": e.ref, "strip": e.strip, "sha256": _sha256(data)})

    dest = lay.tree(kind)
    os.makedirs(os.path.dirname(lay.report("x")), exist_ok=True)
    report_path = lay.report(f"patch-{kind}.txt")
    staging = staging_dir(dest)
    try:
        log(f"mkdump: [{lay.arch}] patching the {kind} tree ({len(patches)} patches)")
        _copy_tree(lay.linux_src, staging)
        try:
            report = apply_series(staging, patches, fuzz=fuzz, log=log)
        except PatchRejected as err:
            with open(report_path, "w") as f:
                f.write(err.report)
            raise MkdumpError(f"{err} Full report: {report_path}. The {kind} tree was not changed.") from None
        replace_dir(staging, dest)
        staging = None
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    with open(report_path, "w") as f:
        f.write(report.text)
    stamp.write(lay.stamp("patch-" + kind), {"kind": kind, "patches": described, "report": report.to_dict()})


def _sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- toolchain

def toolchain(lay, *, cc=None, cross_compile=None, log=_log_default):
    from .toolchain import detect
    tc = detect(lay.arch, cc=cc, cross_compile=cross_compile)
    data = tc.to_dict()
    data["make_args"] = list(tc.make_args())
    stamp.write(lay.stamp("toolchain"), data)
    log(f"mkdump: [{lay.arch}] toolchain: gcc {data.get('gcc_version')}, binutils {data.get('binutils_version')}")


def toolchain_make_args(lay):
    return stamp.read(lay.stamp("toolchain"))["make_args"]


# ---------------------------------------------------------------- config

def config(kind, lay, *, configs_dir, dump_driver, pae, minik_fragment=None, system_config=None,
           log=_log_default):
    from . import kconfig
    frags = kconfig.fragments_for(configs_dir, arch=lay.arch, kind=kind, dump_driver=dump_driver, pae=pae,
                                  user_fragment=minik_fragment if kind == "minik" else None)
    log(f"mkdump: [{lay.arch}] configuring the {kind} kernel")
    summary = kconfig.configure(lay.tree(kind), arch=lay.arch, kind=kind, fragments=frags,
                                make_args=toolchain_make_args(lay), log=log,
                                base_config=system_config if kind == "system" else None)
    stamp.write(lay.stamp("config-" + kind), summary)


# ---------------------------------------------------------------- build

def kernel_outputs(kind, arch):
    """Files a kernel build must produce, relative to its tree."""
    outs = ["vmlinux", "System.map", f"arch/{arch}/boot/bzImage"]
    if kind == "minik":
        outs.append(f"arch/{arch}/boot/compressed/vmlinux.bin")
    return outs


def build(kind, lay, *, jobs=None, verbose=False, source_date_epoch, log=_log_default):
    from . import kbuild
    from .toolchain import Toolchain
    tree = lay.tree(kind)
    tc = Toolchain.from_dict(stamp.read(lay.stamp("toolchain")))
    targets = ["bzImage"] if kind == "minik" else ["bzImage", "modules"]
    kbuild.run_make(tree, targets, toolchain=tc, jobs=jobs, verbose=verbose, log_path=lay.log("build-" + kind),
                    env_extra={"SOURCE_DATE_EPOCH": str(source_date_epoch)}, log=log)
    outputs = {}
    for rel in kernel_outputs(kind, lay.arch):
        path = os.path.join(tree, rel)
        if not os.path.isfile(path):
            raise MkdumpError(f"The {kind} kernel build finished without producing {rel}; "
                              f"see {lay.log('build-' + kind)}.")
        outputs[rel] = _sha256_file(path)
    stamp.write(lay.stamp("build-" + kind),
                {"kind": kind, "release": kbuild.kernel_release(tree), "outputs": outputs})
