"""`scons install DESTDIR=... PREFIX=/usr`: lay the finished artifacts out for the target machine.

Installed layout (every path below is under DESTDIR; <arch> is one of kernel/arch/, <release> the system kernel's
release, e.g. 2.6.9):

    <PREFIX>/share/mkdump/<arch>/vmlinux.bin      the mini kernel image the load script hands to mkexec   0644
    <PREFIX>/share/mkdump/<arch>/System.map       the mini kernel's symbol map (for reading its messages)  0644
    <PREFIX>/share/mkdump/<arch>/manifest.json    provenance: inputs, outputs and check results             0644
    <PREFIX>/sbin/mkdump-load-<arch>              the load script (README "Run Mini Kernel Dump" 1-2)       0755
    <PREFIX>/sbin/<tool>                          mkdutils' tools (`tools=`, a tar from out/), as built     0755
    /lib/modules/<release>/extra/mkexec.ko        where modprobe/depmod look for out-of-tree modules        0644
    /boot/vmlinuz-<release>                       the system kernel image, named as 2.6.9's `make install`  0644
    /boot/System.map-<release>                    the system kernel's symbol map (depmod -F, klogd, ksymoops) 0644
    /boot/config-<release>                        the system kernel's .config                                0644
    /lib/modules/<release>/kernel/...             the system kernel's modules (`modules=`, a tar from out/)  0644
    /lib/modules/<release>/modules.dep ...        their dependency data: kmod's depmod on DESTDIR, modules.dep 0644
                                                  with absolute paths as module-init-tools 3.1 read them
                                                  (mkdump.modules)

Directories are 0755. The modules, and the dependency data made from them, carry the tar's dates
(SOURCE_DATE_EPOCH); the other files keep their artifact's own mtime: two installs of one build are identical.

The mini kernel files are per arch, so both arches can share a DESTDIR; the module and the system kernel image
follow the kernel's own conventions and are per release, so installing both arches into one DESTDIR needs distinct
releases. The load script's defaults are the paths above without DESTDIR (see target_paths()).

Nothing is written outside DESTDIR: PREFIX and the release may not climb out of it, and a symlink inside DESTDIR
that leads outside is refused before anything is created through it. Each file is written to a temporary file
beside its destination and renamed into place, so a reader sees the old file or the new one, never half of one.
"""
import os
import re
import shutil
import tempfile

from .errors import MkdumpError
from .loadscript import script_name
from .logs import log_default
from .options import ARCHES

# Role -> file mode, in the order files are installed and reported.
ROLES = {
    "vmlinux.bin": 0o644,
    "System.map": 0o644,
    "manifest.json": 0o644,
    "load-script": 0o755,
    "mkexec.ko": 0o644,
    "kernel-image": 0o644,
    "kernel-map": 0o644,
    "kernel-config": 0o644,
}
# The roles every install has; the system kernel's map and config are asked for by the pipeline (and the map is
# required with modules=, depmod reads it).
REQUIRED = ("vmlinux.bin", "System.map", "manifest.json", "load-script", "mkexec.ko", "kernel-image")


def _check_prefix(prefix):
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise MkdumpError(f"PREFIX={prefix!r} must be an absolute path such as /usr")
    if ".." in prefix.split("/") or "\n" in prefix or "\0" in prefix:
        raise MkdumpError(f"PREFIX={prefix!r} may not contain `..` or control characters; give a plain path "
                          "such as /usr")
    return os.path.normpath(prefix)


def _check_release(release):
    if not isinstance(release, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", release):
        raise MkdumpError(f"kernel release {release!r} must be a plain name such as 2.6.9 (letters, digits, "
                          "`.`, `_`, `+`, `-`)")
    return release


def _check_arch(arch):
    if arch not in ARCHES:
        raise MkdumpError(f"arch {arch!r} cannot be installed; use one of {', '.join(ARCHES)}")
    return arch


def target_paths(*, arch, release, prefix="/usr"):
    """Role -> absolute path on the target machine (without DESTDIR)."""
    _check_arch(arch)
    release = _check_release(release)
    prefix = _check_prefix(prefix)
    data = os.path.join(prefix, "share", "mkdump", arch)
    return {
        "vmlinux.bin": os.path.join(data, "vmlinux.bin"),
        "System.map": os.path.join(data, "System.map"),
        "manifest.json": os.path.join(data, "manifest.json"),
        "load-script": os.path.join(prefix, "sbin", script_name(arch)),
        "mkexec.ko": f"/lib/modules/{release}/extra/mkexec.ko",
        "kernel-image": f"/boot/vmlinuz-{release}",
        "kernel-map": f"/boot/System.map-{release}",
        "kernel-config": f"/boot/config-{release}",
    }


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _confined_dir(root, relative, create):
    """Walk `relative` under the real directory `root` one component at a time, refusing symlinks that lead out,
    and creating missing directories when `create` (without, the walk stops where nothing exists yet: no symlink
    can lie beyond). Returns the real path of the directory.
    """
    current = root
    for part in [p for p in relative.split("/") if p]:
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            resolved = os.path.realpath(candidate)
            if not _inside(resolved, root):
                raise MkdumpError(f"{candidate} is a symlink to {resolved}, outside DESTDIR {root}; installing "
                                  "through it would write outside DESTDIR, so remove the link or pick another "
                                  "DESTDIR")
            candidate = resolved
        if os.path.lexists(candidate):
            if not os.path.isdir(candidate):
                raise MkdumpError(f"{candidate} is in the way of the install layout (a file where a directory "
                                  "belongs); remove it")
        elif create:
            os.mkdir(candidate, 0o755)
        else:
            return None
        current = candidate
    return current


def _copy_atomically(source, dest, mode):
    # Keep the artifact's own mtime so two installs of one build are identical.
    with open(source, "rb") as src:
        _write_atomically(src, dest, mode, ns=os.stat(source).st_mtime_ns)


def _install_modules(tar_path, root, release, destdir, log):
    """The modules tar's files under DESTDIR/lib/modules/<release>, its `kernel/` replaced whole as
    `modules_install` does (a module gone from the build is gone from the install). Returns the tar's date."""
    from .modules import members
    entries = members(tar_path, release)
    top = f"lib/modules/{release}"
    moddir = _confined_dir(root, top, create=True)
    old = os.path.join(moddir, "kernel")
    if os.path.lexists(old):
        if os.path.islink(old) or not os.path.isdir(old):
            os.unlink(old)
        else:
            shutil.rmtree(old)
    import tarfile
    with tarfile.open(tar_path, "r:") as tar:
        for rel, is_dir, info in entries:
            if is_dir:
                directory = _confined_dir(root, os.path.join(top, rel), create=True)
                os.chmod(directory, 0o755)
                continue
            directory = _confined_dir(root, os.path.join(top, os.path.dirname(rel)), create=True)
            _write_atomically(tar.extractfile(info), os.path.join(directory, os.path.basename(rel)), 0o644,
                              info.mtime)
    count = sum(1 for rel, is_dir, _ in entries if rel.endswith(".ko"))
    log(f"install: {count} modules -> {os.path.join(os.path.abspath(destdir), top)}")
    return entries[0][2].mtime, moddir


def _write_atomically(src, dest, mode, mtime=None, *, ns=None):
    """The stream `src` as `dest` (mode, modification time `mtime` in seconds or `ns`), renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.tmp-", dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out)
            os.fchmod(out.fileno(), mode)
        os.utime(tmp, ns=(ns, ns) if ns is not None else (mtime * 10**9, mtime * 10**9))
        os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _install_tools(tar_path, root, prefix, destdir, log):
    """mkdutils' tools (mkdump.mkdutils' tar) under PREFIX/sbin, 0755, with the tar's dates."""
    from .mkdutils import members
    import tarfile
    entries = members(tar_path)
    sbin = os.path.join(prefix, "sbin")
    directory = _confined_dir(root, sbin, create=True)
    shown = []
    with tarfile.open(tar_path, "r:") as tar:
        for name, info in entries:
            dest = os.path.join(directory, name)
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise MkdumpError(f"{dest} is a directory where the mkdutils tool {name} belongs; remove it")
            _write_atomically(tar.extractfile(info), dest, 0o755, info.mtime)
            shown.append(os.path.join(os.path.abspath(destdir), sbin.lstrip("/"), name))
            log(f"install: mkdutils {name} -> {shown[-1]}")
    return shown


def _depmod(root, moddir, release, system_map, mtime, log_path, log):
    from .modules import check_dep_format, run_depmod
    before = set(os.listdir(moddir))
    run_depmod(root, release, system_map, log_path=log_path, log=log)
    # depmod's files get the modules' date and mode, so two installs give the same bytes, modes and dates.
    for name in sorted(set(os.listdir(moddir)) - before | {n for n in before if n.startswith("modules.")}):
        path = os.path.join(moddir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.chmod(path, 0o644)
            os.utime(path, (mtime, mtime))
    # Directories last: writing into one dates it.
    for dirpath, dirnames, _ in os.walk(moddir, topdown=False):
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                os.utime(os.path.join(dirpath, name), (mtime, mtime))
    os.utime(moddir, (mtime, mtime))
    problems = check_dep_format(os.path.join(moddir, "modules.dep"), release)
    if problems:
        raise MkdumpError(f"{moddir}/modules.dep is not in the form module-init-tools 3.1 read: "
                          f"{'; '.join(problems[:3])}; check the installed kmod")


def install(out_dir, *, destdir, prefix="/usr", release, files, arch=None, log=None, modules=None,
            depmod_log=None, tools=None):
    """Install `files` (role -> source path; relative paths are taken in `out_dir`) under `destdir`.

    Roles: vmlinux.bin, System.map, manifest.json, load-script, mkexec.ko, kernel-image (required), kernel-map,
    kernel-config (see the module docstring for where each goes). `modules`: the system kernel's modules tar
    (mkdump.modules), installed after the files, then depmod on DESTDIR (its output to `depmod_log`); `tools`:
    mkdutils' tar, its tools installed under PREFIX/sbin. `arch` defaults to the name of out_dir's parent directory
    (build/<arch>/out). Returns the installed paths (under destdir) in role order, then the tools. Raises
    MkdumpError for a missing or unknown role, a missing source, a bad PREFIX/release/arch, anything that would
    land outside destdir, and a failed write (the file being written keeps its old content).
    """
    log = log or log_default
    out_dir = os.path.abspath(out_dir)
    if arch is None:
        arch = os.path.basename(os.path.dirname(out_dir))
        if arch not in ARCHES:
            raise MkdumpError(f"cannot tell the arch from {out_dir} (expected build/<arch>/out); pass arch=")
    paths = target_paths(arch=arch, release=release, prefix=prefix)
    if not isinstance(destdir, str) or not destdir:
        raise MkdumpError("DESTDIR is empty; give the directory to install into (DESTDIR=/ for this machine)")
    unknown = sorted(set(files) - set(ROLES))
    if unknown:
        raise MkdumpError(f"install was given unknown roles {', '.join(unknown)}; the roles are "
                          f"{', '.join(ROLES)}")
    missing = [role for role in REQUIRED if role not in files]
    if modules is not None and "kernel-map" not in files:
        missing.append("kernel-map")
    if missing:
        raise MkdumpError(f"install lacks {', '.join(missing)}; build them first (scons arch={arch})")
    roles = [role for role in ROLES if role in files]
    sources = {}
    if tools is not None:
        tools = os.path.join(out_dir, os.fspath(tools))
        if not os.path.isfile(tools):
            raise MkdumpError(f"the mkdutils tar {tools} does not exist; build it first (scons arch={arch})")
    if modules is not None:
        modules = os.path.join(out_dir, os.fspath(modules))
        if not os.path.isfile(modules):
            raise MkdumpError(f"the modules tar {modules} does not exist; build it first (scons arch={arch})")
    for role in roles:
        source = os.path.join(out_dir, os.fspath(files[role]))
        if not os.path.isfile(source):
            raise MkdumpError(f"{role} {source} does not exist; build it first (scons arch={arch})")
        sources[role] = source

    os.makedirs(destdir, exist_ok=True)
    root = os.path.realpath(destdir)
    # Check every destination before writing any, so a refused path does not leave half an install behind.
    for role in roles:
        directory = _confined_dir(root, os.path.dirname(paths[role]), create=False)
        dest = directory and os.path.join(directory, os.path.basename(paths[role]))
        if dest and os.path.isdir(dest) and not os.path.islink(dest):
            raise MkdumpError(f"{dest} is a directory where the {role} file belongs; remove it")
    installed = []
    for role in roles:
        target, mode = paths[role], ROLES[role]
        shown = os.path.join(os.path.abspath(destdir), target.lstrip("/"))
        try:
            directory = _confined_dir(root, os.path.dirname(target), create=True)
            _copy_atomically(sources[role], os.path.join(directory, os.path.basename(target)), mode)
        except OSError as e:
            raise MkdumpError(f"installing {role} to {shown} failed ({e.strerror or e}); check space and "
                              "permissions in DESTDIR, then install again") from e
        log(f"install: {role} -> {shown}")
        installed.append(shown)
    if tools is not None:
        try:
            installed += _install_tools(tools, root, _check_prefix(prefix), destdir, log)
        except OSError as e:
            raise MkdumpError(f"installing mkdutils under {destdir} failed ({e.strerror or e}); check space and "
                              "permissions in DESTDIR, then install again") from e
    if modules is not None:
        try:
            mtime, moddir = _install_modules(modules, root, release, destdir, log)
            _depmod(root, moddir, release, os.path.join(root, paths["kernel-map"].lstrip("/")), mtime,
                    depmod_log or os.path.join(os.path.dirname(out_dir), "logs", "depmod.log"), log)
        except OSError as e:
            raise MkdumpError(f"installing the modules under {destdir} failed ({e.strerror or e}); check space and "
                              "permissions in DESTDIR, then install again") from e
    return installed
