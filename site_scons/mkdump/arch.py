"""The arches mkdump-build builds: one file per arch, kernel/arch/<arch>.toml, read into a frozen `Arch`.

Every fact the stages need about an arch is in its file, with its reason; no other module names an arch. The file
name is the arch= name and 2.6.9's own name for it (make's ARCH=, arch/<arch>/, include/asm-<arch>). Adding an arch
is adding its file, configs/minik-<arch>.config, configs/system-<arch>.config, its compat patches (arch= in the
series) and the system-call entry of kernel/boot-test/init.c.

Keys (all required unless marked optional):
    default                  optional, true for the one arch arch= defaults to (and arch=all builds first)
    [toolchain]              read by mkdump.toolchain: hostcc, arch_cflags, prefix_maps, [[compilers]] (cc or
                             cross_compile, package), [[flags]] (flag, why), optional makevars besides ARCH=
    [elf]                    class (32/64), machine (e_machine number), relocation_section, loader_function,
                             relocation_prefix, relocation_table (pyelftools' enum), optional relocations_missing,
                             kernel_map_base (a string: "0x..."), entry_symbol
    [minik]                  mem_minus_mb (what mem= and /proc/mkexec/mem leave out), command_line_size
    [config]                 says (symbol -> value: how a user's .config shows it is for this arch), optional
                             [config.pae] (symbol, default) when the arch has the pae= choice
    [boot_test]              syscalls (name -> number, for /init), optional module_refused_hint
    [qemu]                   the QEMU settings of the boot proofs, [qemu.minik] and [qemu.system] per kind;
                             optional disk_append, parameters the dump disk proof adds (see dumpdisk.py)
"""
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from . import tomlfile
from .errors import MkdumpError

ARCH_DIR = Path(__file__).resolve().parents[2] / "kernel" / "arch"
QEMU_KEYS = ("binary", "machine", "accel", "memory_mb", "console", "baud", "earlyprintk", "timeout_seconds",
             "grace_seconds", "args", "package")
QEMU_KINDS = ("minik", "system")


@dataclass(frozen=True)
class Elf:
    elfclass: int
    machine: int
    relocation_section: str
    loader_function: str
    relocation_prefix: str
    relocation_table: str
    relocations_missing: MappingProxyType
    kernel_map_base: int
    entry_symbol: str


@dataclass(frozen=True)
class Pae:
    symbol: str
    default: bool


@dataclass(frozen=True)
class Arch:
    name: str
    path: str                   # the file, for messages and as a dependency of what reads it
    default: bool
    toolchain: MappingProxyType
    elf: Elf
    mem_minus_mb: int
    command_line_size: int
    config_says: MappingProxyType
    pae: Pae | None             # the pae= choice of the mini kernel, None where the arch has none
    syscalls: MappingProxyType
    module_refused_hint: str
    qemu: MappingProxyType      # [qemu] with its [qemu.minik] and [qemu.system] tables

    def qemu_settings(self, kind=None):
        """The QEMU settings for a kernel kind (or the arch's own): [qemu] overlaid with [qemu.<kind>]."""
        table = {k: v for k, v in self.qemu.items() if k not in QEMU_KINDS}
        if kind is not None:
            if kind not in QEMU_KINDS:
                raise ValueError(f"unknown kernel kind {kind!r}")
            table.update(self.qemu.get(kind, {}))
        return table

    def says_config(self, values):
        """Whether a .config's values ({symbol: value}) say it is for this arch."""
        return all(values.get(symbol, "n") == value for symbol, value in self.config_says.items())


_KINDS = {int: "an integer", str: "a string", list: "a list", dict: "a table", bool: "true or false"}


def _frozen(value):
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class _Table:
    """One table of an arch file; a missing or mistyped key is a MkdumpError naming the file and the key."""

    def __init__(self, path, data, name):
        self.path, self.name = path, name
        where = f"[{name}]" if name else "its top level"
        if not isinstance(data, dict):
            raise MkdumpError(f"{path} lacks the table [{name}]: add it (the keys are listed in "
                              "site_scons/mkdump/arch.py).")
        self.data, self.where = data, where

    def get(self, key, kind, default=None, required=True):
        if key not in self.data:
            if required:
                raise MkdumpError(f"{self.path} lacks {key} in {self.where}: add it (the keys are listed in "
                                  "site_scons/mkdump/arch.py).")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise MkdumpError(f"{self.path}: {key} in {self.where} is {value!r}, not {_KINDS[kind]}; fix the "
                              "file.")
        return value

    def table(self, key, required=True):
        return _Table(self.path, self.data.get(key, None if required else {}), f"{self.name}.{key}".strip("."))


def _read(path):
    return tomlfile.load(path, "the arch file", fix="restore it from the repository")


# Every graph read asks for the arch facts about sixteen times (each stage's parameters and inputs): parsed once
# per version of the file. An Arch is frozen, so sharing one is safe.
_PARSED = {}


def _parse(name, path):
    st = os.stat(path)
    key = (name, str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _PARSED:
        _PARSED[key] = _parse_file(name, path)
    return _PARSED[key]


def _parse_file(name, path):
    top = _Table(path, _read(path), "")
    tc = top.table("toolchain")
    for key, kind in (("hostcc", str), ("arch_cflags", list), ("prefix_maps", list), ("compilers", list),
                      ("flags", list)):
        tc.get(key, kind)
    for c in tc.data["compilers"]:
        if not isinstance(c, dict) or "package" not in c or not ({"cc", "cross_compile"} & set(c)):
            raise MkdumpError(f"{path}: each [[toolchain.compilers]] needs cc or cross_compile, and package; fix "
                              "the file.")
    for f in tc.data["flags"]:
        if not isinstance(f, dict) or not {"flag", "why"} <= set(f):
            raise MkdumpError(f"{path}: each [[toolchain.flags]] needs flag and why; fix the file.")
    tc.get("makevars", dict, required=False)

    e = top.table("elf")
    base = e.get("kernel_map_base", str)
    try:
        base = int(base, 0)
    except ValueError:
        raise MkdumpError(f"{path}: kernel_map_base in [elf] is {base!r}, not a number such as \"0xC0000000\"; "
                          "fix the file.") from None
    elf = Elf(elfclass=e.get("class", int), machine=e.get("machine", int),
              relocation_section=e.get("relocation_section", str), loader_function=e.get("loader_function", str),
              relocation_prefix=e.get("relocation_prefix", str), relocation_table=e.get("relocation_table", str),
              relocations_missing=_frozen(e.get("relocations_missing", dict, {}, required=False)),
              kernel_map_base=base, entry_symbol=e.get("entry_symbol", str))

    minik = top.table("minik")
    config = top.table("config")
    pae = config.table("pae", required=False)
    boot_test = top.table("boot_test")
    qemu = top.table("qemu")
    missing = [key for key in QEMU_KEYS if key not in qemu.data]
    if missing:
        raise MkdumpError(f"{path} [qemu] lacks {', '.join(missing)}: add them (the keys are described in its "
                          "comments).")
    for kind in QEMU_KINDS:
        qemu.table(kind, required=False)
    return Arch(
        name=name, path=str(path), default=top.get("default", bool, False, required=False),
        toolchain=_frozen(tc.data), elf=elf,
        mem_minus_mb=minik.get("mem_minus_mb", int), command_line_size=minik.get("command_line_size", int),
        config_says=_frozen(config.get("says", dict)),
        pae=Pae(pae.get("symbol", str), pae.get("default", bool)) if pae.data else None,
        syscalls=_frozen(boot_test.get("syscalls", dict)),
        module_refused_hint=boot_test.get("module_refused_hint", str, "", required=False),
        qemu=_frozen(qemu.data))


def _files(directory):
    return sorted(Path(directory).glob("*.toml"))


def load(name, directory=ARCH_DIR):
    """The Arch of kernel/arch/<name>.toml; MkdumpError for an arch without a file or a malformed file."""
    if not Path(directory).is_dir():
        raise MkdumpError(f"cannot read the arch files: {directory} is not a directory; restore kernel/arch/ from "
                          "the repository.")
    path = Path(directory) / f"{name}.toml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        known = ", ".join(p.stem for p in _files(directory)) or "none"
        raise MkdumpError(f"arch {name!r} is not described: {directory} has no {name}.toml (known arches: {known}); "
                          "use one of those or add its file.")
    return _parse(name, path)


def load_all(directory=ARCH_DIR):
    """Every arch, the default one first, then by name."""
    arches = [_parse(p.stem, p) for p in _files(directory)]
    defaults = [a.name for a in arches if a.default]
    if len(defaults) != 1:
        raise MkdumpError(f"exactly one file in {directory} must say `default = true` (the arch arch= defaults "
                          f"to); {'these do: ' + ', '.join(defaults) if defaults else 'none does'}. Fix them.")
    return sorted(arches, key=lambda a: (not a.default, a.name))


def names(directory=ARCH_DIR):
    """The arches present, the default one first, then by name."""
    return tuple(a.name for a in load_all(directory))


def default(directory=ARCH_DIR):
    return names(directory)[0]


def for_elf_machine(machine, directory=ARCH_DIR):
    """The arch whose [elf] machine is `machine` (an e_machine number), or None."""
    return next((a for a in load_all(directory) if a.elf.machine == machine), None)
