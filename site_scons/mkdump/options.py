"""The command-line options (SCons Variables): their specification, defaults and validation.

The SCons tool only collects raw strings and prints help; every check lives here so it is testable without SCons.
"""
import os
import shutil
from dataclasses import dataclass, field
from typing import Optional

from . import arch as arches
from .errors import MkdumpError
from .kbuild import DEFAULT_SOURCE_DATE_EPOCH
from .loadscript import encode_dump_dev
from .sources import mirror_url

# The files of kernel/arch/, the default arch first (arch=all builds them in this order).
ARCHES = arches.names()
# cc_launcher= names that need no path; anything else must be the path of an executable.
LAUNCHERS = ("ccache", "distcc", "icecc", "sccache")


def default_cache(environ=os.environ):
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mkdump-build")


@dataclass(frozen=True)
class Spec:
    name: str
    help: str
    default: str


def specs(dump_drivers, default_driver, environ=os.environ):
    """The option table, in the order `scons -h` shows it."""
    with_pae = ", ".join(a.name for a in arches.load_all() if a.pae)
    return [
        Spec("arch", f"target architecture: {', '.join(ARCHES)} or all", ARCHES[0]),
        Spec("build", "output root; per arch: <build>/<arch>/{minik,system,out}", "build"),
        Spec("cache", "download cache (shared by builds; safe to share concurrently)", default_cache(environ)),
        Spec("sources", "read-only directory of pre-downloaded source files, looked in first", ""),
        Spec("mirror", "comma-separated base URLs tried before the upstream URLs", ""),
        Spec("offline", "1: never touch the network; fail if a source is not in sources= or the cache", "0"),
        Spec("jobs", "parallel jobs passed to make (default: SCons -j, else DEB_BUILD_OPTIONS=parallel=N, "
             "else the CPU count); the makes of stages running at once share them", ""),
        Spec("verbose", "1: show kbuild's full output instead of one progress line per stage", "0"),
        Spec("fuzz", "patch context fuzz allowed (0 = exact, like Buildroot); fuzzed hunks are reported", "0"),
        Spec("dump_driver", "mini kernel dump block driver families, comma-separated (see below): "
             + ", ".join(dump_drivers) + "; or lspci:FILE, the families that drive the storage controllers "
             "`lspci -n` on the target printed into FILE", default_driver),
        Spec("pae", f"{with_pae} only: run the mini kernel in PAE mode (no for CPUs without PAE, e.g. Pentium M)",
             "yes"),
        Spec("minik_fragment", "your own extra Kconfig fragment for the mini kernel (the rules still apply)", ""),
        Spec("system_config", "your system's own 2.6.9 .config for the system kernel, or defconfig for the arch's own "
             "arch/<arch>/defconfig; none: the lean configs/system-<arch>.config", ""),
        Spec("minik_mem", "memory of the mini kernel in MB, a multiple of 4", "8"),
        Spec("dump_dev", "default dump device for the load script: /dev/sdb2, MAJOR:MINOR or 0xHEX", ""),
        Spec("minik_params", "extra kernel parameters for the mini kernel, written by the load script", ""),
        Spec("CC", "C compiler command for the kernels (default: $CC, else detected per arch)",
             environ.get("CC", "")),
        Spec("CROSS_COMPILE", "cross toolchain prefix, the target triplet and a dash (default: $CROSS_COMPILE)",
             environ.get("CROSS_COMPILE", "")),
        Spec("cc_launcher", "compiler launcher prefixed to the kernels' CC: " + "|".join(LAUNCHERS)
             + " or a path (outputs are the same with or without it)", ""),
        Spec("cache_dir", "SCons CacheDir shared by a team: finished artifacts are retrieved from it when "
             "every input matches", ""),
        Spec("kernel", "menuconfig: the kernel whose configuration the menu opens, minik or system", "minik"),
        Spec("save", "menuconfig: where to save (a fragment for minik, a .config for system; default "
             "mkdump-<kernel>-<arch>.config here)", ""),
        Spec("keep", "repro: 1 keeps both builds (<build>/repro/a and b) even when they are identical", "0"),
        Spec("DESTDIR", "install: staging root (scons install DESTDIR=...; default: $DESTDIR)",
             environ.get("DESTDIR", "")),
        Spec("PREFIX", "install: prefix under DESTDIR (default: $PREFIX, else /usr)", environ.get("PREFIX", "/usr")),
        Spec("SOURCE_DATE_EPOCH", "timestamp written into the kernels (reproducible builds)",
             environ.get("SOURCE_DATE_EPOCH", str(DEFAULT_SOURCE_DATE_EPOCH))),
    ]


@dataclass(frozen=True)
class Options:
    arches: tuple
    build: str
    cache: str
    sources: tuple
    mirrors: tuple
    offline: bool
    jobs: Optional[int]
    deb_parallel: Optional[int]
    verbose: bool
    fuzz: int
    dump_driver: str
    pae: bool
    minik_fragment: Optional[str]
    system_config: Optional[str]
    minik_mem: int
    dump_dev: str
    minik_params: str
    cc: Optional[str]
    cross_compile: Optional[str]
    cc_launcher: Optional[str]
    cache_dir: Optional[str]
    destdir: str
    prefix: str
    source_date_epoch: int
    keep: bool = False
    kernel: str = "minik"
    save: Optional[str] = None
    launch_dir: str = "."
    raw: dict = field(default_factory=dict, compare=False)

    def menuconfig_save(self, arch):
        """Where scons menuconfig saves for `arch`: save=, or a file named after the kernel and arch here."""
        return self.save or os.path.join(self.launch_dir, f"mkdump-{self.kernel}-{arch}.config")


_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n", ""}


def _bool(name, value):
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise MkdumpError(f"Invalid value for {name}: {value!r}; use 1 or 0 (yes/no).")


def _int(name, value, *, minimum=0):
    try:
        n = int(value, 10)
    except ValueError:
        raise MkdumpError(f"Invalid value for {name}: {value!r}; give a whole number.") from None
    if n < minimum:
        raise MkdumpError(f"Invalid value for {name}: {value!r}; it must be at least {minimum}.")
    return n


def _file(name, value, base_dir):
    if not value:
        return None
    path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))
    if not os.path.isfile(path):
        raise MkdumpError(f"{name}={value}: no such file; give the path of an existing file.")
    return path


def _build_root(value, base_dir):
    path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))
    # Checked before any stage runs, since every one of these fails only at make, after unpack, patch and config:
    # the trees' paths reach make, which splits on whitespace (kbuild's own paths included) and expands a '$';
    # mkexec's KDIR= cannot carry a '#'; and gcc splits -ffile-prefix-map at the first '=', so a prefix map would
    # silently not apply.
    bad = sorted({c for c in path if c in "$=#" or c.isspace()})
    if bad:
        raise MkdumpError(f"build={value}: the path {path} contains {' and '.join(repr(c) for c in bad)}, which "
                          "make and gcc's prefix maps cannot carry; choose a build directory without them.")
    return path


def _for_make(name, value):
    # These go on make's command line (CC=, CROSS_COMPILE=), where make would expand a '$' that toolchain
    # detection, running the compiler itself, took literally.
    if value and "$" in value:
        raise MkdumpError(f"{name}={value}: make would expand the '$' in it; give a value without '$'.")
    return value


def deb_parallel(environ):
    """N from DEB_BUILD_OPTIONS=parallel=N (Debian policy 4.9.1), or None."""
    for word in environ.get("DEB_BUILD_OPTIONS", "").split():
        name, _, value = word.partition("=")
        if name == "parallel":
            return _int("DEB_BUILD_OPTIONS parallel", value, minimum=1)
    return None


def _launcher(value, base_dir, environ):
    value = value.strip()
    if not value:
        return None
    if value in LAUNCHERS:
        if shutil.which(value, path=environ.get("PATH", os.defpath)) is None:
            raise MkdumpError(f"cc_launcher={value}: {value} is not on PATH; install the Debian package {value} "
                              "or leave cc_launcher unset.")
        return value
    path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise MkdumpError(f"cc_launcher={value}: not one of {', '.join(LAUNCHERS)} and no executable file at "
                          f"{path}; name a launcher or give its path.")
    return path


LSPCI_PREFIX = "lspci:"


def split_dump_driver(value):
    """The family names of a dump_driver= value ("ide, scsi-sym53c8xx"), in the order given, each once."""
    return list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))


def _dump_driver(value, dump_drivers, base_dir):
    """"ide,scsi-sym53c8xx" (each family once, in the order given), or "lspci:" + the absolute path of the file."""
    value = value.strip()
    if value.startswith(LSPCI_PREFIX):
        given = value[len(LSPCI_PREFIX):].strip()
        path = os.path.abspath(os.path.join(base_dir, os.path.expanduser(given)))
        if not given or not os.path.isfile(path):
            raise MkdumpError(f"dump_driver={value}: no such file; give lspci:FILE, FILE holding what `lspci -n` "
                              "printed on the target machine.")
        return LSPCI_PREFIX + path
    names = split_dump_driver(value)
    unknown = [n for n in names if n not in dump_drivers]
    if len(unknown) == 1:
        what = f"{unknown[0]!r} is not a dump driver family"
    elif unknown:
        what = f"{', '.join(repr(n) for n in unknown)} are not dump driver families"
    else:
        what = "it names no family"
    if unknown or not names:
        raise MkdumpError(f"Invalid value for dump_driver: {value!r}: {what}; valid values are "
                          f"{', '.join(dump_drivers)} (comma-separated), or lspci:FILE.")
    return ",".join(names)


def parse(raw, *, dump_drivers, base_dir=".", environ=os.environ):
    """Validate the raw option strings (as SCons collected them) into Options; MkdumpError on the first bad one."""
    arch = raw["arch"].strip().lower()
    if arch == "all":
        arches = ARCHES
    elif arch in ARCHES:
        arches = (arch,)
    else:
        raise MkdumpError(f"Invalid value for arch: {raw['arch']!r}; valid values are {', '.join(ARCHES)} and all.")

    sources = ()
    if raw["sources"]:
        d = os.path.abspath(os.path.join(base_dir, os.path.expanduser(raw["sources"])))
        if not os.path.isdir(d):
            raise MkdumpError(f"sources={raw['sources']}: no such directory; give a directory of pre-downloaded files.")
        sources = (d,)

    mirrors = tuple(mirror_url(m.strip()) for m in raw["mirror"].split(",") if m.strip())

    jobs = _int("jobs", raw["jobs"], minimum=1) if raw["jobs"] else None

    driver = _dump_driver(raw["dump_driver"], dump_drivers, base_dir)

    pae_raw = raw["pae"].strip().lower()
    if pae_raw not in ("yes", "no"):
        raise MkdumpError(f"Invalid value for pae: {raw['pae']!r}; use yes or no.")

    mem = _int("minik_mem", raw["minik_mem"], minimum=4)
    if mem % 4:
        raise MkdumpError(f"Invalid value for minik_mem: {mem}; the mini kernel's memory must be a multiple of 4 MB "
                          "(mkexec reserves it in 4 MB units).")

    epoch = _int("SOURCE_DATE_EPOCH", raw["SOURCE_DATE_EPOCH"])

    dump_dev = raw["dump_dev"].strip()
    if dump_dev:
        # The load script is written at the very end; a bad device must stop the build before it starts.
        encode_dump_dev(dump_dev)

    destdir = raw["DESTDIR"]
    if destdir:
        destdir = os.path.abspath(os.path.join(base_dir, os.path.expanduser(destdir)))
    prefix = raw["PREFIX"]
    if not prefix.startswith("/"):
        raise MkdumpError(f"Invalid value for PREFIX: {prefix!r}; give an absolute path such as /usr.")

    return Options(
        arches=arches,
        build=_build_root(raw["build"], base_dir),
        cache=os.path.abspath(os.path.join(base_dir, os.path.expanduser(raw["cache"]))),
        sources=sources,
        mirrors=mirrors,
        offline=_bool("offline", raw["offline"]),
        jobs=jobs,
        deb_parallel=deb_parallel(environ),
        verbose=_bool("verbose", raw["verbose"]),
        fuzz=_int("fuzz", raw["fuzz"]),
        dump_driver=driver,
        pae=pae_raw == "yes",
        minik_fragment=_file("minik_fragment", raw["minik_fragment"], base_dir),
        # "defconfig" names the arch's own arch/<arch>/defconfig in the system tree (a file of that name: ./defconfig).
        system_config=("defconfig" if raw["system_config"] == "defconfig"
                       else _file("system_config", raw["system_config"], base_dir)),
        minik_mem=mem,
        dump_dev=dump_dev,
        minik_params=raw["minik_params"],
        cc=_for_make("CC", raw["CC"]) or None,
        cross_compile=_for_make("CROSS_COMPILE", raw["CROSS_COMPILE"]) or None,
        cc_launcher=_for_make("cc_launcher", _launcher(raw["cc_launcher"], base_dir, environ)),
        cache_dir=(os.path.abspath(os.path.join(base_dir, os.path.expanduser(raw["cache_dir"])))
                   if raw["cache_dir"].strip() else None),
        destdir=destdir,
        prefix=prefix.rstrip("/") or "/",
        source_date_epoch=epoch,
        keep=_bool("keep", raw["keep"]),
        kernel=_kernel(raw["kernel"]),
        save=os.path.abspath(os.path.join(base_dir, os.path.expanduser(raw["save"]))) if raw["save"] else None,
        launch_dir=os.path.abspath(base_dir),
        raw=dict(raw),
    )


def _kernel(value):
    kernel = value.strip()
    if kernel not in ("minik", "system"):
        raise MkdumpError(f"Invalid value for kernel: {value!r}; use minik (the mini kernel) or system.")
    return kernel


def unknown_message(names):
    """The one-sentence error for misspelt variables, e.g. `arhc=...`."""
    names = sorted(names)
    listed = ", ".join(names)
    return (f"Unknown variable{'s' if len(names) > 1 else ''} {listed} on the command line; "
            "run `scons -h` for the valid ones.")
