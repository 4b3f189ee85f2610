#!/usr/bin/env python3
"""How long `scons` takes when nothing changed (the goal: well under a second), and the first full run.

Without arguments: builds the fixture kernel pipeline in a temporary copy of the project (served over loopback),
then times repeated no-op runs. With --project DIR ARGS...: times no-op runs of an already built project, e.g. a
real 2.6.9 build:

    python3 benchmarks/bench_noop.py
    python3 benchmarks/bench_noop.py --project /path/to/built/copy arch=x86_64 sources=/srv/src offline=1
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site_scons"))
sys.path.insert(0, str(ROOT / "tests"))

from support import project as P  # noqa: E402
from support.httpserver import serve  # noqa: E402


def timed(proj, args):
    start = time.monotonic()
    r = P.scons(proj, *args)
    return time.monotonic() - start, r


def noops(proj, args, runs):
    times = []
    for _ in range(runs):
        seconds, r = timed(proj, ["-q", *args])
        if r.returncode != 0:
            sys.exit(f"not up to date (scons -q exit {r.returncode}):\n{r.stdout}{r.stderr}")
        times.append(seconds)
    print(f"no-op scons -q: best {min(times):.3f} s, median {statistics.median(times):.3f} s over {runs} runs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--project")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("args", nargs="*")
    opts = ap.parse_args()
    if opts.project:
        noops(Path(opts.project), opts.args, opts.runs)
        return
    with tempfile.TemporaryDirectory() as tmp, serve() as server:
        tmp = Path(tmp)
        sources = P.make_fixture_sources(tmp / "fixture")
        for name, data in sources.files.items():
            server.add("/m/" + name, data)
        proj = P.copy_project(tmp / "proj")
        P.keep_fixture_series(proj)
        P.pin_linux_tree(proj, sources.tree_sha256)
        args = ["arch=x86_64", f"mirror={server.url}/m", f"cache={tmp / 'cache'}", *opts.args]
        seconds, r = timed(proj, args)
        if r.returncode != 0:
            sys.exit(r.stdout + r.stderr)
        print(f"fixture pipeline, first full run: {seconds:.2f} s")
        noops(proj, args, opts.runs)


if __name__ == "__main__":
    main()
