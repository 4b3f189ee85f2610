"""Faults from outside, through the real scons on the fixture kernel: Ctrl-C, kill -9, a concurrent run.

The fixture's sources come from a sources= directory, offline: no test here needs the network. A stand-in program
early on PATH (`stand_in`) does the real work and then blocks, so a test can act while a stage is in a known place.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from support import project as P


def offline(sources, tmp_path):
    return ["arch=x86_64", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}"]


def stand_in(bindir, name, body):
    """An executable `name` in `bindir` running the shell `body`, where $REAL is the program it stands in for."""
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text(f"#!/bin/sh\nREAL={shlex.quote(shutil.which(name))}\n{body}")
    path.chmod(0o755)
    return bindir


def blocking(bindir, name, marker, filter_output=""):
    """`name` doing its real work (its output through `filter_output`), then touching `marker` and blocking."""
    return stand_in(bindir, name, f'"$REAL" "$@"{filter_output} || exit $?\ntouch {shlex.quote(str(marker))}\n'
                                  "exec sleep 600\n")


class Run:
    """scons in a session of its own, as a shell runs it in its own process group: a test can signal the group
    the way Ctrl-C in a terminal signals every process of the foreground job."""

    def __init__(self, project, *args, bindir=None):
        env = dict(os.environ)
        env.pop("SOURCE_DATE_EPOCH", None)
        if bindir is not None:
            env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
        self.proc = subprocess.Popen([sys.executable, "-m", "SCons", *args], cwd=project, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.stdout = self.stderr = None

    def wait_for(self, path, timeout=300):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(f"scons ended before {path} appeared:\n{self.stdout}{self.stderr}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"{path} did not appear in {timeout} s")
            time.sleep(0.05)

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout=600):
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.stdout is None:
            self.finish()


@pytest.fixture
def runs():
    started = []

    def start(*args, **kw):
        started.append(Run(*args, **kw))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def leftovers(arch_dir):
    """Staging names (`.<name>.<kind>-XXXXXXXX`) anywhere under the arch directory."""
    return sorted(str(p.relative_to(arch_dir)) for p in arch_dir.rglob(".*")
                  if any(f".{kind}-" in p.name for kind in ("tmp", "unpack", "old")))


@pytest.mark.parametrize("target, program, filter_output, made", [
    ("patch", "cp", "", {"minik": "patch-minik", "system": "patch-system"}),
    # The decompressor hands on part of the archive, then blocks: Ctrl-C breaks the tar stream off mid-way.
    ("unpack", "bzip2", " | head -c 100000", {"src/linux-2.6.9": "unpack-linux", "src/mkexec": "unpack-mkexec"}),
])
def test_ctrl_c_says_interrupted_and_leaves_nothing_half_done(sources, tmp_path, runs, target, program,
                                                              filter_output, made):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    assert P.scons(proj, "fetch", *args).returncode == 0
    marker = tmp_path / "blocked"
    run = runs(proj, target, *args, bindir=blocking(tmp_path / "bin", program, marker, filter_output))
    run.wait_for(marker)
    run.signal(signal.SIGINT)
    assert run.finish() == 2
    said = [line for line in run.stderr.splitlines() if line.startswith("mkdump:") and "[x86_64]" not in line]
    assert len(said) == 1 and "was interrupted" in said[0] and f"{program} was stopped by SIGINT" in said[0], \
        run.stderr
    for wrong in ("mkdump: error", "damaged", "free some space", "Traceback"):
        assert wrong not in run.stderr, run.stderr
    arch = proj / "build" / "x86_64"
    assert leftovers(arch) == []
    trees = {tree: (arch / tree).exists() for tree in made}
    assert not all(trees.values())
    assert trees == {tree: (arch / "stamps" / f"{name}.json").exists() for tree, name in made.items()}
    r = P.scons(proj, target, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all((arch / tree).is_dir() for tree in made)

