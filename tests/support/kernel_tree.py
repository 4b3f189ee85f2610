"""A real 2.6.9 tree prepared for a build outside the pipeline: unpacked, our compat patches applied in
patches/system.series order, configured by allnoconfig + a fragment + oldconfig through mkdump.kbuild.

Shared by the real-tree tests (test_kbuild, support.boot_kernel) and benchmarks/bench_build.py, so they build
the same thing."""
import re
import subprocess
from pathlib import Path

from mkdump import kbuild, patching

ROOT = Path(__file__).resolve().parents[2]
PATCHES = ROOT / "patches"
SERIES = PATCHES / "system.series"
COMPAT_DIR = PATCHES / "compat"
ARCHES = ("x86_64", "i386")

MINI_FRAGMENT = """\
# CONFIG_SMP is not set
# CONFIG_SWAP is not set
# CONFIG_NET is not set
# CONFIG_EXT2_FS is not set
# CONFIG_EXT3_FS is not set
# CONFIG_MODULES is not set
CONFIG_PCI=y
CONFIG_IDE=y
CONFIG_BLK_DEV_IDE=y
CONFIG_BLK_DEV_IDEDISK=y
CONFIG_IDE_GENERIC=y
CONFIG_BLK_DEV_IDEPCI=y
CONFIG_BLK_DEV_GENERIC=y
CONFIG_BLK_DEV_IDEDMA_PCI=y
CONFIG_BLK_DEV_PIIX=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_BINFMT_ELF=y
CONFIG_BLK_DEV_RAM=y
CONFIG_BLK_DEV_INITRD=y
"""
# The system kernel adds module support and two modules to exercise it.
SYSTEM_FRAGMENT = MINI_FRAGMENT.replace("# CONFIG_MODULES is not set\n", """\
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
# CONFIG_MODVERSIONS is not set
CONFIG_BLK_DEV_LOOP=m
""")
# 2.6.9's oldconfig loops forever on a choice with an unset member when stdin is empty: set them all.
ARCH_FRAGMENT = {
    "x86_64": "",
    "i386": "CONFIG_PCI_GOANY=y\n# CONFIG_PCI_GOBIOS is not set\n# CONFIG_PCI_GOMMCONFIG is not set\n"
            "# CONFIG_PCI_GODIRECT is not set\n",
}
_CONFIG_LINE = re.compile(r"^(?:(CONFIG_\w+)=.*|# (CONFIG_\w+) is not set)$")


def compat_patches(arch):
    """Our own patches for arch, in series order: the compat/ entries of patches/system.series (the upstream
    mkexec patch is not needed to build or boot), as (path, strip level)."""
    entries = patching.parse_series(SERIES.read_text(), arch=arch, filename=str(SERIES), arches=ARCHES)
    return [(PATCHES / e.path, e.strip) for e in entries if e.kind == "file" and e.path.startswith("compat/")]


def unpack(tarball, dest):
    """Unpack linux-2.6.9 into dest/linux-2.6.9 and return that path."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest)], check=True)
    return dest / "linux-2.6.9"


def apply_patch(tree, patch, strip=1, *, text=None):
    """GNU patch with zero fuzz and no offset: a patch that needs either is a patch to fix. `text` is the
    patch itself when it is not a file."""
    source = ["-i", str(patch)] if text is None else []
    proc = subprocess.run(["patch", f"-p{strip}", "-N", "--fuzz=0", "--no-backup-if-mismatch", *source],
                          cwd=tree, input=text, capture_output=True, text=True)
    assert proc.returncode == 0, f"{patch} does not apply: {proc.stdout}{proc.stderr}"
    assert "offset" not in proc.stdout and "fuzz" not in proc.stdout, proc.stdout


def apply_compat_patches(tree, arch):
    patches = compat_patches(arch)
    assert patches, f"{SERIES} lists no compat/ patches for {arch}"
    for path, strip in patches:
        apply_patch(tree, path, strip)


def merge_fragment(config_path, fragment):
    wanted = {}
    for line in fragment.splitlines():
        m = _CONFIG_LINE.match(line)
        if m:
            wanted[m.group(1) or m.group(2)] = line
    kept = []
    for line in Path(config_path).read_text().splitlines():
        m = _CONFIG_LINE.match(line)
        if not (m and (m.group(1) or m.group(2)) in wanted):
            kept.append(line)
    Path(config_path).write_text("\n".join(kept + list(wanted.values())) + "\n")
    return wanted


def configure(tree, tc, fragment, log_dir, log=None):
    """allnoconfig + fragment + oldconfig; returns the fragment lines oldconfig did not honour."""
    kbuild.run_make(tree, ["allnoconfig"], toolchain=tc, log_path=log_dir / "allnoconfig.log", log=log)
    wanted = merge_fragment(tree / ".config", fragment + ARCH_FRAGMENT[tc.arch])
    kbuild.run_make(tree, ["oldconfig"], toolchain=tc, log_path=log_dir / "oldconfig.log", log=log)
    final = (tree / ".config").read_text().splitlines()
    set_now = {line.split("=", 1)[0]: line for line in final if line.startswith("CONFIG_")}
    return [line for sym, line in wanted.items()
            if (set_now.get(sym) != line if "=" in line else sym in set_now)]
