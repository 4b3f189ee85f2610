"""Benchmark: apply a ~50 kB patch to the real Linux 2.6.9 tree with the patch stage (goal: well under a second).

    python3 benchmarks/bench_patch.py [--tree DIR | --tarball FILE] [--size BYTES] [--runs N]

Without --tree, the files the patch touches are unpacked from the tarball ($MKDUMP_TEST_SOURCES/linux-2.6.9.tar.*
by default). The patch is the minik stand-in plus ordinary hunks (comment lines, edited lines) over kernel/*.c and
mm/*.c until it reaches --size bytes. Each run applies it to a fresh copy; GNU patch is timed on the same input
for comparison. Prints the figures.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "site_scons"), str(ROOT / "tests")]

from mkdump import patching  # noqa: E402
from support import standin_minik  # noqa: E402

BULK_DIRS = ("kernel/", "mm/")


def find_tarball():
    d = os.environ.get("MKDUMP_TEST_SOURCES")
    for name in ("linux-2.6.9.tar.bz2", "linux-2.6.9.tar.gz", "linux-2.6.9.tar.xz"):
        if d and Path(d, name).is_file():
            return Path(d, name)
    sys.exit("no tarball: pass --tarball or --tree, or set MKDUMP_TEST_SOURCES")


def unpack_subset(tarball, dest):
    wanted = {f"linux-2.6.9/{p}" for p in
              [kf.path for kf in standin_minik.KEYWORD_FILES] + list(standin_minik.KCONFIG_FILES)}
    bulk = re.compile(r"linux-2\.6\.9/(%s)[^/]+\.c$" % "|".join(re.escape(d) for d in BULK_DIRS))
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.name in wanted or bulk.match(member.name):
                out = dest / member.name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    return dest / "linux-2.6.9"


def bulk_sections(tree, budget):
    """Ordinary diff sections over kernel/*.c and mm/*.c until `budget` bytes are reached."""
    sections = []
    for path in sorted(p.relative_to(tree).as_posix() for d in BULK_DIRS for p in (tree / d).glob("*.c")):
        if budget <= 0:
            break
        old = standin_minik.split_lines((tree / path).read_bytes())
        new = list(old)
        for i in range(len(new) - 1, 0, -97):          # every ~100 lines: a comment, and an edited statement
            if new[i] == b"\n":
                new.insert(i + 1, b"/* bench: an added comment line */\n")
            elif new[i].rstrip().endswith(b";"):
                new[i] = new[i].rstrip(b"\n") + b" /* bench */\n"
        if new == old:
            continue
        text = standin_minik.file_diff(path, old, new)[0]
        sections.append(text)
        budget -= len(text)
    return sections


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, help="an unpacked linux-2.6.9 tree (left untouched)")
    ap.add_argument("--tarball", type=Path)
    ap.add_argument("--size", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        tmp = Path(tmp)
        if args.tree:
            tree = args.tree
        else:
            t0 = time.perf_counter()
            tree = unpack_subset(args.tarball or find_tarball(), tmp / "src")
            print(f"unpacked the files the patch touches in {time.perf_counter() - t0:.1f} s (not part of the figure)")
        standin = standin_minik.build_minik_standin(tree)
        patch = standin.patch + b"".join(bulk_sections(tree, args.size - len(standin.patch)))
        (tmp / "bench.patch").write_bytes(patch)
        touched = [p for p in re.findall(rb"^\+\+\+ [^/]+/(\S+)", patch, re.M)]

        def fresh(name):
            dst = tmp / name
            shutil.rmtree(dst, ignore_errors=True)
            for p in touched:
                src = tree / p.decode()
                if src.exists():
                    (dst / p.decode()).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst / p.decode())
            return dst

        ours, report = [], None
        for _ in range(args.runs):
            dst = fresh("ours")
            t0 = time.perf_counter()
            report = patching.apply_series(dst, [("bench.patch", patch, 1)], log=lambda m: None)
            ours.append(time.perf_counter() - t0)
        gnu = []
        if shutil.which("patch"):
            for _ in range(args.runs):
                dst = fresh("gnu")
                t0 = time.perf_counter()
                subprocess.run(["patch", "-p1", "--fuzz=0", "--forward", "--batch", "--no-backup-if-mismatch",
                                "-s", "-i", str(tmp / "bench.patch")], cwd=dst, capture_output=True)
                gnu.append(time.perf_counter() - t0)

    counts = report.to_dict()["patches"][0]["counts"]
    hunks = sum(counts[k] for k in ("applied", "keyword-applied", "keyword-skipped"))
    print(f"patch: {len(patch) / 1000:.1f} kB, {counts['files']} files, {hunks} hunks "
          f"({counts['keyword-skipped']} keyword-only skipped, {counts['keyword-applied']} keyword-tolerated)")
    print(f"apply_series (check all, then write): best {min(ours) * 1000:.0f} ms, "
          f"median {statistics.median(ours) * 1000:.0f} ms over {len(ours)} runs")
    if gnu:
        print(f"GNU patch --fuzz=0 (rejects the 4 $Id$ hunks): best {min(gnu) * 1000:.0f} ms, "
              f"median {statistics.median(gnu) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
