#!/usr/bin/env python3
"""Build time and sizes of the mini and system kernels from the real 2.6.9 tree, per arch.

Takes linux-2.6.9.tar.bz2 from $MKDUMP_TEST_SOURCES; applies our compat patches, configures the small test
configs and builds with mkdump.toolchain + mkdump.kbuild. With --repro each kernel is built a second time in
another directory and the products are compared byte for byte.

    MKDUMP_TEST_SOURCES=/work/srcs python3 benchmarks/bench_build.py --arch x86_64 --kernel mini --repro
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site_scons"))
sys.path.insert(0, str(ROOT / "tests"))

from mkdump import kbuild, toolchain  # noqa: E402
# The tree preparation the real-kernel tests use, so benchmark and tests build the same thing.
from support.kernel_tree import MINI_FRAGMENT, SYSTEM_FRAGMENT, apply_compat_patches, configure, unpack  # noqa: E402

KERNELS = {
    "mini": (MINI_FRAGMENT, ["bzImage"]),
    "system": (SYSTEM_FRAGMENT, ["bzImage", "modules"]),
}


def products(tree, arch):
    names = ["vmlinux", f"arch/{arch}/boot/compressed/vmlinux.bin", f"arch/{arch}/boot/bzImage", "System.map"]
    names += sorted(str(p.relative_to(tree)) for p in tree.rglob("*.ko"))
    return {n: tree / n for n in names}


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_one(tarball, arch, kernel, tc, workdir, jobs):
    fragment, targets = KERNELS[kernel]
    tree = unpack(tarball, workdir / "src")
    apply_compat_patches(tree, arch)
    dropped = configure(tree, tc, fragment, workdir / "logs", log=lambda m: None)
    if dropped:
        print(f"  warning: oldconfig dropped {dropped}")
    start = time.monotonic()
    t0 = os.times()
    kbuild.run_make(tree, targets, toolchain=tc, jobs=jobs, log_path=workdir / "logs" / "build.log",
                    log=lambda m: None)
    wall = time.monotonic() - start
    t1 = os.times()
    cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    return tree, wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["x86_64", "i386"], action="append")
    ap.add_argument("--kernel", choices=sorted(KERNELS), action="append")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repro", action="store_true", help="build twice in two directories and compare")
    ap.add_argument("--workdir", type=Path, help="keep the trees here (default: a temporary directory)")
    args = ap.parse_args()
    src = os.environ.get("MKDUMP_TEST_SOURCES")
    tarball = Path(src) / "linux-2.6.9.tar.bz2" if src else None
    if tarball is None or not tarball.is_file():
        sys.exit("set MKDUMP_TEST_SOURCES to a directory holding linux-2.6.9.tar.bz2")

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        base = args.workdir or Path(tmp)
        for arch in args.arch or ["x86_64", "i386"]:
            tc = toolchain.detect(arch)
            print(f"{arch}: {tc.gcc_version_line}, binutils {tc.binutils_version}, make args: "
                  f"{' '.join(tc.make_args())}")
            for kernel in args.kernel or ["mini", "system"]:
                tree, wall, cpu = build_one(tarball, arch, kernel, tc, base / f"{arch}-{kernel}", args.jobs)
                built = products(tree, arch)
                sizes = "  ".join(f"{Path(n).name} {p.stat().st_size}" for n, p in built.items()
                                  if not n.endswith(".ko"))
                mods = [n for n in built if n.endswith(".ko")]
                print(f"  {kernel:6s} make {' '.join(KERNELS[kernel][1])} -j{args.jobs}: {wall:6.1f} s wall, "
                      f"{cpu:6.1f} s cpu  |  {sizes}  |  {len(mods)} modules")
                if args.repro:
                    tree2, wall2, _ = build_one(tarball, arch, kernel, tc, base / f"{arch}-{kernel}-again",
                                                args.jobs)
                    again = products(tree2, arch)
                    differ = [n for n in built if n not in again or sha256(built[n]) != sha256(again[n])]
                    differ += [n for n in again if n not in built]
                    verdict = "identical" if not differ else "DIFFER: " + ", ".join(differ)
                    print(f"  {kernel:6s} second build in {tree2.parents[1].name}/ ({wall2:.1f} s): "
                          f"{len(built)} products {verdict}")


if __name__ == "__main__":
    main()
