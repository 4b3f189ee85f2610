#!/usr/bin/env python3
"""How long the real linux-2.6.9 archive takes to decompress, unpack, hash and verify through the fetcher.

    python3 benchmarks/bench_unpack.py [ARCHIVE]     (default: $MKDUMP_TEST_SOURCES/linux-2.6.9.tar.bz2)

Prints wall and CPU seconds per step (CPU includes child processes), and the load average, since the
machine is often shared and wall time alone says little.
"""
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site_scons"))

from mkdump.fetch import Fetcher  # noqa: E402
from mkdump.narhash import nar_sha256  # noqa: E402
from mkdump.sources import load_sources  # noqa: E402
from mkdump.unpack import _tar_stream, detect_compression, unpack  # noqa: E402


def cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def step(label, fn):
    wall, used = time.perf_counter(), cpu()
    result = fn()
    print(f"{label:<44} {time.perf_counter() - wall:7.2f} s wall {cpu() - used:7.2f} s CPU")
    return result


def main():
    if len(sys.argv) > 1:
        archive = Path(sys.argv[1])
    elif os.environ.get("MKDUMP_TEST_SOURCES"):
        archive = Path(os.environ["MKDUMP_TEST_SOURCES"]) / "linux-2.6.9.tar.bz2"
    else:
        sys.exit("give the archive as an argument or set MKDUMP_TEST_SOURCES")
    linux = load_sources(ROOT / "patches" / "sources.toml")["linux"]
    kind = detect_compression(archive)
    print(f"archive {archive} ({kind}, {archive.stat().st_size / 1e6:.1f} MB); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    scratch = Path(tempfile.mkdtemp(prefix="bench-unpack-"))
    try:
        def decompress():
            n = 0
            with _tar_stream(str(archive), kind) as f:
                while chunk := f.read(1 << 20):
                    n += len(chunk)
            return n

        size = step("decompress only", decompress)
        dest = scratch / "linux-2.6.9"
        tree = step("unpack() = decompress + extract + tree hash",
                    lambda: unpack(archive, dest, expect_tree_sha256=linux.tree_sha256, log=lambda m: None))
        step("tree hash alone (warm page cache)", lambda: nar_sha256(dest))
        files = sum(len(names) for _, _, names in os.walk(dest))
        verdict = "matches" if tree == linux.tree_sha256 else "DIFFERS"
        print(f"  tar stream {size / 1e6:.1f} MB, {files} files, tree {tree}, pin {verdict}")
        shutil.rmtree(dest)

        def fetch():
            return Fetcher(scratch / "cache", sources_dirs=[archive.parent], offline=True,
                           log=lambda m: None).fetch(linux)

        step("fetch verify, first time (unpacks to prove)", fetch)
        step("fetch verify, proved before (record)", fetch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
