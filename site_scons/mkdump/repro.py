"""`scons repro`: build the same inputs twice, under conditions that differ wherever a build could leak the
machine into its outputs, and compare every published file.

Each build is a separate `scons` process on the same SConstruct with the user's own options, except build= (a
fresh directory per build, <build>/repro/a and <build>/repro/b) and the variations below. What differs between
the two (`plan`): the build directory, the environment (TZ, locale, USER/LOGNAME/HOME, HOSTNAME), the umask
(022 vs 077), make's parallelism (1 vs N), the time of day (b runs after a), and, when running as root and the
tools work, the real host name (a new UTS namespace) and the real uid (setpriv to `nobody`). Each variation that
cannot be applied is reported with the reason. SOURCE_DATE_EPOCH is left as the user set it in both builds.

The core (plan, argument and environment construction, running one build, comparing two out/ trees, the
report) is plain Python; `run` strings it together for the SCons alias.
"""
import os
import pwd
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .layout import Layout
from . import stamp
from .errors import MkdumpError
from .logs import log_default
from .runner import kill_group

REPRO_DIR = "repro"
OTHER_USER = "nobody"
UMASKS = (0o022, 0o077)
# Variables each build sets its own way or goes without; every LC_* is removed too, so that only these decide the
# locale. A compiler cache shared by a and b would hand b a's objects and hide a compiler's nondeterminism: each
# build's launcher cache lives under its own HOME.
VARIED_ENV = ("TZ", "LANG", "LANGUAGE", "LC_ALL", "USER", "LOGNAME", "HOME", "HOSTNAME",
              "XDG_CACHE_HOME", "CCACHE_DIR", "SCCACHE_DIR")
# POSIX TZ strings with odd offsets on opposite sides of UTC; they need no tzdata.
TIME_ZONES = ("NST+3:30", "NPT-5:45")
HOSTNAMES = ("builder-a.repro.invalid", "other-host-b.example")
USERS = ("mkdump-a", "someone-else")
# Run by `unshare --uts` as root in the new namespace: set the host name, then become the build command. The
# name and the command are arguments, never part of the program text.
SET_HOSTNAME = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
# Run as the other user before its build: can it read the project and run scons? Paths are arguments.
PROBE_READ = """import os, sys
import SCons
for path in sys.argv[1:]:
    if os.path.isdir(path):
        for d, _, files in os.walk(path, onerror=lambda e: sys.exit(f"{e.filename}: {e.strerror}")):
            for f in files:
                open(os.path.join(d, f), "rb").close()
    else:
        open(path, "rb").close()
"""
HEARTBEAT_SECONDS = 60
DIFFOSCOPE_TIMEOUT = 900
# A diffoscope text report of two unrelated multi-megabyte images can be hundreds of MB; the start says enough.
DIFFOSCOPE_MAX_TEXT = 20 * 1024 * 1024
# Options that belong to the outer run only, or that each inner build gets in its own form. cache_dir= would let
# b retrieve a's artifacts instead of building them.
OUTER_ONLY = ("build", "jobs", "keep", "cache", "cache_dir", "DESTDIR")
# What scons reads of the project; the other user must be able to read all of it.
PROJECT_PATHS = ("SConstruct", "site_scons", "patches", "configs", "kernel")


# ---------------------------------------------------------------- the two sets of conditions

@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Condition:
    name: str               # "a" or "b"
    env: dict               # the VARIED_ENV values of this build
    umask: int
    jobs: int
    hostname: str = None    # set in a new UTS namespace; None: the machine's own
    user: User = None       # run as this user; None: the invoking user


@dataclass(frozen=True)
class Variation:
    name: str
    applied: bool
    detail: str             # what differs, or why it was not applied

    def line(self):
        return f"{'varied' if self.applied else 'SKIPPED'}  {self.name}: {self.detail}"


def pick_locales(available):
    """Two locales that exist here, the second as unlike C as possible (a missing locale silently means C)."""
    names = {a.lower().replace("-", ""): a for a in available}
    first = names.get("c.utf8", "C")
    others = sorted(a for k, a in names.items() if k not in ("c", "posix", "c.utf8"))
    second = next((a for a in others if a.lower().startswith(("de_", "fr_", "tr_"))), None) or \
        (others[0] if others else ("POSIX" if first != "POSIX" else "C"))
    return first, second


def plan(*, root, uts_error, user, user_error, locales, jobs, homes, machine_hostname):
    """The conditions of builds a and b and the list of variations (applied or skipped, with the reason).

    uts_error / user_error: None when the probe for a new host name / the other user succeeded, else why not
    (ignored when not root). user: the User to run b as, or None when there is none. homes: the two HOME dirs.
    """
    loc = pick_locales(locales)
    env = [{"TZ": TIME_ZONES[i], "LANG": loc[i], "LC_ALL": loc[i], "LANGUAGE": "", "USER": USERS[i],
            "LOGNAME": USERS[i], "HOME": homes[i], "HOSTNAME": HOSTNAMES[i]} for i in (0, 1)]
    n = max(2, jobs)
    variations = [
        Variation("build directory", True, "<build>/repro/a vs <build>/repro/b"),
        Variation("environment", True, f"TZ={TIME_ZONES[0]} vs {TIME_ZONES[1]}, LANG/LC_ALL={loc[0]} vs {loc[1]}, "
                                       f"USER/LOGNAME={USERS[0]} vs {USERS[1]}, HOME and HOSTNAME differ"),
        Variation("umask", True, f"{UMASKS[0]:03o} vs {UMASKS[1]:03o}"),
        Variation("jobs", True, f"jobs=1 vs jobs={n}"),
        Variation("time", True, "b runs after a finishes (the clock itself is not faked)"),
    ]
    hostname = None
    if not root:
        variations.append(Variation("host name", False, "changing the real host name needs root (unshare --uts)"))
    elif uts_error:
        variations.append(Variation("host name", False, f"unshare --uts does not work here ({uts_error})"))
    else:
        hostname = HOSTNAMES[1] if machine_hostname != HOSTNAMES[1] else HOSTNAMES[0]
        variations.append(Variation("host name", True,
                                    f"{machine_hostname} vs {hostname} (b in its own UTS namespace)"))
    run_as = None
    if not root:
        variations.append(Variation("user", False, "running b as another user needs root (setpriv)"))
    elif user is None:
        variations.append(Variation("user", False, f"there is no user {OTHER_USER!r} on this machine"))
    elif user_error:
        variations.append(Variation("user", False, f"{user.name} cannot use this project: {user_error}"))
    else:
        run_as = user
        variations.append(Variation("user", True, f"uid {os.getuid()} vs {user.uid} ({user.name}); b gets its "
                                                  "own download cache seeded with a's verified files, offline=1"))
    a = Condition("a", env[0], UMASKS[0], 1)
    b = Condition("b", env[1], UMASKS[1], n, hostname=hostname, user=run_as)
    return a, b, variations


# ---------------------------------------------------------------- one build

def scons_args(arglist, overrides):
    """The user's VARIABLE=VALUE arguments in their order, minus those the outer run owns, plus `overrides`."""
    drop = set(OUTER_ONLY) | set(overrides)
    kept = [f"{k}={v}" for k, v in arglist if k not in drop]
    return kept + [f"{k}={v}" for k, v in overrides.items()]


def build_environ(base, cond):
    env = {k: v for k, v in base.items() if k not in VARIED_ENV and not k.startswith("LC_")}
    env.update(cond.env)
    return env


def launch_argv(cond, argv, python=sys.executable):
    prefix = []
    if cond.hostname:
        prefix += ["unshare", "--uts", "--", python, "-c", SET_HOSTNAME, cond.hostname]
    if cond.user:
        prefix += ["setpriv", f"--reuid={cond.user.uid}", f"--regid={cond.user.gid}", "--clear-groups", "--"]
    return prefix + list(argv)


def run_build(cond, argv, *, base_env, cwd, log_path, log=log_default, python=sys.executable,
              heartbeat=HEARTBEAT_SECONDS):
    """Run one build under `cond`; its output goes to `log_path` and, line by line, to `log` (prefixed with the
    build's name), with a line every `heartbeat` seconds of silence. Returns the exit status."""
    full = launch_argv(cond, argv, python)
    start = time.monotonic()
    with open(log_path, "wb") as logf:
        logf.write(("# " + " ".join(full) + "\n").encode())
        logf.flush()
        proc = subprocess.Popen(full, cwd=cwd, env=build_environ(base_env, cond), umask=cond.umask,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            pending = b""
            quiet_since = start
            while True:
                if not sel.select(timeout=heartbeat):
                    now = time.monotonic()
                    if now - quiet_since >= heartbeat:
                        log(f"repro {cond.name}: still building ({_duration(now - start)} so far)")
                        quiet_since = now
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                logf.write(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log(f"repro {cond.name}: {line.decode('utf-8', 'replace')}")
                quiet_since = time.monotonic()
            if pending:
                log(f"repro {cond.name}: {pending.decode('utf-8', 'replace')}")
            sel.close()
            proc.wait()
        except BaseException:
            kill_group(proc)
            raise
        finally:
            proc.stdout.close()
    log(f"repro {cond.name}: finished with exit status {proc.returncode} after {_duration(time.monotonic() - start)}")
    return proc.returncode


def _duration(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


# ---------------------------------------------------------------- comparing two out/ trees

@dataclass(frozen=True)
class FileInfo:
    size: int
    sha256: str
    mode: int


@dataclass(frozen=True)
class FileResult:
    name: str               # <arch>/<path inside out/>
    a: FileInfo = None      # None: missing in that build
    b: FileInfo = None

    @property
    def identical(self):
        return self.a is not None and self.b is not None and self.a.sha256 == self.b.sha256


def _tree_files(top):
    found = {}
    for d, _, files in os.walk(top):
        for f in files:
            path = os.path.join(d, f)
            st = os.lstat(path)
            # out/ holds regular files; a symbolic link is compared by its target, never followed out of the tree.
            digest = stamp.sha256_file(path) if stat.S_ISREG(st.st_mode) else "link->" + os.readlink(path)
            found[os.path.relpath(path, top)] = FileInfo(st.st_size, digest, stat.S_IMODE(st.st_mode))
    return found


def compare_trees(a_dir, b_dir, prefix=""):
    """Every file of two trees, by relative path, sorted; a file missing on one side is a difference."""
    a, b = _tree_files(a_dir), _tree_files(b_dir)
    return [FileResult(prefix + n, a.get(n), b.get(n)) for n in sorted(set(a) | set(b))]


def compare_builds(a_root, b_root, arches):
    results = []
    for arch in arches:
        results += compare_trees(Layout(a_root, arch).out, Layout(b_root, arch).out, prefix=arch + "/")
    return results


def usability_problems(out_dir, build_name):
    """What makes a build's outputs unusable whatever its umask: an unreadable file or a non-executable load
    script for the user who owns them. A missing out/ is a problem too."""
    if not os.path.isdir(out_dir):
        return [f"build {build_name} published no {out_dir}"]
    problems = []
    for name in sorted(os.listdir(out_dir)):
        mode = os.stat(os.path.join(out_dir, name)).st_mode
        if not mode & stat.S_IRUSR:
            problems.append(f"{build_name}: {name} is not readable by its owner (mode {stat.S_IMODE(mode):04o})")
        if name.startswith("mkdump-load-") and not mode & stat.S_IXUSR:
            problems.append(f"{build_name}: {name} is not executable (mode {stat.S_IMODE(mode):04o})")
    return problems


# ---------------------------------------------------------------- the report

def _cell(info):
    if info is None:
        return ("missing", "-", "-")
    return (str(info.size), info.sha256[:16], f"{info.mode:04o}")


def table(results):
    """The comparison as aligned text lines: file, size/sha256/mode of a and b, identical or DIFFERENT."""
    rows = [("file", "size a", "sha256 a", "mode a", "size b", "sha256 b", "mode b", "result")]
    for r in results:
        rows.append((r.name, *_cell(r.a), *_cell(r.b), "identical" if r.identical else "DIFFERENT"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def mode_notes(results):
    """Files whose permission bits differ: expected from the umask variation (install sets its own modes)."""
    differ = [r.name for r in results if r.a and r.b and r.a.mode != r.b.mode]
    if not differ:
        return []
    return [f"note: permission bits differ with the umask in {', '.join(differ)} (contents decide; "
            "`scons install` sets each installed file's mode itself)"]


def verdict(results, *, work, reports, diffoscope_note=None):
    """One sentence: all identical, or which files differ and where to look."""
    different = [r.name for r in results if not r.identical]
    if not results:
        return False, f"The two builds published no files to compare; see {work}/a.log and {work}/b.log."
    if not different:
        return True, f"All {len(results)} published files are identical in both builds."
    where = (f"diffoscope's reports are in {', '.join(reports)}" if reports
             else (diffoscope_note or "no diffoscope report was written"))
    return False, (f"The two builds differ in {', '.join(different)}: both build directories are kept in "
                   f"{work}/a and {work}/b, and {where}.")


def diffoscope_reports(results, a_root, b_root, work, *, log=log_default, which=shutil.which):
    """Write `diffoscope --text` reports for files present in both builds that differ. Returns (paths, note)."""
    exe = which("diffoscope")
    if exe is None:
        return [], "diffoscope is not installed (Debian package diffoscope-minimal), so no report was written"
    paths = []
    for r in results:
        if r.identical or r.a is None or r.b is None:
            continue
        arch, _, rel = r.name.partition("/")
        dest = os.path.join(work, f"diffoscope-{arch}-{rel.replace('/', '_')}.txt")
        tmp = dest + ".tmp"
        log(f"repro: diffoscope {r.name} -> {dest}")
        argv = [exe, "--text", tmp, "--max-text-report-size", str(DIFFOSCOPE_MAX_TEXT),
                os.path.join(Layout(a_root, arch).out, rel), os.path.join(Layout(b_root, arch).out, rel)]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, timeout=DIFFOSCOPE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"repro: diffoscope on {r.name} did not finish within {DIFFOSCOPE_TIMEOUT} s; its partial report "
                f"is {tmp}")
            continue
        # 1: differences found (the expected case); 0 would mean diffoscope saw none.
        if p.returncode in (0, 1) and os.path.exists(tmp):
            os.replace(tmp, dest)
            paths.append(dest)
        else:
            log(f"repro: diffoscope failed on {r.name} (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return paths, None


# ---------------------------------------------------------------- probes and preparation (root only)

def probe_uts(python=sys.executable):
    """None when a new UTS namespace with its own host name works here, else the reason."""
    return _probe(["unshare", "--uts", "--", python, "-c", SET_HOSTNAME, "mkdump-repro-probe", "true"])


def probe_user(user, paths, *, cwd, python=sys.executable, environ=os.environ):
    """None when `user` can run scons on this project (read every path given), else the reason."""
    return _probe(launch_argv(Condition("probe", {}, 0o022, 1, user=user), [python, "-c", PROBE_READ, *paths],
                              python), cwd=cwd, env=dict(environ, HOME="/"))


def _probe(argv, cwd=None, env=None):
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if p.returncode:
        lines = p.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {p.returncode}"
    return None


def other_user(name=OTHER_USER):
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return User(name, pw.pw_uid, pw.pw_gid)


def seed_for_other_user(a_root, cache, dest, user):
    """Give build b, run as another user, its own copies of what build a fetched: a file a found in a sources=
    directory goes to <dest>/sources (b gets sources= that), any other into a private cache <dest>/cache with
    a's verification record, so that b's manifest names the same origin and URL. Returns b's option overrides."""
    files_dir = os.path.join(dest, "cache", "files")
    verified_dir = os.path.join(dest, "cache", "verified")
    sources_dir = os.path.join(dest, "sources")
    for d in (files_dir, verified_dir, sources_dir):
        os.makedirs(d, exist_ok=True)
    fetch_dir = os.path.join(a_root, "fetch")
    used_sources = False
    for entry in sorted(os.listdir(fetch_dir)):
        if not entry.endswith(".where.json"):
            continue
        where = stamp.read(os.path.join(fetch_dir, entry))
        if where["origin"] == "sources":
            shutil.copyfile(where["path"], os.path.join(sources_dir, where["file"]))
            used_sources = True
        else:
            shutil.copyfile(where["path"], os.path.join(files_dir, where["file"]))
            record = os.path.join(cache, "verified", where["file"] + ".json")
            if os.path.isfile(record):
                shutil.copyfile(record, os.path.join(verified_dir, where["file"] + ".json"))
    _chown_tree(dest, user)
    overrides = {"cache": os.path.join(dest, "cache"), "offline": "1"}
    overrides["sources"] = sources_dir if used_sources else ""
    return overrides


def _chown_tree(top, user):
    os.chown(top, user.uid, user.gid)
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            os.chown(os.path.join(d, n), user.uid, user.gid, follow_symlinks=False)


def _make_dir(path, user=None):
    os.makedirs(path)
    os.chmod(path, 0o755)
    if user:
        os.chown(path, user.uid, user.gid)


# ---------------------------------------------------------------- the whole command

@dataclass
class Request:
    top: str                # the project (SConstruct's directory)
    launch_dir: str         # where scons was started: relative options resolve from here
    arglist: list           # the user's (name, value) arguments, in order
    build: str              # the outer build root; the work happens in <build>/repro
    arches: tuple
    cache: str              # the resolved download cache (the inner HOME differs, so it is passed explicitly)
    jobs: int
    keep: bool = False
    read_paths: list = field(default_factory=list)   # files the other user must be able to read


def run(req, *, log=log_default, python=sys.executable, environ=os.environ):
    """The repro command. Returns the list of FileResult when every file is identical; raises MkdumpError with
    one sentence otherwise (both builds kept)."""
    work = os.path.join(req.build, REPRO_DIR)
    if os.path.lexists(work):
        log(f"repro: removing the previous run's {work}")
        shutil.rmtree(work)
    _make_dir(work)
    dirs = {n: os.path.join(work, n) for n in ("a", "b")}
    homes = (os.path.join(work, "home-a"), os.path.join(work, "home-b"))

    # SCons is imported from wherever this process found it; the inner builds must find the same one.
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_scons_dir(), environ.get("PYTHONPATH")) if p)
    root = os.geteuid() == 0
    user = other_user() if root else None
    uts_error = probe_uts(python) if root else None
    user_error = None
    if root and user:
        paths = [os.path.join(req.top, p) for p in PROJECT_PATHS] + list(req.read_paths) + [work]
        user_error = probe_user(user, paths, cwd=req.launch_dir, python=python, environ=env)
    a, b, variations = plan(root=root, uts_error=uts_error, user=user, user_error=user_error,
                            locales=_locales(), jobs=req.jobs, homes=homes, machine_hostname=socket.gethostname())
    log(f"repro: two builds of arch {', '.join(req.arches)} in {dirs['a']} and {dirs['b']}, then every file of "
        "out/ compared; what differs between them:")
    for v in variations:
        log("repro:   " + v.line())

    for cond in (a, b):
        overrides = {"build": dirs[cond.name], "jobs": str(cond.jobs), "cache": req.cache}
        _make_dir(homes[0 if cond is a else 1], cond.user)
        if cond.user:
            _make_dir(dirs[cond.name], cond.user)
            overrides.update(seed_for_other_user(dirs["a"], req.cache, os.path.join(work, "seed-b"), cond.user))
        argv = [python, "-m", "SCons", "-C", req.top, *scons_args(req.arglist, overrides)]
        log(f"repro: build {cond.name} starts: scons {' '.join(argv[5:])}")
        status = run_build(cond, argv, base_env=env, cwd=req.launch_dir,
                           log_path=os.path.join(work, f"{cond.name}.log"), log=log, python=python)
        if status != 0:
            raise MkdumpError(f"Build {cond.name} of the repro run failed (exit status {status}), so nothing was "
                              f"compared; its output is in {work}/{cond.name}.log (when a plain `scons` with the same "
                              "options succeeds, that log shows which variation broke the build).")

    problems = [p for c in (a, b) for arch in req.arches
                for p in usability_problems(Layout(dirs[c.name], arch).out, c.name)]
    results = compare_builds(dirs["a"], dirs["b"], req.arches)
    lines = [v.line() for v in variations] + [""] + table(results) + mode_notes(results) + problems
    for line in table(results) + mode_notes(results) + problems:
        log("repro: " + line)
    reports, note = [], None
    if not all(r.identical for r in results):
        reports, note = diffoscope_reports(results, dirs["a"], dirs["b"], work, log=log)
    same, sentence = verdict(results, work=work, reports=reports, diffoscope_note=note)
    if same and problems:
        same, sentence = False, (f"The builds are identical but their outputs are not usable ({problems[0]}); both "
                                 f"build directories are kept in {work}/a and {work}/b.")
    with open(os.path.join(work, "report.txt"), "w") as f:
        f.write("\n".join(lines + ["", sentence]) + "\n")
    if not same:
        raise MkdumpError(sentence)
    if req.keep:
        log(f"repro: keep=1: both builds stay in {work}/a and {work}/b")
    else:
        for n in ("a", "b", "home-a", "home-b", "seed-b"):
            shutil.rmtree(os.path.join(work, n), ignore_errors=True)
    log(f"repro: {sentence} (report: {work}/report.txt, logs: {work}/a.log, {work}/b.log)")
    return results


def _scons_dir():
    import SCons
    return os.path.dirname(os.path.dirname(os.path.abspath(SCons.__file__)))


def _locales():
    try:
        p = subprocess.run(["locale", "-a"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return ["C", "POSIX"]
    return p.stdout.split() or ["C", "POSIX"]
