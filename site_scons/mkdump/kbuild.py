"""Run Linux 2.6.9's kbuild: reproducibly, with its output in a log, and with readable failures.

Every make runs with V=1 so the log holds each full command; the user sees either one progress line per call
(verbose=False) or the whole stream (verbose=True). The environment pins what kbuild would otherwise take from
the machine and the clock (time, user, host, locale, time zone): with the repro-* compat patches applied, two
builds of one tree and config give identical images.
"""
import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path

from mkdump import runner
from mkdump.errors import NO_SPACE, Interrupted, MkdumpError, NoSpace
from mkdump.logs import log_default

# 2.6.9's release: the mtime of Makefile in linux-2.6.9.tar.bz2 (2004-10-14 23:00 UTC), a fixed and meaningful
# build date for every timestamp the build records when neither scons' command line nor the environment sets
# SOURCE_DATE_EPOCH.
DEFAULT_SOURCE_DATE_EPOCH = 1097794800
BUILD_USER = "mkdump"
BUILD_HOST = "mkdump"
# Inherited make settings (jobserver descriptors, -j, -k from an outer make) would change what this make does.
_DROPPED_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES", "GNUMAKEFLAGS", "KBUILD_OUTPUT")
# 2.6.9's conf loops forever re-asking a choice when stdin is at EOF, printing the question each time; an
# output this large is that loop, not a build.
MAX_OUTPUT_BYTES = 256 * 1024 * 1024
ERROR_CONTEXT_LINES = 2
MAX_ERROR_LINES = 30

_ERROR_RE = re.compile(
    r"error:|Error:|\bError \d+|\*\*\*|undefined reference|multiple definition|No rule to make target"
    r"|Unknown symbol|cannot find|not found|Segmentation fault|Killed")
_MAKE_FAILED_RE = re.compile(r"\*\*\* \[(?:[^\]:]*:\d+: )?([^\]]+)\] Error \d+")


class KbuildError(MkdumpError):
    """make failed; the message names the failing command, the compiler's errors and the full log."""

    def __init__(self, message, *, command, errors, log_path, returncode):
        super().__init__(message)
        self.command = command
        self.errors = errors
        self.log_path = log_path
        self.returncode = returncode


def build_timestamp(epoch):
    """`date`'s C-locale format in UTC, which is what 2.6.9 printed in uname -v."""
    return time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime(epoch))


def make_env(base=None, **extra):
    """The caller's environment (or `base`) without an outer make's state, plus `extra`: an outer make's MAKEFLAGS
    (a user's `make -n` around scons) would reach our makes and turn them into dry runs."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _DROPPED_ENV}
    env.update(extra)
    return env


def build_env(env_extra=None, base=None):
    """The environment for a kernel's make: make_env's, plus the pinned build identity."""
    env = make_env(base)
    # The caller's SOURCE_DATE_EPOCH (scons' command line) wins over the environment's, for the date too.
    epoch = int((env_extra or {}).get("SOURCE_DATE_EPOCH") or env.get("SOURCE_DATE_EPOCH")
                or DEFAULT_SOURCE_DATE_EPOCH)
    env.update({
        "LC_ALL": "C",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": str(epoch),
        "KBUILD_BUILD_TIMESTAMP": build_timestamp(epoch),
        "KBUILD_BUILD_USER": BUILD_USER,
        "KBUILD_BUILD_HOST": BUILD_HOST,
        # Read by the repro-mkcompile-h-identity patch instead of the .version link counter.
        "KBUILD_BUILD_VERSION": "1",
        # Read by the repro-kconfig-no-timestamp patch: no date in .config and include/linux/autoconf.h.
        "KCONFIG_NOTIMESTAMP": "1",
    })
    env.update(env_extra or {})
    return env


def prefix_maps(directory, name):
    """(old, new) pairs that make the compiler record `directory` as `name`: its real path, which is what
    make -C, $(CURDIR) and `pwd` hand the compiler, and the path as given when a symlink makes them differ."""
    given = os.path.abspath(directory)
    real = os.path.realpath(directory)
    return [(real, name)] + ([(given, name)] if given != real else [])


def out_of_tree_prefix_maps(src, obj):
    """(old, new) pairs that make a build of the source tree `src` in the object directory `obj` record every
    path as a build in the tree recorded it, so both give the same bytes: make's working directory is `obj` (named
    by its base name, as the tree was); make hands the compiler each source as `src`/path, which in the tree was
    the relative path (and ccache under CCACHE_BASEDIR hands it `src` relative to `obj`); and 2.6.9 reaches
    include/asm-<arch> through include2/asm, which in the tree was include/asm. gcc tries the last map first;
    `src` and `obj` must not contain each other."""
    maps = [("include2/", "include/"), (os.path.relpath(os.path.realpath(src), os.path.realpath(obj)) + "/", "")]
    maps += [(old + "/", "") for old, _ in prefix_maps(src, "")]
    return maps + prefix_maps(obj, os.path.basename(os.path.abspath(obj)))


def built_in_place(tree):
    """What a configuration or build in the kernel tree `tree` left there that makes 2.6.9 refuse to build it in
    an object directory (its .config and include/asm would win over the object directory's)."""
    return [n for n in (".config", "include/asm") if os.path.lexists(os.path.join(tree, n))]


def make_command(targets, *, toolchain, launcher=None, prefix_maps=(), srctree=None):
    """make's argv, without -j (run_make hands make its job slots). With `srctree` make runs in an object directory
    on that tree's Makefile, as 2.6.9's own `make O=` does once per goal: run from the source tree with O= and -j,
    `bzImage modules` became two makes building in one object directory at once (seen racing on
    scripts/basic/.fixdep.d), so the one make this command is gets all the goals."""
    argv = ["make"]
    argv += toolchain.make_args(launcher=launcher, prefix_maps=prefix_maps)
    argv.append("V=1")
    argv += out_of_tree_args(srctree)
    argv += list(targets)
    return argv


def job_slots(jobs, argv):
    """(the Jobserver make runs with, its argv, the command a person would type for it, quoted for a shell) for
    make `argv` and `jobs`: more than one job is taken from the process's jobserver, which every make of the run
    shares, so that stages running make at once stay within `jobs` together; one job is make -j1, None a make
    without -j."""
    if not jobs:
        return None, argv, shlex.join(argv)
    if int(jobs) == 1:
        argv = [argv[0], "-j1"] + argv[1:]
        return None, argv, shlex.join(argv)
    typed = shlex.join([argv[0], f"-j{int(jobs)}"] + argv[1:])
    return (runner.jobserver(int(jobs)), argv,
            f"{typed}  # -j{int(jobs)}: the slots of a jobserver all of this run's makes share")


def out_of_tree_args(srctree):
    """make's arguments that build the tree `srctree` in make's working directory (none for `srctree` None): its
    Makefile with KBUILD_SRC, what 2.6.9's `make O=` hands each goal's make."""
    if not srctree:
        return []
    srctree = os.path.abspath(srctree)
    return ["-f", os.path.join(srctree, "Makefile"), f"KBUILD_SRC={srctree}"]


def _failing_command(lines):
    """The full command of the first target make reported as failed, found in the V=1 log, or None."""
    target = None
    for line in lines:
        m = _MAKE_FAILED_RE.search(line)
        if m:
            target = m.group(1).strip()
            break
    if target is None:
        return None, None
    for line in reversed(lines):
        if ("-o " + target) in line or line.rstrip().endswith(" " + target):
            if not _ERROR_RE.search(line):
                return target, line.strip()
    return target, None


def extract_errors(lines, limit=MAX_ERROR_LINES):
    """The last error lines of a build log, each with the lines just before it (e.g. 'In function ...')."""
    keep = set()
    for i, line in enumerate(lines):
        if _ERROR_RE.search(line):
            keep.update(range(max(0, i - ERROR_CONTEXT_LINES), i + 1))
    picked = [lines[i].rstrip("\n") for i in sorted(keep)]
    return picked[-limit:]


# With V=1 every object kbuild compiles (C or assembler, built-in or module) is one command line with "-c -o X.o".
_COMPILE_RE = re.compile(r"\s-c\s+-o\s+\S+\.o\s")


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Objects compiled so far, elapsed time and, when the total is known, an estimate of the time left.

    On a terminal one line is redrawn in place (at most every `redraw` seconds), shared by every make running at
    once (scons -j: both kernels build together), each one's part after the other's; otherwise (CI, a log) a plain
    line goes to `log` every `interval` seconds, so a build of tens of minutes is never silent.
    """

    def __init__(self, label, total=None, *, log, stream=None, interval=30.0, redraw=0.5, clock=time.monotonic):
        self.label, self.total, self.log = label, total, log
        self.board = _board(stream) if stream is not None and stream.isatty() else None
        self.interval, self.redraw, self.clock = interval, redraw, clock
        self.start = self.shown = clock()
        self.done = 0
        if self.board is not None:
            self.board.add(self)

    def line(self):
        elapsed = self.clock() - self.start
        if self.total:
            shown_total = max(self.total, self.done)
            text = f"{self.label}: {self.done}/{shown_total} objects ({100 * self.done // shown_total}%), " \
                   f"{_clock(elapsed)} elapsed"
            if self.done:
                left = max(0.0, elapsed / self.done * (shown_total - self.done))
                text += f", about {_clock(left)} left"
            return text
        return f"{self.label}: {self.done} objects, {_clock(elapsed)} elapsed"

    def output(self, line):
        """Feed one line of make's output."""
        if _COMPILE_RE.search(line):
            self.done += 1
        now = self.clock()
        if self.board is not None:
            if now - self.shown >= self.redraw:
                self.shown = now
                self.board.draw()
        elif now - self.shown >= self.interval:
            self.shown = now
            self.log(self.line())

    def finish(self):
        if self.board is not None:
            self.board.remove(self)


class _Board:
    """The one status line of a terminal: the lines of the Progress objects running, joined."""

    def __init__(self, stream):
        self.stream, self.running, self.drawn = stream, [], False
        self.lock = threading.Lock()

    def add(self, progress):
        with self.lock:
            self.running.append(progress)

    def draw(self):
        with self.lock:
            self._draw()

    def remove(self, progress):
        with self.lock:
            self.running.remove(progress)
            if self.running:
                self._draw()
            elif self.drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.drawn = False

    def _draw(self):
        text = " | ".join(p.line() for p in self.running)
        self.stream.write("\r" + text[:200] + "\x1b[K")
        self.stream.flush()
        self.drawn = True


_boards = {}
_boards_lock = threading.Lock()


def _board(stream):
    with _boards_lock:
        board = _boards.get(id(stream))
        if board is None or board.stream is not stream:
            board = _boards[id(stream)] = _Board(stream)
        return board


def run_make(tree, targets, *, toolchain, jobs=None, launcher=None, verbose=False, log_path, env_extra=None,
             log=None, expected_objects=None, progress_stream=None, obj=None, label=None):
    """Run make `targets` in the kernel tree `tree` with `toolchain`; full output goes to `log_path`.

    launcher (e.g. "ccache") is put in front of the kernel compiler. The tree is recorded in the outputs as its
    own base name (e.g. `minik`), whatever directory it is in.

    obj: build in this object directory (made when missing) instead of the tree, which make then never writes;
    the outputs record paths as a build in a tree named like `obj` would (out_of_tree_prefix_maps). The tree
    must never have been configured or built in place: 2.6.9 refuses it then.

    verbose=False: a progress line (`label`, default the make command; objects compiled, of `expected_objects`
    when known, elapsed time, the time left) redrawn on `progress_stream` when it is a terminal, else through `log`
    every 30 s; verbose=True: every output line instead. Returns the number of objects compiled. Raises KbuildError
    (a MkdumpError) when make fails, naming the failing command, the last errors and the log.
    """
    log = log or log_default
    tree = Path(tree)
    log_path = Path(log_path)
    if not (tree / "Makefile").is_file():
        raise MkdumpError(f"{tree} is not a kernel tree (no Makefile); unpack and patch the sources first.")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if obj is None:
        argv = make_command(targets, toolchain=toolchain, launcher=launcher,
                            prefix_maps=prefix_maps(tree, os.path.basename(os.path.abspath(tree))))
        where = tree
    else:
        built_here = built_in_place(tree)
        if built_here:
            raise MkdumpError(f"The kernel tree {tree} was configured or built in place (it has "
                              f"{' and '.join(built_here)}), so it cannot be built in {obj}; patch it again "
                              f"(`scons patch`) to get a clean tree.")
        where = Path(obj)
        where.mkdir(parents=True, exist_ok=True)
        argv = make_command(targets, toolchain=toolchain, launcher=launcher,
                            prefix_maps=out_of_tree_prefix_maps(tree, where), srctree=os.path.abspath(tree))
    env = build_env(env_extra)
    if obj is not None and "CCACHE_BASEDIR" not in env:
        # The sources are named by absolute path in an object directory; ccache then names them relative to it, as
        # the same compile in another build directory does, so that one's cache entries serve the other.
        env["CCACHE_BASEDIR"] = os.path.commonpath([os.path.realpath(tree), os.path.realpath(where)])
    log(f"make {' '.join(targets)} [{toolchain.arch}{f', -j{jobs}' if jobs else ''}] in {where} (log: {log_path})")

    progress = Progress(label or f"make {' '.join(targets)}", expected_objects, log=log,
                        stream=sys.stderr if progress_stream is None else progress_stream)
    slots, argv, header = job_slots(jobs, argv)
    try:
        result = runner.run(argv, cwd=where, env=env, log_path=log_path, log_header=f"# cd {where} && {header}",
                            max_output=MAX_OUTPUT_BYTES, echo=log if verbose else None,
                            watch=None if verbose else progress.output, jobs=slots)
    finally:
        progress.finish()
    lines = result.lines

    if result.stopped == "interrupt":
        raise Interrupted(f"make {' '.join(targets)} in {where} was interrupted (make was stopped by "
                          f"{result.interrupted_by}); run again to go on from where it stopped.")
    if result.stopped == "output":
        raise KbuildError(
            f"make {' '.join(targets)} in {where} printed more than {MAX_OUTPUT_BYTES >> 20} MB and was stopped "
            f"(2.6.9's conf repeats a question forever when stdin is empty: set every choice in the .config "
            f"before oldconfig); see {log_path}.",
            command=argv, errors=extract_errors(lines[-50:]), log_path=log_path, returncode=result.returncode)
    if result.returncode != 0:
        # The compiler's words for a full disk (make runs in the C locale): no fault of the sources.
        for reason in (os.strerror(e) for e in NO_SPACE):
            if any(reason in line for line in lines[-50:]):
                raise NoSpace(f"make {' '.join(targets)} in {where} (log: {log_path})", str(where), reason)
        target, failing = _failing_command(lines)
        errors = extract_errors(lines)
        parts = [f"make {' '.join(targets)} failed in {where} (exit {result.returncode})"
                 + (f" building {target}" if target else "") + "."]
        if failing:
            parts.append("Failing command: " + failing)
        if errors:
            parts.append("Last errors:\n  " + "\n  ".join(errors))
        parts.append(f"Fix the cause above and run again; full log: {log_path}")
        raise KbuildError("\n".join(parts), command=argv, errors=errors, log_path=log_path,
                          returncode=result.returncode)
    return progress.done


def kernel_release(tree, obj=None):
    """The kernel release string: UTS_RELEASE from include/linux/version.h once kbuild has written it (in the
    object directory `obj` when the tree is built in one), else VERSION.PATCHLEVEL.SUBLEVEL+EXTRAVERSION from the
    tree's top Makefile (without localversion parts)."""
    tree = Path(tree)
    version_h = Path(obj or tree) / "include" / "linux" / "version.h"
    if version_h.is_file():
        m = re.search(r'#define\s+UTS_RELEASE\s+"([^"]*)"', version_h.read_text(encoding="latin-1"))
        if m:
            return m.group(1)
    try:
        text = (tree / "Makefile").read_text(encoding="latin-1")
    except FileNotFoundError:
        raise MkdumpError(f"{tree} has no Makefile, so its kernel release is unknown; unpack the sources first.")
    fields = {}
    for name in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{name}\s*=[ \t]*(\S*)[ \t]*$", text, re.MULTILINE)
        fields[name] = m.group(1) if m else None
    if not all(fields[n] for n in ("VERSION", "PATCHLEVEL", "SUBLEVEL")):
        raise MkdumpError(f"{tree / 'Makefile'} does not define VERSION, PATCHLEVEL and SUBLEVEL; "
                          f"is it a Linux tree?")
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}{fields['EXTRAVERSION'] or ''}"
