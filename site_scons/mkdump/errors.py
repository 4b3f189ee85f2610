"""The one exception type for mistakes a user can fix."""
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
