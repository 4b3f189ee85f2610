"""The one exception type for mistakes a user can fix."""
import errno
import os
import signal


class MkdumpError(Exception):
    """A user-facing error.

    str(err) is one sentence that names the input at fault and says what to do; the SCons layer prints it
    without a traceback.
    """


class ConfigError(MkdumpError):
    """A configuration that cannot be made as asked, or breaks a rule; the message explains each problem."""


class Interrupted(MkdumpError):
    """The work was stopped from outside (Ctrl-C reaches the tools a stage runs too): no verdict on any input, and
    nothing half-made was kept."""


def signal_name(returncode):
    """The name of the signal that killed a subprocess with this (negative) return code."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


# A full disk, or a full quota: what the user must free space for.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpace(MkdumpError):
    """The disk filled up (`reason`, the system's words) while `what` wrote under `path`: the machine is at fault,
    so no input is judged. The SCons tool names the build directory instead when `path` is inside it."""

    def __init__(self, what, path, reason):
        super().__init__(f"{what} failed ({reason}); free some space in {os.path.dirname(path)} and run again.")
        self.what = what
        self.path = path
        self.reason = reason
