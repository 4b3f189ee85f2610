"""The build directory's lock (mkdump.buildlock) with a second process holding it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mkdump import buildlock
from mkdump.errors import MkdumpError

SITE_SCONS = str(Path(__file__).resolve().parents[1] / "site_scons")


def hold(build):
    """Another process that takes the lock of `build` and keeps it until killed."""
    code = ("import sys, time; from mkdump import buildlock; "
            "buildlock.acquire(sys.argv[1], wait=True, log=print); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(build)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=SITE_SCONS))
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_run_that_only_looks_does_not_wait_and_a_killed_holder_frees_the_lock(tmp_path):
    proc = hold(tmp_path)
    try:
        said = []
        assert buildlock.acquire(str(tmp_path), wait=False, log=said.append) is None
        assert said == [f"mkdump: another mkdump build in {tmp_path} (pid {proc.pid}) is going on: this answer is "
                        "about what it has done so far, and nothing was changed."]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fd = buildlock.acquire(str(tmp_path), wait=False, log=said.append)
    assert fd is not None and buildlock.holder(str(tmp_path)) == os.getpid()
    os.close(fd)


def test_a_writing_run_waits_and_says_for_whom(tmp_path):
    proc = hold(tmp_path)
    said = []
    start = time.monotonic()
    killer = subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {proc.pid}"])
    fd = buildlock.acquire(str(tmp_path), wait=True, log=said.append)
    assert time.monotonic() - start >= 0.9
    assert said == [f"mkdump: waiting for another mkdump build in {tmp_path} (pid {proc.pid}) to finish"]
    os.close(fd)
    killer.wait()
    proc.wait()


def test_a_lock_file_that_cannot_be_made(tmp_path):
    missing = str(tmp_path / "missing")
    assert buildlock.acquire(missing, wait=False, log=print) is None
    with pytest.raises(MkdumpError, match=r"^build=.*missing: the lock file .* cannot be made \(No such file"):
        buildlock.acquire(missing, wait=True, log=print)
