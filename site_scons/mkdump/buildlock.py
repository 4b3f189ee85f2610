"""One mkdump run at a time per build directory: an flock on <build>/.mkdump.lock, held until the process ends.

Two runs on one build directory would replace each other's trees under a running make. The kernel drops the lock
when its holder ends however it ends (kill -9 included), so a lock is never stale; the file itself stays (removing a
lock file races with a run about to take it) and holds the pid of the last run that took it, for the message.
"""
import fcntl
import os

from .errors import MkdumpError

LOCK_NAME = ".mkdump.lock"


def holder(build):
    """The pid the lock file names, or None."""
    try:
        with open(os.path.join(build, LOCK_NAME)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _running(build):
    pid = holder(build)
    return f"another mkdump build in {build}" + (f" (pid {pid})" if pid else "")


def acquire(build, *, wait, log, record=True):
    """Lock `build` for the rest of this process and return the lock's descriptor (keep it open).

    When another run holds the lock: with `wait`, say so once through `log` and wait for it; without, log that the
    other run is going on and return None, taking nothing. A lock file that cannot be made is an error only for a
    run that would write (`wait`); one that only looks goes on without the lock. Without `record` (scons -n, which
    writes nothing) the lock file is neither made nor given this run's pid.
    """
    path = os.path.join(build, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if record else 0) | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if not wait:
            return None
        raise MkdumpError(f"build={build}: the lock file {path} cannot be made ({e.strerror}); give a build "
                          "directory you can write.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                log(f"mkdump: {_running(build)} is going on: this answer is about what it has done so far, and "
                    "nothing was changed.")
                os.close(fd)
                return None
            log(f"mkdump: waiting for {_running(build)} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if record:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass    # a full disk: the lock holds all the same, only the message of a waiting run lacks the pid
    except BaseException:
        os.close(fd)
        raise
    return fd
