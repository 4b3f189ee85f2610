"""The command line: variables collected as typed (never through SCons' Variables) and `scons -h`."""
import os
import sys

from SCons.Script import ARGUMENTS, Exit, GetLaunchDir, GetOption, Help

from mkdump import options, stages
from mkdump.errors import MkdumpError


def collect(top):
    """The options of this run, or None for `scons -h` (whose text this sets)."""
    from mkdump import kconfig
    families = kconfig.dump_driver_families(os.path.join(top, "configs"))
    names = list(kconfig.family_names(families))
    default_driver = next((n for n, f in families.items() if f.get("default")), names[0])
    specs = options.specs(list(families), default_driver)
    drivers_help = "\nDump driver families (dump_driver=FAMILY[,FAMILY...]):\n" + "".join(
        _family_help(n, f) for n, f in families.items())
    Help(help_text(specs, drivers_help))
    if GetOption("help"):
        return None
    # Values are taken as typed, never through SCons' Variables: they would live in the construction environment,
    # where SCons substitutes `$` (build=out$dir made a directory out<built-in function dir>) and evaluates
    # `${...}` as Python, even while making the help text.
    raw = {s.name: ARGUMENTS.get(s.name, s.default) for s in specs}
    unknown = [name for name in ARGUMENTS if name not in raw]
    try:
        if unknown:
            raise MkdumpError(options.unknown_message(unknown))
        return options.parse(raw, dump_drivers=names, base_dir=GetLaunchDir() or os.getcwd())
    except MkdumpError as err:
        print(f"scons: *** {err}", file=sys.stderr)
        Exit(2)


def _majors(majors):
    """[8, 65, 66, 67] -> '8, 65-67'."""
    runs = []
    for m in majors:
        if runs and m == runs[-1][1] + 1:
            runs[-1][1] = m
        else:
            runs.append([m, m])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _family_help(name, fam):
    aka = f" (also {', '.join(fam['aliases'])})" if fam["aliases"] else ""
    disk = f"dump_dev e.g. /dev/{fam['dev']}, major {_majors(fam['major'])}; " if fam["major"] else ""
    qemu = f"QEMU {', '.join(fam['qemu'])}" if fam["qemu"] else "no QEMU device"
    pad = " " * 19
    return (f"  {name:16} {fam['description']}{aka}\n{pad}{disk}{qemu}\n"
            f"{pad}CONFIG_{', CONFIG_'.join(fam['symbols'])}\n")


def _format_option(spec):
    return f"  {spec.name:17} {spec.help}\n  {'':17} (default: {spec.default if spec.default != '' else 'none'})\n"


def help_text(specs, drivers_help):
    targets = dict(stages.targets(), repro="build twice in <build>/repro/{a,b} under different conditions and "
                                           "compare every output")
    return (_HELP_HEAD + "".join(f"  {name:10} {text}\n" for name, text in targets.items()) + "\nVariables:\n"
            + "".join(_format_option(s) for s in specs) + drivers_help + _HELP_TAIL)


_HELP_HEAD = """mkdump-build: the Mini Kernel Dump recipe for Linux 2.6.9 as one command.

Usage: scons [TARGET...] [VARIABLE=VALUE...]
Targets (each stops after its stage; the default runs up to the checked artifacts and manifest):
"""

_HELP_TAIL = """
Files: <build>/<arch>/out/ holds vmlinux.bin, mkexec.ko, manifest.json and the load script;
<build>/<arch>/logs/ the build logs; <build>/<arch>/reports/ the patch and check reports.

Sharing results: with cache_dir=DIR, <build>/<arch>/out/ is retrieved from DIR when every input (sources and
their pins, patches, configs, options, compiler, as and ld) matches, without running any stage; otherwise the
stages run in <build>/<arch>/checked/ and the checked artifacts are copied to out/ and DIR. SCons' options apply:
--cache-readonly (retrieve, never push), --cache-disable (ignore DIR), --cache-debug=- (show each lookup).

One run at a time per build directory: a second scons on the same build= waits for the first, saying so
("waiting for another mkdump build in DIR (pid N) to finish"). scons -n and scons -q never wait: while another
run is going on they answer from what it has done so far and change nothing. scons -h takes nothing.
"""
