"""The one exception type for mistakes a user can fix."""


class MkdumpError(Exception):
    """A user-facing error.

    str(err) is one sentence that names the input at fault and says what to do; the SCons layer prints it
    without a traceback.
    """


class ConfigError(MkdumpError):
    """A configuration that cannot be made as asked, or breaks a rule; the message explains each problem."""
