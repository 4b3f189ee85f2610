"""The one way a stage runs make (and the tools like it): argument list, working directory, environment, a log
file, a time limit, an output cap, each line echoed or watched, and Ctrl-C. Callers keep their own words: this
module says what happened (`Result`), never to the user.

The command runs in a session of its own, so everything it starts (make's shells, the compiler, conf) is one
process group that is stopped whole: SIGTERM, then SIGKILL for what is left when the command itself has not ended
within KILL_GRACE seconds.

Ctrl-C. A terminal sends SIGINT to scons' process group, which the command's session is not part of, and
`kill <scons>` reaches scons alone. While SCons builds it handles SIGINT, SIGTERM and SIGHUP itself
(SCons/Taskmaster/Job.py, `Jobs._setup_sig_handler`): the handler, which Python always runs in the main thread,
stops the taskmaster and waits for the running actions to finish; with -j2 and more those run in worker threads,
where no handler can be installed. So nothing here replaces SCons' handler. `watch_signals` (called by `run` in the
main thread, or once by whoever sets up the run) asks Python to also write the number of every signal that has a
Python handler to a pipe (`signal.set_wakeup_fd`, which SCons leaves alone), and `run` watches that pipe beside the
command's output: on SIGINT, SIGTERM or SIGHUP every running command's group is stopped at once and `run` returns
with `interrupted` set. SCons' handler still runs as before, so the build stops after the stage and says so.
"""
import collections
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from mkdump.errors import MkdumpError, signal_name

# make passes SIGTERM on to the job it runs and deletes its half-made target: time for that, then SIGKILL.
KILL_GRACE = 10.0
# Lines of output kept in memory for the caller's failure message (the log file has all of them).
KEEP_LINES = 4000
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Result:
    argv: list
    returncode: int             # negative: the command died by that signal
    lines: list                 # its last output lines (str, with their newlines), at most keep_lines
    output_bytes: int           # how much it printed in all
    stopped: str = None         # why run() stopped it: "timeout", "output" (more than max_output), "interrupt"
    interrupted: int = None     # with "interrupt": the signal this process got

    @property
    def interrupted_by(self):
        """'SIGINT' and the like: the signal that made run() stop the command."""
        return signal_name(-self.interrupted) if self.interrupted else None


class _Running:
    def __init__(self, proc):
        self.proc = proc
        self.interrupted = None


_lock = threading.Lock()
_running = set()        # the _Running of every command between start and end, in any thread
_wakeup = None          # read end of the pipe signal.set_wakeup_fd writes to, once watch_signals took it


def watch_signals():
    """Have Ctrl-C (SIGINT, SIGTERM, SIGHUP) stop running commands at once; True when it does.

    Must be called in the main thread (Python's rule for signal settings); `run` calls it when it runs there.
    Leaves the signal handlers as they are, and a wakeup descriptor someone else set (asyncio's) in place.
    """
    global _wakeup
    if _wakeup is not None:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:
        os.close(r)
        os.close(w)
        return False
    if previous != -1:
        signal.set_wakeup_fd(previous)
        os.close(r)
        os.close(w)
        return False
    _wakeup = r
    return True


def _dispatch():
    """Read the signals the wakeup pipe holds; on an interrupting one, stop every running command. Under _lock."""
    while True:
        try:
            data = os.read(_wakeup, 512)
        except BlockingIOError:
            return
        if not data:
            return
        sig = next((s for s in data if s in INTERRUPTS), None)
        if sig is not None:
            for running in _running:
                if running.interrupted is None:
                    running.interrupted = sig
                    _signal_group(running.proc, signal.SIGTERM)


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc, grace=KILL_GRACE):
    """Stop a process started with start_new_session=True and everything it started: SIGTERM to the group, then,
    once the process has ended or after `grace` seconds, SIGKILL to whatever of the group is left."""
    if proc.returncode is not None:
        return      # reaped already: its number may be another process group's by now
    _signal_group(proc, signal.SIGTERM)
    # Wait without reaping: while the process is a zombie its number stays its group's, so the SIGKILL cannot
    # reach a group that was given the number since.
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


class Jobserver:
    """GNU make's jobserver, one pipe with a byte per job slot, shared by every make a process runs: with scons -j
    several stages run make at once (both kernels' config and build, mkexec beside the mini kernel), and jobs=N
    bounds them all together, as one make -jN bounds its sub-makes.

    `run` takes a slot for each make it starts and gives it back when the make has ended; the make runs its first
    job in that slot and takes a byte from the pipe for each further one (MAKEFLAGS' --jobserver-auth). A make
    killed while its jobs held bytes loses them, so when no make is running the pipe is filled up again.
    """

    def __init__(self, jobs):
        self.jobs = jobs
        self.read_fd, self.write_fd = os.pipe()
        self._lock = threading.Lock()
        self._running = 0
        os.write(self.write_fd, b"+" * jobs)

    @property
    def makeflags(self):
        return f"-j{self.jobs} --jobserver-auth={self.read_fd},{self.write_fd}"

    def acquire(self):
        with self._lock:
            if self._running == 0:
                self._refill()
            self._running += 1
        try:
            # Waits while every slot is busy, as a make waiting for a job slot does. make sets the pipe non-blocking
            # (for everyone: the flag belongs to the pipe), so a slot another waiter took first is no error.
            with selectors.DefaultSelector() as sel:
                sel.register(self.read_fd, selectors.EVENT_READ)
                while not self._take():
                    sel.select()
        except BaseException:
            with self._lock:
                self._running -= 1
            raise

    def release(self):
        os.write(self.write_fd, b"+")
        with self._lock:
            self._running -= 1

    def _take(self):
        try:
            return bool(os.read(self.read_fd, 1))
        except BlockingIOError:
            return False

    def _refill(self):
        with selectors.DefaultSelector() as sel:
            sel.register(self.read_fd, selectors.EVENT_READ)
            while sel.select(0) and self._take():
                pass
        os.write(self.write_fd, b"+" * self.jobs)


_jobservers = {}


def jobserver(jobs):
    """This process's jobserver for `jobs` slots (one per count: a test may ask for several)."""
    with _lock:
        if jobs not in _jobservers:
            _jobservers[jobs] = Jobserver(jobs)
        return _jobservers[jobs]


def run(argv, *, cwd, env=None, log_path=None, log_header=None, timeout=None, max_output=None, echo=None,
        watch=None, keep_lines=KEEP_LINES, jobs=None):
    """Run `argv` in `cwd` with `env`, stdin at EOF, stdout and stderr together; return a Result.

    log_path: the whole output goes there, after the line `log_header`. timeout: seconds before the command is
    stopped (stopped="timeout"); max_output: bytes of output after which it is stopped (stopped="output"), for a
    program that repeats a question forever. echo(line) gets every line without its newline (a verbose run),
    watch(line) every line as it is (progress, a scan). Ctrl-C stops it too (stopped="interrupt", see the module
    docstring); an exception (KeyboardInterrupt included) stops it before it propagates. Raises MkdumpError when
    argv[0] cannot be found. jobs: the Jobserver a make (`argv`) shares; it then waits for a free slot first.
    """
    watch_signals()
    argv = [os.fspath(a) for a in argv]
    if jobs is None:
        return _run(argv, cwd, env, log_path, log_header, timeout, max_output, echo, watch, keep_lines, ())
    env = dict(os.environ if env is None else env, MAKEFLAGS=jobs.makeflags)
    jobs.acquire()
    try:
        return _run(argv, cwd, env, log_path, log_header, timeout, max_output, echo, watch, keep_lines,
                    (jobs.read_fd, jobs.write_fd))
    finally:
        jobs.release()


def _run(argv, cwd, env, log_path, log_header, timeout, max_output, echo, watch, keep_lines, pass_fds):
    logf = open(log_path, "w", encoding="utf-8", errors="replace") if log_path is not None else None
    proc = running = None
    try:
        if logf is not None and log_header is not None:
            logf.write(log_header + "\n")
            logf.flush()
        with _lock:
            if _wakeup is not None:
                _dispatch()     # signals from before this command are not for it
            try:
                proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True, pass_fds=pass_fds)
            except FileNotFoundError:
                raise MkdumpError(f"cannot run {argv[0]}: it is not installed or not on PATH; install it.") \
                    from None
            running = _Running(proc)
            _running.add(running)
        returncode, lines, total, stopped = _follow(proc, running, logf, timeout, max_output, echo, watch,
                                                    keep_lines)
    except BaseException:
        if proc is not None:
            kill_group(proc)
        raise
    finally:
        if running is not None:
            with _lock:
                _running.discard(running)
        if proc is not None:
            proc.stdout.close()
        if logf is not None:
            logf.close()
    return Result(argv, returncode, lines, total, stopped, running.interrupted if stopped == "interrupt" else None)


def _follow(proc, running, logf, timeout, max_output, echo, watch, keep_lines):
    deadline = None if timeout is None else time.monotonic() + timeout
    lines = collections.deque(maxlen=keep_lines)
    total, pending, stopped = 0, b"", None

    def take(raw):
        line = raw.decode("utf-8", errors="replace")
        if logf is not None:
            logf.write(line)
        lines.append(line)
        if echo is not None:
            echo(line.rstrip("\n"))
        if watch is not None:
            watch(line)

    out = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(out, selectors.EVENT_READ, "out")
        if _wakeup is not None:
            sel.register(_wakeup, selectors.EVENT_READ, "signal")
        while stopped is None:
            events = sel.select(None if deadline is None else max(deadline - time.monotonic(), 0))
            if not events:
                stopped = "timeout"
                break
            chunk = None
            for key, _ in events:
                if key.data == "signal":
                    with _lock:
                        _dispatch()
                else:
                    chunk = os.read(out, 65536)
            if running.interrupted is not None:
                stopped = "interrupt"
                break
            if chunk is None:
                continue
            if not chunk:
                break
            total += len(chunk)
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                take(raw + b"\n")
            if max_output is not None and total > max_output:
                stopped = "output"
        if pending and stopped is None:
            take(pending)
    if stopped is None:
        try:
            proc.wait(timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            stopped = "timeout"
    if stopped is not None:
        # Nobody reads the output from here on: a full pipe would block make's last words (and make) until SIGKILL.
        proc.stdout.close()
        kill_group(proc)
    if logf is not None:
        logf.flush()
    return proc.returncode, list(lines), total, stopped
