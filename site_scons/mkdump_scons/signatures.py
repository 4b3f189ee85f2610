"""SCons' signature database and decider as mkdump-build needs them, and the one sentence for a full disk."""
import os
import time
import types

import SCons.dblite

from mkdump.errors import NO_SPACE
from mkdump.logs import log_default


def _inside(path, directory):
    path, directory = os.path.abspath(path), os.path.abspath(directory)
    return os.path.commonpath([path, directory]) == directory


# Said once per run: after a stage reported the full disk, the signature database fails to be written too.
_SAID_NO_SPACE = []


def no_space(build, path, detail, elsewhere):
    """One sentence for a full disk: the build directory's when `path` is in it (`detail` says what failed), else
    `elsewhere` (a download cache, say)."""
    if _inside(path, build):
        message = f"the build directory {build} is full ({detail}); free some space there and run again."
    else:
        message = elsewhere
    if not _SAID_NO_SPACE:
        log_default(f"mkdump: error: {message}")
    _SAID_NO_SPACE.append(path)


# SCons 4.5 renamed the class (dblite -> _Dblite); Debian 12's scons is 4.4.0, which package builds use.
_DBLITE = getattr(SCons.dblite, "_Dblite", None) or SCons.dblite.dblite


class SignatureDatabase(_DBLITE):
    """SCons' signature database, written only by a run that holds the build directory's lock (a `scons -q` beside
    a running build would otherwise put back the signatures it read at its start over those of the build), and
    with a full disk reported in one sentence instead of SCons' traceback."""
    writes = True
    build = None

    def sync(self):
        if not self.writes:
            self._needs_sync = False
            return
        try:
            super().sync()
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            # SCons writes a temporary file and renames it over the database, so the database is as the last run
            # left it: the stages this run finished run again next time. Never try again (SCons would at exit).
            self._needs_sync = False
            if os.path.exists(self._tmp_name):
                os.unlink(self._tmp_name)
            what = f"{e.strerror} writing SCons' signature database {self._tmp_name}"
            no_space(self.build, self._tmp_name, what, f"{what}; free some space there and run again.")
            raise SystemExit(2) from None


# What env.SConsignFile takes as its database module.
DATABASE = types.ModuleType("mkdump_signature_db")
DATABASE.open = lambda file, flag="r", mode=0o666: SignatureDatabase(file, flag, mode)


def content_unless_old(dependency, target, prev_ni, repo_node=None):
    """SCons' content-timestamp, except that a file whose whole-second timestamp is the recorded one but which
    was written within the last few seconds has its content checked: SCons records timestamps in whole seconds, so
    a stamp or a user's file rewritten within the second of the last run (quick runs one after the other) looked
    unchanged and its dependents were skipped."""
    timestamp = dependency.get_timestamp()
    if timestamp != getattr(prev_ni, "timestamp", None) or time.time() - timestamp < RECENT_SECONDS:
        return dependency.changed_content(target, prev_ni, repo_node)
    return False


RECENT_SECONDS = 3
