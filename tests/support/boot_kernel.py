"""A small 2.6.9 kernel for the real boot tests: unpacked from the real archive, the compat/ patches of
patches/system.series applied by support.kernel_tree (and, on request, the mkexec stand-in's kernel patch, so a
stand-in mkexec.ko can load), a lean config (modules on, serial console, IDE, initrd, proc), built through the product's toolchain
detection and kbuild runner.

The config is set here by hand rather than through the product's config stage: the boot proofs need a kernel that
boots in QEMU and loads modules, not the mini/system kernel configs the pipeline audits."""
import os
import re
import subprocess
import time
from pathlib import Path

from mkdump import kbuild, mkexec, toolchain, unpack
from support import kernel_tree, standin_mkexec

FRAGMENT = {
    "SMP": "n", "SWAP": "n", "NET": "n", "EXT2_FS": "n", "EXT3_FS": "n", "MODVERSIONS": "n",
    "MODULES": "y", "MODULE_UNLOAD": "y", "PCI": "y", "IDE": "y", "BLK_DEV_IDE": "y", "BLK_DEV_IDEDISK": "y",
    "IDE_GENERIC": "y", "BLK_DEV_IDEPCI": "y", "BLK_DEV_GENERIC": "y", "BLK_DEV_IDEDMA_PCI": "y",
    "BLK_DEV_PIIX": "y", "SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y", "PROC_FS": "y", "SYSFS": "y",
    "BINFMT_ELF": "y", "BLK_DEV_RAM": "y", "BLK_DEV_INITRD": "y",
}


def _run(cmd, cwd, log_path, stdin=None):
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, input=stdin)
    if proc.returncode != 0:
        lines = Path(log_path).read_text(errors="replace").splitlines()
        errors = [line for line in lines if re.search(r"Error|error:|\*\*\*", line)][-20:]
        tail = "\n".join(errors + ["..."] + lines[-10:])
        raise AssertionError(f"`{' '.join(cmd)}` failed in {cwd} (log {log_path}):\n{tail}")


def _set_config(config_path, values):
    lines = Path(config_path).read_text().splitlines()
    out = [line for line in lines
           if not (m := re.match(r"(?:# )?CONFIG_(\w+)[ =]", line)) or m.group(1) not in values]
    for name, value in values.items():
        out.append(f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}")
    Path(config_path).write_text("\n".join(out) + "\n")


def _config_value(config_text, name):
    m = re.search(rf"^CONFIG_{name}=(\S+)$", config_text, re.M)
    return m.group(1) if m else "n"


def build(arch, tarball, workdir, *, mkexec_standin=False, log=None):
    """Unpack, patch, configure and build; return dict(tree, bzimage, toolchain, make_args, seconds, log).

    mkexec_standin also applies the stand-in PATCH/mkexec-v1.patch (it exports the symbol the stand-in
    mkexec.ko uses); the patch text is then in the result as "mkexec_patch"."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "setup.log"
    subprocess.run(["tar", "-xjf", os.fspath(tarball), "-C", os.fspath(workdir)], check=True)
    tree = workdir / "linux-2.6.9"
    kernel_tree.apply_compat_patches(tree, arch)
    mkexec_patch = None
    if mkexec_standin:
        mkexec_patch = standin_mkexec.kernel_patch(tree)
        _run(["patch", "-p1", "--fuzz=0", "--batch"], tree, log_path, stdin=mkexec_patch.encode("latin-1"))
    tc = toolchain.detect(arch)
    args = tc.make_args()
    _run(["make", *args, "allnoconfig"], tree, log_path)
    _set_config(tree / ".config", FRAGMENT)
    _run(["make", *args, "oldconfig"], tree, log_path, stdin=b"\n" * 2000)
    text = (tree / ".config").read_text()
    dropped = {k: v for k, v in FRAGMENT.items() if _config_value(text, k) != v}
    assert not dropped, f"oldconfig did not keep {dropped}"
    start = time.monotonic()
    build_log = workdir / "build.log"
    kbuild.run_make(tree, ["bzImage", "modules"], toolchain=tc, jobs=2, log_path=build_log, log=log)
    seconds = time.monotonic() - start
    return {"tree": tree, "bzimage": tree / "arch" / arch / "boot" / "bzImage", "toolchain": tc,
            "make_args": args, "seconds": seconds, "log": build_log, "mkexec_patch": mkexec_patch}


def build_mkexec_standin(built, arch, workdir, *, log=None):
    """The stand-in mkexec.ko for a kernel from build(..., mkexec_standin=True), made as the pipeline makes
    the real one: stand-in archive, unpack, mkexec.build_module against the tree. Returns the .ko path."""
    workdir = Path(workdir)
    taz = standin_mkexec.make_taz(workdir / "mkexec-2.6.9-1.0-update1.taz", patch_text=built["mkexec_patch"])
    src = workdir / "mkexec-src"
    unpack.unpack(taz, src, log=lambda m: None)
    release = kbuild.kernel_release(built["tree"])
    return Path(mkexec.build_module(src, workdir / "mkexec", arch=arch, kdir=built["tree"], kver=release,
                                    kmoddir=f"/lib/modules/{release}/extra", toolchain=built["toolchain"],
                                    log_path=workdir / "mkexec.log", log=log or (lambda m: None)))


def rebuild(built, *, log=None):
    """make again after a source change (kbuild rebuilds only what changed)."""
    kbuild.run_make(built["tree"], ["bzImage", "modules"], toolchain=built["toolchain"], jobs=2,
                    log_path=built["log"], log=log)
