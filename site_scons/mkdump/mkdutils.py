"""mkdutils (mkdutils.taz, 2005-09-07): the tools that turn a mini kernel dump into what the analysis tools read.

They run where the dump is read, an ordinary machine, so they are built with today's gcc for the build host, not
with the 2.6.9 toolchain. The archive was not reachable when this was written: what is assumed of it is what any
2005 tool archive has, a `Makefile` whose default target builds the tools and their C sources, at the top or in
the archive's single top directory. The real file's first use says whether that holds (`find_layout` names what is
missing).

gcc 12 against 2005 C: `-fcommon` (gcc 10 made `-fno-common` the default, and a global defined in two files was
then a link error), `-std=gnu89` (the dialect it was written in: implicit int, old-style definitions) and
`-Wno-error` (a warning new since 2005 is no fault of the tools). They ride in `CC`, so the Makefile's own flags
still apply. `-ffile-prefix-map` keeps the build directory out of the binaries.

The stage's product is one tar, `mkdutils.tar`: `sbin/<tool>` for each executable the build made, root-owned,
0755, dated SOURCE_DATE_EPOCH, in name order; install unpacks it under PREFIX.
"""
import io
import os
import shutil
import stat
import subprocess
import tarfile

from . import runner
from .errors import Interrupted, MkdumpError
from .fsutil import write_atomic
from .kbuild import job_slots, make_env

PRODUCT = "mkdutils.tar"
CC_FLAGS = ("-std=gnu89", "-fcommon", "-Wno-error")
ARCHIVE = "mkdutils.taz"


def missing_parts(root):
    """What an unpacked archive lacks of the assumed layout (empty when it is an mkdutils archive)."""
    top = _top(root)
    missing = []
    if not os.path.isfile(os.path.join(top, "Makefile")):
        missing.append("a Makefile")
    if not any(n.endswith(".c") for n in os.listdir(top) if os.path.isfile(os.path.join(top, n))):
        missing.append("C sources (*.c)")
    return missing


def _top(root):
    entries = os.listdir(root)
    if len(entries) == 1 and os.path.isdir(os.path.join(root, entries[0])) \
            and not os.path.islink(os.path.join(root, entries[0])):
        return os.path.join(root, entries[0])
    return root


def find_layout(root):
    """The directory of the unpacked archive `root` that holds its Makefile; a clear error when it is not there."""
    if not os.path.isdir(root):
        raise MkdumpError(f"the unpacked mkdutils archive {root} does not exist; run the unpack stage first")
    missing = missing_parts(root)
    if missing:
        raise MkdumpError(f"the mkdutils archive unpacked at {root} lacks {' and '.join(missing)} (at its top or "
                          f"in its one top directory); check that the file is {ARCHIVE} of 2005-09-07")
    return _top(root)


def host_machine():
    """(ELF class, e_machine) of this machine, read from the running program itself: the one executable surely
    made for it (and no table of arches to keep)."""
    head = _elf_header(os.path.realpath("/proc/self/exe"))
    if head is None:
        raise MkdumpError("cannot read this machine's ELF type from /proc/self/exe; mkdutils' check needs Linux")
    return head["class"], head["machine"]


def _elf_header(path):
    with open(path, "rb") as f:
        head = f.read(64)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    little = head[5] == 1
    order = "little" if little else "big"
    return {"class": head[4], "type": int.from_bytes(head[16:18], order), "machine": int.from_bytes(head[18:20],
                                                                                                  order)}


def _has_interp_or_static(path):
    """A linked executable: an ET_EXEC, or an ET_DYN with a PT_INTERP (a PIE; a shared library has none)."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        if elf["e_type"] == "ET_EXEC":
            return True
        return elf["e_type"] == "ET_DYN" and any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments())


def new_executables(tree, before):
    """ELF files with an execute bit under `tree` that are not among `before` (relative paths): what make built."""
    found = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, tree)
            st = os.lstat(path)
            if rel in before or not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
                continue
            if _elf_header(path):
                found.append(rel)
    return found


def check_tools(tree, tools, build_dirs):
    """Each tool an ELF executable for this machine, linked, and without any of `build_dirs` inside. Returns the
    check results as dicts (name, ok, figure, detail), as the check stage records its own."""
    machine = host_machine()
    results = []
    for rel in tools:
        path = os.path.join(tree, rel)
        head = _elf_header(path)
        problems = []
        if (head["class"], head["machine"]) != machine:
            problems.append(f"ELF class {head['class']} machine {head['machine']}, not this machine's "
                            f"{machine[0]} {machine[1]}")
        if not _has_interp_or_static(path):
            problems.append("not a linked executable (no ET_EXEC, no PT_INTERP)")
        with open(path, "rb") as f:
            data = f.read()
        for d in build_dirs:
            if d.encode() in data:
                problems.append(f"it holds the build directory {d}")
        results.append({"name": f"mkdutils {os.path.basename(rel)}", "ok": not problems,
                        "figure": "ELF executable for this machine, linked, no build paths" if not problems
                        else "; ".join(problems), "detail": ""})
    return results


def compiler_version():
    """The first line of `gcc --version`: which compiler built the tools, for the manifest."""
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, LC_ALL="C")).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def build(src, work, *, log_path, log, jobs=None):
    """Copy the archive's tree `src` (find_layout's) to `work` and run its Makefile's default target with today's
    gcc; returns the executables it made (paths relative to `work`)."""
    shutil.copytree(src, work, symlinks=True)
    before = set()
    for dirpath, _, filenames in os.walk(work):
        before.update(os.path.relpath(os.path.join(dirpath, n), work) for n in filenames)
    work = os.path.abspath(work)
    cc = " ".join(("gcc",) + CC_FLAGS + (f"-ffile-prefix-map={work}=mkdutils",))
    argv = ["make", f"CC={cc}"]
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log(f"make in {work} with today's gcc for this machine (log: {log_path})")
    env = make_env(LC_ALL="C")
    slots, argv, header = job_slots(jobs, argv)
    result = runner.run(argv, cwd=work, env=env, log_path=log_path, log_header=f"# cd {work} && {header}",
                        jobs=slots)
    if result.stopped == "interrupt":
        raise Interrupted(f"make in {work} was interrupted (make was stopped by {result.interrupted_by}); run "
                          "again.")
    if result.returncode != 0:
        last = "\n  ".join(line.rstrip("\n") for line in result.lines[-8:])
        raise MkdumpError(f"building mkdutils failed (make exit {result.returncode}); last lines:\n  {last}\n"
                          f"Full log: {log_path}. A warning gcc 12 makes an error needs a compat patch of ours.")
    tools = new_executables(work, before)
    if not tools:
        raise MkdumpError(f"building mkdutils made no executable in {work}; see {log_path}")
    return tools


def strip(work, tools, *, log_path):
    """Strip the tools' symbol tables, as distributions ship executables (Debian policy 10.1; lintian's
    unstripped-binary-or-object): done here, so that the tools checked, published and recorded in the manifest are
    the ones a package ships. strip is deterministic, so the build stays reproducible."""
    argv = ["strip", "--strip-all"] + [os.path.join(work, rel) for rel in tools]
    result = runner.run(argv, cwd=work, log_path=log_path, log_header="# " + " ".join(argv))
    if result.stopped == "interrupt":
        raise Interrupted(f"stripping mkdutils' tools was interrupted (strip was stopped by "
                          f"{result.interrupted_by}); run again.")
    if result.returncode != 0:
        raise MkdumpError(f"strip failed on mkdutils' tools (exit {result.returncode}); see {log_path}. Is binutils "
                          "installed?")


def pack(tree, tools, dest, *, epoch):
    """sbin/<tool> for each tool, reproducibly (see the module docstring)."""
    names = {}
    for rel in tools:
        name = os.path.basename(rel)
        if name in names:
            raise MkdumpError(f"mkdutils built two tools named {name} ({names[name]} and {rel}); they cannot both "
                              "go to sbin/")
        names[name] = rel
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            path = os.path.join(tree, names[name])
            info = tarfile.TarInfo("sbin/" + name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime, info.mode, info.size = epoch, 0o755, os.path.getsize(path)
            with open(path, "rb") as f:
                tar.addfile(info, f)
    write_atomic(dest, buf.getvalue())
    return sorted(names)


def members(tar_path):
    """[(tool name, TarInfo)] of a tools tar, refusing anything but plain files `sbin/<name>`."""
    out = []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for info in tar.getmembers():
                parts = info.name.split("/")
                if len(parts) != 2 or parts[0] != "sbin" or parts[1] in ("", ".", "..") or not info.isfile():
                    raise MkdumpError(f"{tar_path} holds {info.name!r}, not a tool sbin/<name>; rebuild it "
                                      "(scons check)")
                out.append((parts[1], info))
    except tarfile.TarError as e:
        raise MkdumpError(f"{tar_path} is not a readable tar ({e}); rebuild it (scons check)") from None
    return out
