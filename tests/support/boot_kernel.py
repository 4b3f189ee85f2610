"""A small 2.6.9 kernel for the real boot tests: unpacked from the real archive, the compat/ patches of
patches/system.series applied, a lean config (modules on, serial console, IDE, initrd), built through the product's
toolchain detection and kbuild runner.

The config is set here by hand rather than through the product's config stage: the boot proofs need a kernel that
boots in QEMU and loads modules, not the mini/system kernel configs the pipeline audits."""
import os
import re
import subprocess
import time
from pathlib import Path

from mkdump import kbuild, patching, toolchain

ROOT = Path(__file__).resolve().parents[2]
PATCHES = ROOT / "patches"
SERIES = PATCHES / "system.series"

FRAGMENT = {
    "SMP": "n", "SWAP": "n", "NET": "n", "EXT2_FS": "n", "EXT3_FS": "n", "MODVERSIONS": "n",
    "MODULES": "y", "MODULE_UNLOAD": "y", "PCI": "y", "IDE": "y", "BLK_DEV_IDE": "y", "BLK_DEV_IDEDISK": "y",
    "IDE_GENERIC": "y", "BLK_DEV_IDEPCI": "y", "BLK_DEV_GENERIC": "y", "BLK_DEV_IDEDMA_PCI": "y",
    "BLK_DEV_PIIX": "y", "SERIAL_8250": "y", "SERIAL_8250_CONSOLE": "y", "PROC_FS": "y", "SYSFS": "y",
    "BINFMT_ELF": "y", "BLK_DEV_RAM": "y", "BLK_DEV_INITRD": "y",
}


def compat_patches(arch):
    """Our own patches for arch, in series order: the compat/ entries of patches/system.series (the upstream
    mkexec patch is not needed to boot), as (path, strip level)."""
    entries = patching.parse_series(SERIES.read_text(), arch=arch, filename=str(SERIES), arches=("i386", "x86_64"))
    return [(PATCHES / e.path, e.strip) for e in entries if e.kind == "file" and e.path.startswith("compat/")]


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


def build(arch, tarball, workdir, *, log=None):
    """Unpack, patch, configure and build; return dict(tree, bzimage, toolchain, make_args, seconds, log)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "setup.log"
    subprocess.run(["tar", "-xjf", os.fspath(tarball), "-C", os.fspath(workdir)], check=True)
    tree = workdir / "linux-2.6.9"
    patches = compat_patches(arch)
    assert patches, f"{SERIES} lists no compat/ patches for {arch}"
    for patch, strip in patches:
        _run(["patch", f"-p{strip}", "--fuzz=0", "--batch", "-i", os.fspath(patch)], tree, log_path)
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
            "make_args": args, "seconds": seconds, "log": build_log}


def rebuild(built, *, log=None):
    """make again after a source change (kbuild rebuilds only what changed)."""
    kbuild.run_make(built["tree"], ["bzImage", "modules"], toolchain=built["toolchain"], jobs=2,
                    log_path=built["log"], log=log)
