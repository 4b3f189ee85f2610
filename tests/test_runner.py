"""mkdump.runner: the one way make runs (log, time limit, output cap, Ctrl-C)."""
import os
import signal
import subprocess
import threading
import time

import pytest

from mkdump import runner
from mkdump.errors import MkdumpError
from support.procgroup import gone_within


def sh(script):
    return ["sh", "-c", script]


def wait_for_start(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def test_output_goes_to_the_log_the_caller_and_the_result(tmp_path):
    echoed, watched = [], []
    log = tmp_path / "make.log"
    r = runner.run(sh("echo one; echo two >&2; printf three; exit 3"), cwd=tmp_path, log_path=log,
                   log_header="$ the command", echo=echoed.append, watch=watched.append)
    assert r.returncode == 3 and r.stopped is None and r.interrupted is None
    assert r.lines == ["one\n", "two\n", "three"]
    assert echoed == ["one", "two", "three"] and watched == r.lines
    assert r.output_bytes == len("one\ntwo\nthree")
    assert log.read_text() == "$ the command\none\ntwo\nthree"


def test_only_the_last_lines_are_kept_in_memory(tmp_path):
    r = runner.run(sh("seq 1 100"), cwd=tmp_path, keep_lines=5)
    assert r.returncode == 0 and r.lines == [f"{n}\n" for n in range(96, 101)]


def test_environment_and_working_directory_are_the_callers(tmp_path):
    r = runner.run(sh('echo "$WHO" "$(pwd)"'), cwd=tmp_path, env={"WHO": "me", "PATH": os.environ["PATH"]})
    assert r.lines == [f"me {tmp_path}\n"]


def test_a_missing_program_is_one_sentence(tmp_path):
    with pytest.raises(MkdumpError, match="cannot run no-such-make: it is not installed or not on PATH"):
        runner.run(["no-such-make"], cwd=tmp_path)


def test_a_hanging_command_is_stopped_with_what_it_started(tmp_path):
    started = time.monotonic()
    r = runner.run(sh("sleep 300 & echo $$; wait"), cwd=tmp_path, timeout=1)
    assert r.stopped == "timeout" and r.returncode < 0
    assert time.monotonic() - started < 30
    assert gone_within(int(r.lines[0]), 5)


def test_endless_output_is_stopped(tmp_path):
    log = tmp_path / "make.log"
    r = runner.run(sh("echo $$; while :; do echo 'choice[1-4?]: '; done"), cwd=tmp_path, max_output=100_000,
                   log_path=log)
    assert r.stopped == "output" and r.output_bytes > 100_000
    assert log.stat().st_size < 1_000_000
    assert gone_within(int(log.read_text().splitlines()[0]), 5)


def test_make_stopped_for_endless_output_is_not_left_writing_to_a_full_pipe(tmp_path):
    """make says its last words when SIGTERM stops it: nobody reads them any more, so they must not block it."""
    (tmp_path / "Makefile").write_text("all:\n\t@yes 'PCI access mode (BIOS, Direct, Any) [1-3]: '\n")
    started = time.monotonic()
    r = runner.run(["make", "-s"], cwd=tmp_path, max_output=1 << 20)
    assert r.stopped == "output" and r.returncode < 0
    assert time.monotonic() - started < runner.KILL_GRACE


def test_a_group_that_ignores_sigterm_gets_sigkill(tmp_path):
    proc = subprocess.Popen(sh("trap '' TERM; sleep 300 & wait"), start_new_session=True)
    time.sleep(0.3)
    started = time.monotonic()
    runner.kill_group(proc, grace=0.5)
    assert time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL
    assert gone_within(proc.pid, 5)


@pytest.fixture
def scons_like_handler():
    """A SIGINT handler like SCons' while it builds: it records the signal and returns (no exception)."""
    got = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    yield got
    signal.signal(signal.SIGINT, previous)


def interrupt_when_started(pidfile, sig=signal.SIGINT):
    def later():
        wait_for_start(pidfile)
        os.kill(os.getpid(), sig)
    t = threading.Thread(target=later)
    t.start()
    return t


def test_ctrl_c_stops_the_command_at_once_and_the_previous_handler_still_runs(tmp_path, scons_like_handler):
    pidfile = tmp_path / "pid"
    t = interrupt_when_started(pidfile)
    started = time.monotonic()
    r = runner.run(sh(f"echo $$ > {pidfile}; sleep 300 & wait"), cwd=tmp_path)
    t.join()
    assert time.monotonic() - started < 30
    assert r.stopped == "interrupt" and r.interrupted == signal.SIGINT and r.interrupted_by == "SIGINT"
    assert scons_like_handler == [signal.SIGINT]
    assert gone_within(int(pidfile.read_text()), 5)


def test_ctrl_c_stops_a_command_run_in_a_worker_thread(tmp_path, scons_like_handler):
    """scons -j2 runs actions in worker threads; its handler (and the signal) reach the main thread only."""
    assert runner.watch_signals()
    pidfile = tmp_path / "pid"
    results = []
    worker = threading.Thread(target=lambda: results.append(
        runner.run(sh(f"echo $$ > {pidfile}; sleep 300 & wait"), cwd=tmp_path)))
    worker.start()
    wait_for_start(pidfile)
    os.kill(os.getpid(), signal.SIGINT)
    worker.join(30)
    assert not worker.is_alive()
    assert results[0].stopped == "interrupt" and results[0].interrupted_by == "SIGINT"
    assert scons_like_handler == [signal.SIGINT]
    assert gone_within(int(pidfile.read_text()), 5)


def test_a_signal_from_before_the_command_is_not_for_it(tmp_path, scons_like_handler):
    assert runner.watch_signals()
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)
    assert scons_like_handler == [signal.SIGINT]
    r = runner.run(sh("sleep 0.3; echo done"), cwd=tmp_path)
    assert r.stopped is None and r.returncode == 0 and r.lines == ["done\n"]


def test_keyboard_interrupt_stops_the_command_and_goes_on(tmp_path):
    """Outside SCons, Python's own SIGINT handler raises KeyboardInterrupt: the command must not outlive it."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    pidfile = tmp_path / "pid"
    t = interrupt_when_started(pidfile)
    with pytest.raises(KeyboardInterrupt):
        runner.run(sh(f"echo $$ > {pidfile}; sleep 300 & wait"), cwd=tmp_path)
    t.join()
    assert gone_within(int(pidfile.read_text()), 5)


JOBS_MAKEFILE = """\
all: a b c d
a b c d:
\t@echo "start $$(date +%s.%N)" >> ../events; sleep 0.3; echo "end $$(date +%s.%N)" >> ../events
"""


def _most_at_once(events_path):
    events = sorted((float(t), 1 if kind == "start" else -1)
                    for kind, t in (line.split() for line in events_path.read_text().splitlines()))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("slots", [1, 2])
def test_makes_running_at_once_share_the_jobservers_slots(tmp_path, slots):
    """Two makes of four jobs each, started together, never run more jobs in all than the jobserver has slots
    (with one, the second make waits on the pipe the first has made non-blocking)."""
    jobs = runner.Jobserver(slots)
    dirs = [tmp_path / n for n in ("one", "two")]
    results = []
    for d in dirs:
        d.mkdir()
        (d / "Makefile").write_text(JOBS_MAKEFILE)
    threads = [threading.Thread(target=lambda d=d: results.append(runner.run(["make"], cwd=d, jobs=jobs)))
               for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.returncode for r in results] == [0, 0], [r.lines for r in results]
    assert len((tmp_path / "events").read_text().splitlines()) == 16
    assert _most_at_once(tmp_path / "events") == slots


def test_slots_a_killed_make_took_with_it_are_given_back_once_no_make_runs(tmp_path):
    jobs = runner.Jobserver(2)
    os.read(jobs.read_fd, 2)     # what a make killed while two jobs ran leaves: an empty pipe
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "Makefile").write_text(JOBS_MAKEFILE)
    done = []
    t = threading.Thread(target=lambda: done.append(runner.run(["make"], cwd=tmp_path / "one", jobs=jobs)))
    t.start()
    t.join(30)
    assert done and done[0].returncode == 0
    assert _most_at_once(tmp_path / "events") == 2
