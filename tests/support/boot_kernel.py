"""A small 2.6.9 kernel for the real boot tests: unpacked from the real archive, our compatibility patches from
patches/compat/ applied, a lean config (modules on, serial console, IDE, initrd), built with make -j2.

This is the recipe of shared/docs/toolchain.md in code form, used until the product's toolchain and kbuild
stages can be called on their own from a test."""
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "patches" / "compat"

# gcc 12 flags from toolchain.md: no PIE (the kernel code model refuses PIC), gnu89 inline semantics (2.6.9's
# "extern inline" headers), and on x86_64 no SSE/MMX in kernel code.
CC = {"x86_64": "gcc -fno-pie -fgnu89-inline -mno-sse -mno-mmx -mno-sse2 -mno-3dnow",
      "i386": "gcc -m32 -fno-pie -fgnu89-inline"}

FRAGMENT = {
    "SMP": "n", "SWAP": "n", "NET": "n", "EXT2_FS": "n", "EXT3_FS": "n", "MODVERSIONS": "n",
    "MODULES": "y", "MODULE_UNLOAD": "y", "PCI": "y", "IDE": "y", "BLK_DEV_IDE": "y", "BLK_DEV_IDEDISK": "y",
    "IDE_GENERIC": "y", "BLK_DEV_IDEPCI": "y", "BLK_DEV_GENERIC": "y", "BLK_DEV_IDEDMA_PCI": "y",
    "BLK_DEV_PIIX": "y", "SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y", "PROC_FS": "y", "SYSFS": "y",
    "BINFMT_ELF": "y", "BLK_DEV_RAM": "y", "BLK_DEV_INITRD": "y",
}


def make_args(arch):
    return [f"ARCH={arch}", f"CC={CC[arch]}"]


def compat_patches(arch):
    """Our patches that concern arch: named <arch>-*.patch in patches/compat/."""
    return sorted(COMPAT.glob(f"{arch}-*.patch"))


def _run(cmd, cwd, log_path, stdin=None):
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, input=stdin)
    if proc.returncode != 0:
        lines = Path(log_path).read_text(errors="replace").splitlines()
        # make -j2 interleaves: the error is seldom in the last lines, so show error lines first.
        errors = [line for line in lines if re.search(r"Error|error:|\*\*\*", line)][-20:]
        tail = "\n".join(errors + ["..."] + lines[-10:])
        raise AssertionError(f"`{' '.join(cmd)}` failed in {cwd} (log {log_path}):\n{tail}")


def _set_config(config_path, values):
    lines = Path(config_path).read_text().splitlines()
    seen, out = set(), []
    for line in lines:
        m = re.match(r"(?:# )?CONFIG_(\w+)[ =]", line)
        if m and m.group(1) in values:
            seen.add(m.group(1))
            continue
        out.append(line)
    for name, value in values.items():
        out.append(f"# CONFIG_{name} is not set" if value == "n" else f"CONFIG_{name}={value}")
    Path(config_path).write_text("\n".join(out) + "\n")


def _config_value(config_text, name):
    m = re.search(rf"^CONFIG_{name}=(\S+)$", config_text, re.M)
    return m.group(1) if m else "n"


def build(arch, tarball, workdir, *, patches=None):
    """Unpack, patch, configure and build; return dict(tree, bzimage, make_args, seconds, log)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "build.log"
    subprocess.run(["tar", "-xjf", os.fspath(tarball), "-C", os.fspath(workdir)], check=True)
    tree = workdir / "linux-2.6.9"
    for patch in compat_patches(arch) if patches is None else patches:
        _run(["patch", "-p1", "--fuzz=0", "--batch", "-i", os.fspath(patch)], tree, log_path)
    args = make_args(arch)
    _run(["make", *args, "allnoconfig"], tree, log_path)
    _set_config(tree / ".config", FRAGMENT)
    _run(["make", *args, "oldconfig"], tree, log_path, stdin=b"\n" * 2000)
    text = (tree / ".config").read_text()
    dropped = {k: v for k, v in FRAGMENT.items() if _config_value(text, k) != v}
    assert not dropped, f"oldconfig did not keep {dropped}"
    start = time.monotonic()
    _run(["make", *args, "-j2", "bzImage", "modules"], tree, log_path)
    seconds = time.monotonic() - start
    return {"tree": tree, "bzimage": tree / "arch" / arch / "boot" / "bzImage", "make_args": args,
            "seconds": seconds, "log": log_path}


def rebuild(arch, tree, log_path):
    """make again after a source change (kbuild rebuilds only what changed)."""
    _run(["make", *make_args(arch), "-j2", "bzImage", "modules"], tree, log_path)
