"""The mkexec archive: check its layout against README.mkdump, build mkexec.ko against the system kernel.

Unpacking (compression from the magic bytes, .Z included) is mkdump.unpack's job; find_layout() then checks the
unpacked tree.

README.mkdump's "Make mkexec" is hand work: edit KVER, KDIR and KMODDIR in kernel/Makefile.base, make the
include/asm link, run `make ARCH=<arch>`. Here the unpacked archive stays untouched: the build happens in a copy
that gets the include/asm link, the three settings go on make's command line (which overrides plain `=` and `:=`
assignments), and only when a probe shows the archive's Makefiles defeat that (an `override`) does the copy get a
generated Makefile.base.
"""
import os
import re
import shlex
import shutil
import tempfile

from . import runner
from .errors import Interrupted, MkdumpError, signal_name
from .kbuild import build_env, extract_errors, job_slots, out_of_tree_prefix_maps, prefix_maps
from .logs import log_default
from .options import ARCHES
from .fsutil import replace_dir

SETTINGS = ("KVER", "KDIR", "KMODDIR")

PATCH = "PATCH/mkexec-v1.patch"
MAKEFILE_BASE = "kernel/Makefile.base"
KERNEL_MAKEFILE = "kernel/Makefile"
TOP_MAKEFILE = "Makefile"
MODULE = "kernel/mkexec.ko"

README_LAYOUT = ("README.mkdump (\"Make mkexec\") expects a top Makefile, PATCH/mkexec-v1.patch, "
                 "kernel/Makefile.base (KVER, KDIR, KMODDIR), kernel/Makefile and "
                 + ", ".join(f"include/asm-{a}" for a in sorted(ARCHES)))

_PROBE_TAG = "mkdump-probe:"
_PROBE_MAKEFILE = "".join(f"$(info {_PROBE_TAG}{v}=$({v}))\n" for v in SETTINGS) + \
    ".PHONY: mkdump-probe\nmkdump-probe: ;\n"

_MODPOST_UNDEFINED = re.compile(r'\*\*\* Warning: "([^"]+)" \[[^]]*mkexec\.ko\] undefined!')


# ---------------------------------------------------------------------------------------------------------------
# Layout

def _layout(root, arch):
    """(where the parts are, the README's parts that are missing) of the tree at `root`."""
    files = {"top_makefile": TOP_MAKEFILE, "patch": PATCH, "makefile_base": MAKEFILE_BASE,
             "kernel_makefile": KERNEL_MAKEFILE}
    layout = {"root": root, "asm": {}}
    missing = []
    for key, rel in files.items():
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            layout[key] = path
        else:
            missing.append(rel)
    for a in ([arch] if arch else sorted(ARCHES)):
        path = os.path.join(root, "include", f"asm-{a}")
        if os.path.isdir(path):
            layout["asm"][a] = path
        else:
            missing.append(f"include/asm-{a}/")
    return layout, missing


def missing_parts(src_dir):
    """What an unpacked tree lacks of the README's mkexec layout, for every arch; empty for an mkexec tree."""
    return _layout(os.path.abspath(src_dir), None)[1]


def find_layout(src_dir, *, arch=None):
    """Check an unpacked mkexec archive against the README's layout and return where its parts are.

    With `arch`, only include/asm-<arch> is required; without, both arches the README names. Returns a dict:
    root, patch, top_makefile, makefile_base, kernel_makefile, asm (arch -> directory), all absolute paths.
    """
    root = os.path.abspath(src_dir)
    if arch is not None and arch not in ARCHES:
        raise MkdumpError(f"arch {arch!r} is not one mkexec supports; use one of {', '.join(ARCHES)}")
    if not os.path.isdir(root):
        raise MkdumpError(f"the unpacked mkexec archive {root} does not exist; run the unpack stage first")
    layout, missing = _layout(root, arch)
    if missing:
        hint = ""
        entries = os.listdir(root)
        if len(entries) == 1 and os.path.isfile(os.path.join(root, entries[0], PATCH)):
            hint = f" (it holds only {entries[0]}/, which looks like the archive's top directory: use that)"
        raise MkdumpError(f"the mkexec archive at {root} lacks {', '.join(missing)}{hint}; {README_LAYOUT}, "
                          "so check that the archive is mkexec-2.6.9-1.0-update1.taz")
    return layout


# ---------------------------------------------------------------------------------------------------------------
# Building

def _check_setting(name, value):
    # make splits on whitespace and expands `$` even in command-line values, so such paths cannot be passed.
    if not value or re.search(r"[\s$#]", value):
        raise MkdumpError(f"{name}={value!r} cannot be passed to make (empty, or holds whitespace, `$` or `#`); "
                          "use a path without them")


def _make_env(cwd):
    # kbuild's environment (no outer make's MAKEFLAGS, C locale), plus what a user's shell would have after
    # `cd ~/mkexec`, for Makefiles that read $(PWD).
    return build_env({"PWD": cwd})


def _probe_settings(kernel_dir, settings):
    """What KVER/KDIR/KMODDIR the mkexec Makefiles end up with when we pass `settings` on the command line."""
    fd, probe = tempfile.mkstemp(prefix=".mkdump-probe-", suffix=".mk", dir=kernel_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_PROBE_MAKEFILE)
        argv = ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", os.path.basename(probe),
                "mkdump-probe"] + [f"{k}={v}" for k, v in settings.items()]
        done = runner.run(argv, cwd=kernel_dir, env=_make_env(kernel_dir))
    finally:
        os.unlink(probe)
    _interrupted(done)
    if done.returncode != 0:
        last = "".join(done.lines).strip().splitlines()[-1:]
        raise MkdumpError(f"make cannot read the mkexec archive's kernel/Makefile with Makefile.base "
                          f"({last or done.returncode}); check the archive")
    seen = {}
    for line in "".join(done.lines).splitlines():
        if line.startswith(_PROBE_TAG):
            key, _, value = line[len(_PROBE_TAG):].partition("=")
            seen[key] = value
    return seen


def _generated_makefile_base(original, settings):
    lines = ["# Generated by mkdump-build from the archive's Makefile.base: its own assignments use `override`,",
             "# which beats make's command line, so the settings are appended with `override` too.",
             original.rstrip("\n"), ""]
    lines += [f"override {k} := {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def _interrupted(result, build_dir=None):
    """Ctrl-C, or a signal that reached make itself: not a failure of the module's sources."""
    stopped_by = result.interrupted_by or (signal_name(result.returncode) if result.returncode < 0 else None)
    if stopped_by:
        kept = f"{build_dir} was not changed, " if build_dir else ""
        raise Interrupted(f"building mkexec.ko was interrupted (make was stopped by {stopped_by}); {kept}run again.")


def build_module(src_dir, build_dir, *, arch, kdir, kver, kmoddir, toolchain, log_path, launcher=None,
                 verbose=False, log=None, ksrc=None, jobs=None):
    """Build mkexec.ko from the unpacked archive `src_dir` into `build_dir` and return the module's path.

    `kdir` is the built system kernel: its tree, or the object directory it was built in (2.6.9 writes a Makefile
    there that makes `make -C kdir` work as in the tree) with `ksrc` its source tree; `kver` is its release, `kmoddir` where a `make install` would put the
    module; `toolchain` (a mkdump.toolchain.Toolchain) gives make's ARCH/CC/HOSTCC, `launcher` goes in front of
    its compiler. The copy is made in a sibling temporary directory and renamed to `build_dir` only when
    kernel/mkexec.ko exists, so a failure leaves an older `build_dir` as it was. Raises MkdumpError with the
    command, the last error lines and the log path when make fails, and when modpost reports symbols the system
    kernel does not export (PATCH/mkexec-v1.patch missing).
    """
    log = log or log_default
    layout = find_layout(src_dir, arch=arch)
    kdir = os.path.abspath(kdir)
    settings = {"KVER": kver, "KDIR": kdir, "KMODDIR": kmoddir}
    for name, value in settings.items():
        _check_setting(name, value)
    if not os.path.isfile(os.path.join(kdir, "Makefile")):
        raise MkdumpError(f"KDIR {kdir} is not a kernel tree (no Makefile); build the system kernel first")
    build_dir = os.path.abspath(build_dir)
    parent = os.path.dirname(build_dir)
    os.makedirs(parent, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(build_dir)}.tmp-", dir=parent)
    try:
        shutil.copytree(layout["root"], staging, symlinks=True, dirs_exist_ok=True)
        link = os.path.join(staging, "include", "asm")
        if os.path.islink(link) or os.path.isfile(link):
            os.unlink(link)
        elif os.path.isdir(link):
            shutil.rmtree(link)
        os.symlink(f"asm-{arch}", link)

        kernel_dir = os.path.join(staging, "kernel")
        if _probe_settings(kernel_dir, settings) != settings:
            base = os.path.join(staging, MAKEFILE_BASE)
            with open(base) as f:
                original = f.read()
            with open(base, "w") as f:
                f.write(_generated_makefile_base(original, settings))
            seen = _probe_settings(kernel_dir, settings)
            if seen != settings:
                raise MkdumpError(f"the mkexec archive's kernel/Makefile sets {seen} even with a generated "
                                  f"Makefile.base, not {settings}; its Makefiles need a patch")
            log("mkexec: Makefile.base uses `override`; generated one with KVER/KDIR/KMODDIR in the build copy")

        # kbuild compiles an external module by its absolute path, so __FILE__ would hold the (randomly named)
        # staging directory: record it under the build directory's base name, and the kernel tree (make's working
        # directory) under its own. gcc uses the last map that matches, so the staging one comes last.
        # Against an object directory, the kernel's headers are named as a build in the tree names them.
        maps = (out_of_tree_prefix_maps(ksrc, kdir) if ksrc else prefix_maps(kdir, os.path.basename(kdir))) \
            + prefix_maps(staging, os.path.basename(build_dir))
        make_args = toolchain.make_args(launcher=launcher, prefix_maps=maps)
        argv = ["make", f"ARCH={arch}"] + [f"{k}={v}" for k, v in settings.items()] + make_args
        command = shlex.join(argv)
        slots, argv, header = job_slots(jobs, argv)
        log(f"mkexec: {command} (log: {log_path})")
        undefined = set()
        done = runner.run(argv, cwd=staging, env=_make_env(staging), log_path=log_path,
                          log_header="$ " + header, echo=log if verbose else None,
                          watch=lambda line: undefined.update(_MODPOST_UNDEFINED.findall(line)), jobs=slots)
        _interrupted(done, build_dir)
        if done.returncode != 0:
            lines = done.lines
            excerpt = extract_errors(lines, limit=8) or [line.rstrip("\n") for line in lines[-8:]]
            raise MkdumpError(f"building mkexec.ko failed: `{command}` exited with {done.returncode}: "
                              f"{' | '.join(excerpt)}; see the full log {log_path}")
        undefined = sorted(undefined)
        if undefined:
            raise MkdumpError(f"mkexec.ko uses {', '.join(undefined)}, which the system kernel in {kdir} does not "
                              f"export; apply {PATCH} to the system kernel and rebuild it (log: {log_path})")
        if not os.path.isfile(os.path.join(staging, MODULE)):
            raise MkdumpError(f"`{command}` succeeded but left no {MODULE}; check the archive's "
                              f"kernel/Makefile (log: {log_path})")
        replace_dir(staging, build_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(build_dir, MODULE)
