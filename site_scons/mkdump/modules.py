"""The system kernel's modules: kbuild's `modules_install` into a staging root, packed as one reproducible tar that
check publishes in out/ (`system-modules.tar`), and the dependency data made at install time.

Why a tar in out/: install reads out/ only (with cache_dir= out/ may come from the cache while no stage ran, so
the built tree may not be there), and a tar is one file the cache, the check stamp and the manifest already know
how to carry. It holds `lib/modules/<release>/...` as `make modules_install INSTALL_MOD_PATH=` lays it out,
without the `build` and `source` links (they name the build machine's tree) and without dependency data (made
on the installed tree, where its paths are true). Every member is root-owned, 0644 or 0755, dated
SOURCE_DATE_EPOCH, in sorted order: the same modules give the same bytes.

Dependency data: kmod's `depmod` writes modules.dep with paths relative to /lib/modules/<release> (module-init-
tools 3.9 and later read that); the module-init-tools 3.1 of 2.6.9's days open each path of modules.dep as it is
written, so they need absolute paths, which is what their own depmod wrote. `make_absolute` rewrites the lines;
kmod's modprobe reads both forms.
"""
import io
import os
import re
import shutil
import stat
import tarfile

from . import runner
from .errors import Interrupted, MkdumpError
from .fsutil import write_atomic

# The links `modules_install` makes to the build machine's trees.
BUILD_LINKS = ("build", "source")
DEP_FILE = "modules.dep"
# Where the stage leaves the tar in the system tree (kernel/products.toml publishes it from there).
TREE_NAME = "mkdump-modules.tar"
# And the .config installed as /boot/config-<release>, without the time conf wrote into its header.
CONFIG_NAME = "mkdump-config"
# 2.6.9's conf heads .config with the time it wrote it (ctime's form): two builds of the same configuration
# would differ in it, and no later reader needs it.
_CONF_TIME = re.compile(r"# [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n")


def installable_config(text):
    """The .config `text` without the time line of its header (the lines up to the first blank one)."""
    head, sep, rest = text.partition("\n\n")
    return _CONF_TIME.sub("", head + "\n", count=1)[:-1] + sep + rest


def config_has_modules(config_path):
    with open(config_path, encoding="utf-8", errors="replace") as f:
        return any(line.strip() == "CONFIG_MODULES=y" for line in f)


def modules_install(tree, root, *, make_args, log_path, log, obj=None, jobs=None):
    """`make modules_install INSTALL_MOD_PATH=root` for the kernel built from `tree` (in the object directory
    `obj` when given, as kbuild.run_make built it), with `jobs` as kbuild.job_slots takes it; its own depmod is
    kept from running (it would run the build machine's depmod on a tree without its final paths)."""
    from .kbuild import build_env, job_slots, out_of_tree_args
    where = os.path.abspath(obj or tree)
    argv = (["make", "-C", where] + out_of_tree_args(tree if obj else None) + list(make_args)
            + ["modules_install", f"INSTALL_MOD_PATH={os.path.abspath(root)}", "DEPMOD=/bin/true"])
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log(f"make modules_install in {where} (log: {log_path})")
    slots, argv, header = job_slots(jobs, argv)
    result = runner.run(argv, cwd=where, env=build_env(), log_path=log_path, log_header="# " + header, jobs=slots)
    if result.stopped == "interrupt":
        raise Interrupted(f"make modules_install in {where} was interrupted (make was stopped by "
                          f"{result.interrupted_by}); run again.")
    if result.returncode != 0:
        raise MkdumpError(f"make modules_install failed in {where} (exit {result.returncode}); see {log_path}, fix "
                          "the cause and run again.")


def _members(moddir, release):
    """(archive name, path) of every entry under lib/modules/<release>, sorted, refusing what no install holds."""
    top = f"lib/modules/{release}"
    out = [(top, moddir)]
    for dirpath, dirnames, filenames in os.walk(moddir):
        rel = os.path.relpath(dirpath, moddir)
        if rel == ".":
            for link in BUILD_LINKS:
                for names in (dirnames, filenames):
                    if link in names and os.path.islink(os.path.join(dirpath, link)):
                        names.remove(link)
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise MkdumpError(f"modules_install left {path}, neither a file nor a directory; the modules "
                                  "tree holds only modules, so look at the kernel tree's install rules")
            out.append((os.path.normpath(os.path.join(top, rel, name)), path))
    return sorted(out)


def pack(moddir, release, dest, *, epoch):
    """Write the tar of `moddir` (an installed lib/modules/<release>) to `dest`; returns the module count."""
    count = 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _members(moddir, release):
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            if os.path.isdir(path):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = os.path.getsize(path), 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
                count += name.endswith(".ko")
    write_atomic(dest, buf.getvalue())
    return count


def members(tar_path, release):
    """The checked entries of a modules tar: [(relative path under lib/modules/<release>, is_dir, TarInfo)].

    Raises MkdumpError for anything that is not a plain file or directory under lib/modules/<release>."""
    top = f"lib/modules/{release}"
    out = []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for info in tar.getmembers():
                name = info.name.rstrip("/")
                parts = name.split("/")
                if (name != top and not name.startswith(top + "/")) or ".." in parts or "" in parts \
                        or not (info.isfile() or info.isdir()):
                    raise MkdumpError(f"{tar_path} holds {info.name!r}, not a file or directory under {top}/; "
                                      "rebuild it (scons check)")
                out.append((name[len(top) + 1:], info.isdir(), info))
    except tarfile.TarError as e:
        raise MkdumpError(f"{tar_path} is not a readable tar ({e}); rebuild it (scons check)") from None
    return out


def run_depmod(root, release, system_map, *, log_path, log, depmod="depmod"):
    """kmod's depmod on the installed tree `root` (DESTDIR) against the kernel's System.map; then modules.dep in
    the form module-init-tools 3.1 read (see the module docstring)."""
    found = shutil.which(depmod) or shutil.which(depmod, path="/sbin:/usr/sbin")
    if not found:
        raise MkdumpError("depmod is not installed; install kmod (apt-get install kmod) to make the modules' "
                          "dependency data, then install again")
    argv = [found, "-b", os.path.abspath(root), "-F", os.path.abspath(system_map), release]
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    result = runner.run(argv, cwd=os.path.abspath(root), log_path=log_path, log_header="# " + " ".join(argv))
    if result.returncode != 0:
        raise MkdumpError(f"depmod failed on {root} (exit {result.returncode}); see {log_path}")
    moddir = os.path.join(root, "lib", "modules", release)
    make_absolute(os.path.join(moddir, DEP_FILE), release)
    log(f"install: module dependencies -> {moddir}/{DEP_FILE}")


_DEP_LINE = re.compile(r"([^:\s]+):((?:\s+[^:\s]+)*)\s*")


def make_absolute(dep_path, release):
    """Rewrite modules.dep with absolute paths (/lib/modules/<release>/...), lines sorted so the file does not
    depend on the order depmod met the modules in."""
    base = f"/lib/modules/{release}/"
    with open(dep_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        m = _DEP_LINE.fullmatch(line)
        if not m:
            raise MkdumpError(f"{dep_path} has a line depmod should not write ({line!r}); check the installed "
                              "kmod")
        paths = [m.group(1)] + m.group(2).split()
        paths = [p if p.startswith("/") else base + p for p in paths]
        out.append(paths[0] + ":" + "".join(" " + p for p in paths[1:]))
    write_atomic(dep_path, "".join(line + "\n" for line in sorted(out)).encode("utf-8"))


def check_dep_format(dep_path, release):
    """The module-init-tools 3.1 form: `<absolute .ko path>: <absolute .ko paths>` per line. Returns the
    problems found (empty when the file is right)."""
    base = f"/lib/modules/{release}/"
    problems = []
    with open(dep_path, encoding="utf-8") as f:
        for n, line in enumerate(f.read().splitlines(), 1):
            m = _DEP_LINE.fullmatch(line)
            if not m:
                problems.append(f"line {n}: not `module: dependencies`")
                continue
            for p in [m.group(1)] + m.group(2).split():
                if not (p.startswith(base) and p.endswith(".ko")):
                    problems.append(f"line {n}: {p} is not an absolute path of a module under {base}")
    return problems
