"""Checks on the built artifacts, so that a bad mkexec.ko or vmlinux.bin never reaches a machine.

Every check returns a `Check` whose one-line form says PASS/FAIL, what was checked and the figure behind the
verdict. The rules mirror what 2.6.9 itself does with the artifact (its module loader, its boot code), with the
kernel source line of each rule named in the comment next to it.
"""
import ast
import dataclasses
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf import enums as elf_enums
from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from mkdump import arch as arches
from mkdump.errors import MkdumpError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figure: str
    detail: str = ""

    def __str__(self):
        line = f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.figure}"
        return f"{line} -- {self.detail}" if self.detail else line

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Loader:
    """What the checks need of an arch's [elf] facts (mkdump.arch), with pyelftools' names filled in."""
    name: str
    elfclass: int
    machine: str             # pyelftools' name of the e_machine number
    # 2.6.9's loader calls apply_relocate() for SHT_REL and apply_relocate_add() for SHT_RELA sections; on each
    # arch only one of the two does anything, the other refuses every relocation.
    reloc_section: str
    loader_function: str
    reloc_prefix: str
    reloc_numbers: dict


_MACHINE_NAMES = {number: name for name, number in ENUM_E_MACHINE.items() if isinstance(number, int)}


def _arch(name):
    facts = arches.load(name)
    elf = facts.elf
    table = getattr(elf_enums, elf.relocation_table, None)
    if not isinstance(table, dict):
        raise MkdumpError(f"{facts.path}: relocation_table = {elf.relocation_table!r} is not a table of "
                          f"elftools.elf.enums; name one such as the ENUM_RELOC_TYPE_* of this arch.")
    numbers = {n: number for n, number in table.items() if isinstance(number, int)}
    numbers.update(elf.relocations_missing)
    return _Loader(name, elf.elfclass, _MACHINE_NAMES.get(elf.machine, str(elf.machine)), elf.relocation_section,
                   elf.loader_function, elf.relocation_prefix, numbers)


# --- C and assembler text -----------------------------------------------------------------------------------

def _strip_c(text):
    """The text with comments, string and character literals blanked, and `#if 0` blocks dropped."""
    # blanked, not removed, so that line structure (and `#` directives) survive
    text = re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    out, skipping, depth = [], False, 0
    for line in text.split("\n"):
        directive = line.strip()
        if skipping:
            if re.match(r"#\s*if", directive):
                depth += 1
            elif re.match(r"#\s*endif", directive):
                if depth == 0:
                    skipping = False
                else:
                    depth -= 1
            elif depth == 0 and re.match(r"#\s*(else|elif)", directive):
                skipping = False
            out.append("")
        elif re.match(r"#\s*if\s+0\b", directive):
            skipping, depth = True, 0
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def _function_body(text, name):
    """The brace-balanced body of the definition of `name` (not a prototype), or None."""
    for m in re.finditer(r"\b%s\s*\(" % re.escape(name), text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        rest = text[i:]
        opening = re.match(r"\s*\{", rest)
        if not opening:
            continue
        start = i + opening.end()
        depth, j = 1, start
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        return text[start:j - 1]
    return None


def loader_allowed_relocs(module_c_text, arch, *, source="module.c"):
    """{type number: name} of the relocations the arch's 2.6.9 module loader applies.

    Read from the `case R_...:` labels of the switch in the loader function (the arch file's [elf]
    loader_function) of our patched arch/<arch>/kernel/module.c; fall-through labels count too.
    """
    info = _arch(arch)
    body = _function_body(_strip_c(module_c_text), info.loader_function)
    if body is None:
        raise MkdumpError(f"{source} has no definition of {info.loader_function}(): pass the {arch} "
                          f"arch/{arch}/kernel/module.c of the system kernel tree.")
    switch = re.search(r"\bswitch\s*\(", body)
    names = re.findall(r"\bcase\s+(%s\w+)\s*:" % re.escape(info.reloc_prefix), body[switch.start():]
                       if switch else "")
    if not names:
        raise MkdumpError(f"{source}: {info.loader_function}() has no `case {info.reloc_prefix}...:` label; "
                          f"the loader's relocation switch is not where 2.6.9 has it, so check the patch series.")
    allowed = {}
    for name in names:
        if name not in info.reloc_numbers:
            raise MkdumpError(f"{source}: {info.loader_function}() names an unknown relocation {name}; "
                              f"check the patch that added it.")
        allowed[info.reloc_numbers[name]] = name
    return dict(sorted(allowed.items()))



def _eval_int(expr, defines, seen=()):
    """Value of a small integer expression over literals and #define'd names."""
    expr = re.sub(r"(0[xX][0-9a-fA-F]+|\b\d+)[uUlL]+\b", r"\1", expr.strip())

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in seen or node.id not in defines:
                raise KeyError(node.id)
            return _eval_int(defines[node.id], defines, seen + (node.id,))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
            v = value(node.operand)
            return {ast.USub: -v, ast.UAdd: v, ast.Invert: ~v}[type(node.op)]
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__, ast.LShift: int.__lshift__,
                   ast.RShift: int.__rshift__, ast.BitOr: int.__or__, ast.BitAnd: int.__and__}
            if type(node.op) in ops:
                return ops[type(node.op)](value(node.left), value(node.right))
        raise ValueError(ast.dump(node))

    return value(ast.parse(expr, mode="eval").body)


# Below 1 MiB lives real-mode memory, where head.S parks helpers such as the move routine (`ljmp ..., $0x1000`);
# a kernel is never loaded there, so far jumps below it are not the kernel entry.
_LOW_MEMORY = 0x100000


def head_s_load_address(head_s_text, *, defines=None, source="head.S"):
    """The physical address that arch/<arch>/boot/compressed/head.S jumps to after decompression.

    Every far jump (`ljmp $(SEG), $ADDR`) to 1 MiB or above is a jump into the kernel; they must agree.
    ADDR may be a literal, a small expression, or a name #define'd in the file (or given in `defines`, for
    names that come from headers).
    """
    text = _strip_c(head_s_text)
    table = dict(defines or {})
    code = []
    for line in text.split("\n"):
        m = re.match(r"\s*#\s*define\s+(\w+)\s+(.+?)\s*$", line)
        if m:
            table[m.group(1)] = m.group(2)
        elif not line.lstrip().startswith("#"):
            code.append(line.split("#", 1)[0])
    targets = {}
    for line in code:
        m = re.search(r"\bljmpl?\s+\$?(?:\([^)]*\)|[\w.]+)\s*,\s*\$?(.+?)\s*(?:;|$)", line)
        if not m:
            continue
        expr = m.group(1)
        try:
            targets.setdefault(_eval_int(expr, table), expr)
        except KeyError as e:
            raise MkdumpError(f"{source} jumps to {expr!r} but {e.args[0]} is not #define'd in it: pass its value "
                              f"in defines.") from None
        except (ValueError, SyntaxError):
            raise MkdumpError(f"{source} jumps to {expr!r}, which is not an address this checker can "
                              f"evaluate.") from None
    kernel = {addr: expr for addr, expr in targets.items() if addr >= _LOW_MEMORY}
    if not kernel:
        raise MkdumpError(f"{source} has no far jump (ljmp) to an address at or above 1 MiB: it is not the "
                          f"arch/<arch>/boot/compressed/head.S this checker knows; check the minik patch.")
    if len(kernel) > 1:
        listing = ", ".join(f"{e} = {a:#x}" for a, e in sorted(kernel.items()))
        raise MkdumpError(f"{source} jumps into the kernel at different addresses ({listing}); check the minik "
                          f"patch.")
    return next(iter(kernel))


# --- ELF reading --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Symbol:
    """One ELF symbol: `type` and `bind` by their names (STT_FUNC, STB_WEAK), `shndx` a section index or the name
    of a reserved one (SHN_UNDEF, SHN_ABS, SHN_COMMON)."""
    name: str
    value: int
    size: int
    type: str
    bind: str
    shndx: object


# Elf32_Sym and Elf64_Sym order their fields differently (the value and size come first in the 32-bit one).
_SYM_LAYOUTS = {32: ("IIIBBH", ("name", "value", "size", "info", "other", "shndx")),
                64: ("IBBHQQ", ("name", "info", "other", "shndx", "value", "size"))}
_TYPES = {v: k for k, v in elf_enums.ENUM_ST_INFO_TYPE.items() if isinstance(v, int)}
_BINDS = {v: k for k, v in elf_enums.ENUM_ST_INFO_BIND.items() if isinstance(v, int)}
_RESERVED = {v: k for k, v in elf_enums.ENUM_ST_SHNDX.items() if isinstance(v, int)}


def _decode_symbols(data, strtab, *, elfclass, little):
    """The symbols of a .symtab section's bytes, names from its string table. Decoded with struct: pyelftools'
    per-symbol parsing took 2.9 s of the check stage's 3.0 s on the system kernel's 50,000 symbols."""
    fmt, names = _SYM_LAYOUTS[elfclass]
    fmt = ("<" if little else ">") + fmt
    out = []
    for entry in struct.iter_unpack(fmt, data[:len(data) - len(data) % struct.calcsize(fmt)]):
        f = dict(zip(names, entry))
        start = f["name"]
        name = strtab[start:strtab.find(b"\0", start)].decode("utf-8", "replace") if start < len(strtab) else ""
        out.append(Symbol(name, f["value"], f["size"], _TYPES.get(f["info"] & 0xf, f["info"] & 0xf),
                          _BINDS.get(f["info"] >> 4, f["info"] >> 4), _RESERVED.get(f["shndx"], f["shndx"])))
    return out


class _Elf:
    """An open ELF file; use as a context manager (pyelftools reads lazily from the open file)."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.label = os.path.basename(self.path)
        try:
            self._file = open(self.path, "rb")
        except OSError as e:
            raise MkdumpError(f"Cannot read {self.path}: {e.strerror}; build it first.") from None
        try:
            self.elf = ELFFile(self._file)
            self.sections = list(self.elf.iter_sections())
            self.segments = [s for s in self.elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        except (ELFError, ValueError, OSError) as e:
            self._file.close()
            raise MkdumpError(f"{self.path} is not a readable ELF file ({e}); rebuild it.") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    @property
    def arch(self):
        machine = self.elf["e_machine"]
        return arches.for_elf_machine(ENUM_E_MACHINE.get(machine, machine) if isinstance(machine, str) else machine)

    def symbols(self):
        """Every entry of .symtab, the null symbol first, as `Symbol`s."""
        tables = [s for s in self.sections if isinstance(s, SymbolTableSection) and s["sh_type"] == "SHT_SYMTAB"]
        if not tables:
            raise MkdumpError(f"{self.path} has no symbol table (.symtab): build it unstripped.")
        table = tables[0]
        strtab = self.sections[table["sh_link"]].data() if table["sh_link"] < len(self.sections) else b""
        return _decode_symbols(table.data(), strtab, elfclass=self.elf.elfclass, little=self.elf.little_endian)

    def load_address(self, section):
        """Load address (LMA) of an allocated section, as BFD computes it from the program headers."""
        addr, size = section["sh_addr"], section["sh_size"]
        for seg in self.segments:
            if seg["p_vaddr"] <= addr and addr + size <= seg["p_vaddr"] + seg["p_memsz"] and (
                    section["sh_type"] == "SHT_NOBITS" or seg.section_in_segment(section)):
                return addr - seg["p_vaddr"] + seg["p_paddr"]
        return addr

    def virt_to_load(self, addr):
        for seg in self.segments:
            if seg["p_vaddr"] <= addr < seg["p_vaddr"] + max(seg["p_memsz"], 1):
                return addr - seg["p_vaddr"] + seg["p_paddr"]
        return addr

    def allocated(self, *, with_nobits=True):
        return [s for s in self.sections
                if s["sh_flags"] & 0x2 and s["sh_size"] and (with_nobits or s["sh_type"] != "SHT_NOBITS")]

    def physical(self, lma, kernel_map_base):
        if kernel_map_base is None:
            arch = self.arch
            kernel_map_base = arch.elf.kernel_map_base if arch else 0
        return lma - kernel_map_base if kernel_map_base and lma >= kernel_map_base else lma


# --- mkexec.ko ----------------------------------------------------------------------------------------------

def kernel_vermagic(*, release, smp, preempt, gcc_version, arch_tokens=()):
    """2.6.9's VERMAGIC_STRING (include/linux/vermagic.h): release, "SMP ", "preempt ", the arch's
    MODULE_ARCH_VERMAGIC tokens (such as a processor family, "REGPARM", "4KSTACKS"), then gcc-MAJOR.MINOR."""
    major_minor = ".".join(str(gcc_version).split(".")[:2])
    words = [release] + (["SMP"] if smp else []) + (["preempt"] if preempt else []) + list(arch_tokens)
    return " ".join(words) + f" gcc-{major_minor}"


def vmlinux_vermagic(vmlinux_path):
    """The vermagic string the system kernel's loader compares modules with: kernel/module.c's
    `static const char vermagic[] = VERMAGIC_STRING;`, read from vmlinux."""
    with _Elf(vmlinux_path) as f:
        found = [s for s in f.symbols() if s.name == "vermagic" and s.type == "STT_OBJECT" and isinstance(s.shndx, int)]
        if not found:
            raise MkdumpError(f"{f.path} has no vermagic object: build the system kernel with CONFIG_MODULES=y.")
        sym = found[0]
        section = f.sections[sym.shndx]
        start = sym.value - section["sh_addr"]
        return section.data()[start:start + sym.size].split(b"\0", 1)[0].decode("latin-1")


def kernel_exports(vmlinux_path, extra_module_paths=(), *, include_gpl_only=True):
    """Names exported by the system kernel (and by the given modules) through EXPORT_SYMBOL*.

    2.6.9's EXPORT_SYMBOL(x) defines the object __ksymtab_x in section __ksymtab (__ksymtab_gpl for
    EXPORT_SYMBOL_GPL); reading those symbols works for vmlinux and for relocatable modules alike.
    """
    sections = ("__ksymtab", "__ksymtab_gpl") if include_gpl_only else ("__ksymtab",)
    names = set()
    for path in (vmlinux_path, *extra_module_paths):
        with _Elf(path) as f:
            for sym in f.symbols():
                if (isinstance(sym.shndx, int) and f.sections[sym.shndx].name in sections
                        and sym.name.startswith("__ksymtab_")):
                    names.add(sym.name[len("__ksymtab_"):])
    return names


def _modinfo(f):
    section = f.elf.get_section_by_name(".modinfo")
    if section is None:
        return None
    info = {}
    for entry in section.data().split(b"\0"):
        key, eq, value = entry.decode("latin-1").partition("=")
        if eq:
            info.setdefault(key, value)   # 2.6.9's get_modinfo() returns the first match
    return info


def module_release(ko_path):
    """The kernel release a module was built for: the first word of its vermagic (check made sure that it is the
    system kernel's), so what is published in out/ is enough to install it."""
    with _Elf(ko_path) as f:
        words = ((_modinfo(f) or {}).get("vermagic") or "").split()
    if not words:
        raise MkdumpError(f"{ko_path} has no vermagic in .modinfo, so its kernel release is unknown; build it again.")
    return words[0]


def _license_gpl_ok(license):
    # kernel/module.c license_is_gpl_compatible()
    return license in ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MPL/GPL")


def check_module(ko_path, *, arch, vermagic, allowed_relocs, exports, gpl_only=()):
    """Checks that 2.6.9's loader (kernel/module.c load_module) will accept the module.

    `gpl_only`: exported names that only GPL-compatible modules may use (EXPORT_SYMBOL_GPL).
    """
    info = _arch(arch)
    checks = []
    with _Elf(ko_path) as f:
        name = f.label
        header = f.elf.header
        actual = f"{f.elf.elfclass}-bit {header['e_type']} {header['e_machine']}"
        wanted = f"{info.elfclass}-bit ET_REL {info.machine}"
        checks.append(Check(f"{name} ELF type", actual == wanted, actual,
                            "" if actual == wanted else f"the {arch} loader wants {wanted}"))

        modinfo = _modinfo(f)
        if modinfo is None:
            checks.append(Check(f"{name} license", False, "no .modinfo section", "build it with kbuild (modpost)"))
            checks.append(Check(f"{name} vermagic", False, "no .modinfo section", f"expected {vermagic!r}"))
            license = None
        else:
            license = modinfo.get("license")
            checks.append(Check(f"{name} license", license is not None,
                                f"license={license}" if license is not None else "no license= in .modinfo",
                                "" if license is not None else "add MODULE_LICENSE"))
            got = modinfo.get("vermagic")
            checks.append(Check(f"{name} vermagic", got == vermagic,
                                f"vermagic={got!r}" if got is not None else "no vermagic= in .modinfo",
                                "" if got == vermagic else f"the system kernel's is {vermagic!r}"))

        checks.append(_check_relocations(f, info, allowed_relocs))
        symbols = f.symbols()
        checks.append(_check_undefined(f, symbols, exports, set(gpl_only), license))
        defined = {s.name for s in symbols if s.shndx != "SHN_UNDEF"}
        missing = [n for n in ("init_module", "cleanup_module") if n not in defined]
        checks.append(Check(f"{name} entry points", not missing,
                            "init_module, cleanup_module defined" if not missing
                            else f"missing {', '.join(missing)}",
                            "" if not missing else "use module_init()/module_exit()"))
    return checks


def _check_relocations(f, info, allowed):
    counts, wrong_kind, refused, ignored = Counter(), [], [], 0
    symtab_cache = {}
    for sec in f.sections:
        if not isinstance(sec, RelocationSection):
            continue
        target = f.sections[sec["sh_info"]] if sec["sh_info"] < len(f.sections) else None
        # kernel/module.c: "Don't bother with non-allocated sections"
        if target is None or not target["sh_flags"] & 0x2:
            ignored += sec.num_relocations()
            continue
        if sec["sh_type"] != info.reloc_section:
            wrong_kind.append(sec.name)
            continue
        symtab = symtab_cache.setdefault(sec["sh_link"], f.elf.get_section(sec["sh_link"]))
        for rel in sec.iter_relocations():
            kind = rel["r_info_type"]
            counts[kind] += 1
            if kind not in allowed:
                sym = symtab.get_symbol(rel["r_info_sym"]).name if rel["r_info_sym"] else ""
                refused.append((kind, f"{target.name}+{rel['r_offset']:#x}" + (f" ({sym})" if sym else "")))
    total = sum(counts.values())
    types = "{" + ",".join(str(t) for t in sorted(counts)) + "}"
    label = f"{f.label} relocations"
    if wrong_kind:
        return Check(label, False, f"{', '.join(wrong_kind)} are not {info.reloc_section}",
                     f"2.6.9's {info.loader_function}() is the only {info.machine} relocation routine; "
                     f"the other refuses every entry")
    if refused:
        by_type = Counter(k for k, _ in refused)
        names = {v: n for n, v in info.reloc_numbers.items()}
        listing = ", ".join(f"{k} ({names.get(k, '?')}) x{n}" for k, n in sorted(by_type.items()))
        return Check(label, False, f"{len(refused)} of {total} relocations refused: {listing}",
                     f"first at {refused[0][1]}; the loader accepts {sorted(allowed)}")
    detail = f"{ignored} in non-allocated sections skipped by the loader" if ignored else ""
    return Check(label, True, f"{total} relocations, types {types}", detail)


def _check_undefined(f, symbols, exports, gpl_only, license):
    undefined, missing, common = [], [], []
    for sym in symbols[1:]:
        if sym.shndx == "SHN_COMMON":
            common.append(sym.name)
        elif sym.shndx == "SHN_UNDEF" and sym.name:
            undefined.append(sym.name)
            usable = sym.name in exports and (sym.name not in gpl_only or _license_gpl_ok(license))
            # kernel/module.c simplify_symbols(): an unresolved weak symbol is fine
            if not usable and sym.bind != "STB_WEAK":
                missing.append(sym.name)
    label = f"{f.label} undefined symbols"
    if common:
        return Check(label, False, f"{len(common)} common symbols: {', '.join(sorted(common))}",
                     "2.6.9 refuses them: compile with -fno-common")
    if missing:
        return Check(label, False, f"{len(missing)} of {len(undefined)} not exported by the system kernel: "
                     f"{', '.join(sorted(missing))}",
                     "GPL-only exports need a GPL-compatible license" if set(missing) & gpl_only else "")
    return Check(label, True, f"{len(undefined)} undefined, all exported by the system kernel")


def module_versions(ko_path):
    """{symbol: crc} of a module's __versions section, which modpost writes when the kernel has MODVERSIONS.

    2.6.9's struct modversion_info is { unsigned long crc; char name[64 - sizeof(unsigned long)]; }: 64 bytes
    per entry on every arch. None when the module has no such section (built without symbol versions).
    """
    with _Elf(ko_path) as f:
        section = f.elf.get_section_by_name("__versions")
        if section is None:
            return None
        word = f.elf.elfclass // 8
        little = f.elf.little_endian
        data = section.data()
    versions = {}
    for i in range(0, len(data) - 63, 64):
        # genksyms CRCs are 32 bits wide; an unsigned long holds them zero-extended.
        crc = int.from_bytes(data[i:i + word], "little" if little else "big") & 0xffffffff
        name = data[i + word:i + 64].split(b"\0", 1)[0].decode("latin-1")
        if name:
            versions[name] = crc
    return versions


def kernel_crcs(vmlinux_path, module_symvers=None):
    """{symbol: crc} the system kernel's loader checks against: vmlinux's absolute __crc_<symbol> symbols (what
    EXPORT_SYMBOL writes under MODVERSIONS), and the module exports Module.symvers lists."""
    crcs = {}
    with _Elf(vmlinux_path) as f:
        for sym in f.symbols():
            if sym.name.startswith("__crc_") and sym.shndx == "SHN_ABS":
                crcs[sym.name[len("__crc_"):]] = sym.value & 0xffffffff
    if module_symvers is not None and os.path.isfile(module_symvers):
        with open(module_symvers, encoding="latin-1") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] != "vmlinux":
                    crcs.setdefault(fields[1], int(fields[0], 16))
    return crcs


def check_versions(ko_path, *, crcs, modversions):
    """2.6.9's check_version(): a kernel with MODVERSIONS compares the CRC the module carries for each symbol it
    uses with its own and refuses the module on a difference ("disagrees about version of symbol"); a module
    that carries none only taints it. Refused here, at build time, naming the symbols."""
    label = f"{os.path.basename(ko_path)} symbol versions"
    carried = module_versions(ko_path)
    if not modversions:
        return Check(label, True, "the system kernel has no MODVERSIONS: none needed")
    if not carried:
        return Check(label, False, "no __versions section",
                     "the system kernel has MODVERSIONS: build the module against its tree after `make modules` "
                     "(Module.symvers)")
    wrong = sorted(n for n, crc in carried.items() if n in crcs and crcs[n] != crc)
    unknown = sorted(n for n in carried if n not in crcs)
    if wrong:
        return Check(label, False, f"{len(wrong)} of {len(carried)} differ from the system kernel's: "
                     + ", ".join(f"{n} (module 0x{carried[n]:08x}, kernel 0x{crcs[n]:08x})" for n in wrong),
                     "the loader refuses it: rebuild mkexec.ko against this kernel's tree")
    if unknown:
        return Check(label, False, f"{len(unknown)} of {len(carried)} have no CRC in the system kernel: "
                     + ", ".join(unknown), "rebuild mkexec.ko against this kernel's tree")
    return Check(label, True, f"{len(carried)} CRCs, all equal to the system kernel's")


# --- mini kernel --------------------------------------------------------------------------------------------

_CHUNK = 1 << 16


def _first_difference(a, b):
    """Index of the first differing byte, or of the end of the shorter one; None when equal."""
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        x, y = a[i:min(i + 4096, n)], b[i:min(i + 4096, n)]
        if x != y:
            return i + next(j for j, (p, q) in enumerate(zip(x, y)) if p != q)
    return None if len(a) == len(b) else n


def check_vmlinux_bin(vmlinux_path, bin_path, *, removed=(".note", ".comment")):
    """vmlinux.bin is `objcopy -O binary -R .note -R .comment -S vmlinux`: every allocated section with contents,
    at its load address relative to the lowest one, gaps zero-filled."""
    bin_path = os.fspath(bin_path)
    label = f"{os.path.basename(bin_path)} image"
    with _Elf(vmlinux_path) as f:
        sections = sorted(((f.load_address(s), s) for s in f.allocated(with_nobits=False)
                           if s.name not in removed), key=lambda t: t[0])
        if not sections:
            raise MkdumpError(f"{f.path} has no allocated sections with contents: it is not a kernel image.")
        start = sections[0][0]
        length = max(lma + s["sh_size"] for lma, s in sections) - start
        try:
            out = open(bin_path, "rb")
        except OSError as e:
            raise MkdumpError(f"Cannot read {bin_path}: {e.strerror}; build it first.") from None
        with out:
            size = os.fstat(out.fileno()).st_size
            regions, pos = [], 0
            for lma, s in sections:
                offset = lma - start
                if offset > pos:
                    regions.append((pos, offset - pos, None, f"the gap before {s.name}"))
                regions.append((offset, s["sh_size"], s, s.name))
                pos = max(pos, offset + s["sh_size"])
            for offset, rlen, sec, where in regions:
                data = sec.data() if sec is not None else None
                for i in range(0, rlen, _CHUNK):
                    want = data[i:i + _CHUNK] if data is not None else bytes(min(_CHUNK, rlen - i))
                    out.seek(offset + i)
                    got = out.read(len(want))
                    d = _first_difference(want, got)
                    if d is not None:
                        at = offset + i + d
                        return Check(label, False, f"differs from {f.label} at offset {at:#x} ({where})",
                                     f"{size} bytes, expected {length}")
    if size != length:
        return Check(label, False, f"{size} bytes, expected {length}",
                     f"first {min(size, length)} bytes match; the file has extra bytes at offset {length:#x}")
    return Check(label, True, f"{size} bytes, identical to {f.label}'s sections at load addresses "
                 f"from {start:#x}")


# README.mkdump's own mini kernel: on 8 MiB it reported "Memory: 5724k/8192k available (1080k kernel code,
# 2040k reserved, 432k data, 140k init)", loaded at 1 MiB, and the README says 4 MiB "is enough". So on 4 MiB
# it had at most 4096k - 1024k - 2040k = 1032k free above the pages it reserved (its image, bss and boot-time
# tables). We require the same: load address + our image footprint + that free memory fits in minik_mem.
README_SMALLEST_MIB = 4
README_LOAD_KIB = 1024
README_RESERVED_KIB = 2040
RUNTIME_RESERVE_KIB = README_SMALLEST_MIB * 1024 - README_LOAD_KIB - README_RESERVED_KIB


def _breakdown(sections):
    parts = Counter()
    for s in sections:
        if s.name.startswith(".init") or s.name.startswith(".exit"):
            parts["init"] += s["sh_size"]
        elif s["sh_type"] == "SHT_NOBITS":
            parts["bss"] += s["sh_size"]
        elif s["sh_flags"] & 0x4:
            parts["code"] += s["sh_size"]
        else:
            parts["data"] += s["sh_size"]
    return ", ".join(f"{parts[k] // 1024}k {k}" for k in ("code", "data", "init", "bss"))


def check_footprint(vmlinux_path, *, minik_mem_mb, reserve_kib=RUNTIME_RESERVE_KIB, kernel_map_base=None):
    """The image's whole memory span (text, data, init, bss), from physical address 0 through its end, plus the
    README-derived free memory `reserve_kib`, fits in minik_mem_mb."""
    if not isinstance(minik_mem_mb, int) or minik_mem_mb <= 0 or minik_mem_mb % 4:
        raise MkdumpError(f"minik_mem={minik_mem_mb!r} is not a positive multiple of 4 (MB): use 4 or 8.")
    with _Elf(vmlinux_path) as f:
        sections = f.allocated()
        if not sections:
            raise MkdumpError(f"{f.path} has no allocated sections: it is not a kernel image.")
        spans = [(f.load_address(s), f.load_address(s) + s["sh_size"]) for s in sections]
        start = f.physical(min(a for a, _ in spans), kernel_map_base)
        end = f.physical(max(b for _, b in spans), kernel_map_base)
        label = f"{f.label} footprint"
        breakdown = _breakdown(sections)
    page = 4096
    end = (end + page - 1) // page * page
    need_kib = end // 1024 + reserve_kib
    have_kib = minik_mem_mb * 1024
    figure = (f"{start // 1024}k below load + {(end - start) // 1024}k image + {reserve_kib}k free "
              f"= {need_kib}k {'<=' if need_kib <= have_kib else '>'} {have_kib}k (minik_mem={minik_mem_mb})")
    detail = f"image {start:#x}-{end:#x}: {breakdown}"
    if need_kib > have_kib:
        detail += f"; use minik_mem={-(-need_kib // 4096) * 4} or shrink the mini kernel config"
    return Check(label, need_kib <= have_kib, figure, detail)


def check_load_address(vmlinux_path, expected, *, entry_symbol, kernel_map_base=None):
    """vmlinux's image starts at the physical address head.S jumps to, and the startup code is its first byte.

    The ELF entry point is no guide (see entry_symbol in the arch files); the decompressor jumps to the image
    start, where arch/<arch>/kernel/head.S puts the entry symbol.
    """
    with _Elf(vmlinux_path) as f:
        loaded = f.allocated(with_nobits=False)
        if not loaded:
            raise MkdumpError(f"{f.path} has no allocated sections with contents: it is not a kernel image.")
        start = f.physical(min(f.load_address(s) for s in loaded), kernel_map_base)
        entries = [s for s in f.symbols() if s.name == entry_symbol and s.shndx != "SHN_UNDEF"]
        entry = f.physical(f.virt_to_load(entries[0].value), kernel_map_base) if entries else None
        label = f"{f.label} load address"
    where = f"{entry:#x}" if entry is not None else "missing"
    ok = start == expected and entry == expected
    figure = f"image at {start:#x}, {entry_symbol} at {where}, head.S jumps to {expected:#x}"
    if start != expected:
        detail = "the image would be loaded at the wrong place"
    elif entry is None:
        detail = f"no symbol {entry_symbol}: cannot tell where the startup code is"
    else:
        detail = "" if ok else f"the jump would not land on {entry_symbol}"
    return Check(label, ok, figure, detail)


# What README.mkdump asks of a mini kernel ("must not SMP, must not SWAP, not NETWORK, no filesystem need") and
# the mkdump authors' config (MODULES off), as symbols that exist only when the feature is built in. Not
# sock_init: net/nonet.c defines it without CONFIG_NET.
DEFAULT_CONSTRAINTS = {
    "no SMP boot code": ("smp_boot_cpus", "do_boot_cpu", "start_secondary", "__cpu_up"),
    "no socket layer": ("sys_socket", "sock_create", "sys_socketcall"),
    "no swap": ("sys_swapon", "sys_swapoff", "swap_writepage"),
    "no module loader": ("sys_init_module", "load_module", "module_alloc"),
    "no disk filesystem": ("ext2_fill_super", "ext3_fill_super", "journal_init_dev", "reiserfs_fill_super",
                           "jfs_fill_super", "linvfs_fill_super", "minix_fill_super", "romfs_fill_super",
                           "isofs_fill_super", "udf_fill_super", "fat_fill_super", "ntfs_fill_super"),
}


def check_constraints(vmlinux_path, *, rules=None, stubs=("sys_ni_syscall",)):
    """One check per constraint: none of its symbols is defined in vmlinux.

    A symbol at the address of a stub does not count: 2.6.9's cond_syscall() makes sys_socket, sys_swapon,
    sys_init_module, ... weak aliases of sys_ni_syscall when the feature is off. GCC clones (name.isra.0,
    name.constprop.0) count as the function itself.
    """
    rules = DEFAULT_CONSTRAINTS if rules is None else rules
    with _Elf(vmlinux_path) as f:
        label = f.label
        symbols = [s for s in f.symbols()[1:] if s.shndx not in ("SHN_UNDEF", "SHN_ABS")
                   and s.type in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")]
    stub_values = {s.value for s in symbols if s.name in stubs}
    found = {}
    for s in symbols:
        base = s.name.split(".", 1)[0]
        if s.value not in stub_values:
            found.setdefault(base, s)
    checks = []
    for constraint, names in rules.items():
        hits = [found[n] for n in names if n in found]
        if hits:
            first = hits[0]
            figure = (f"symbol {first.name} ({first.type[4:]} at {first.value:#x}) "
                      f"betrays a violation")
            others = ", ".join(h.name for h in hits[1:])
            checks.append(Check(f"{label} {constraint}", False, figure, f"also {others}" if others else ""))
        else:
            checks.append(Check(f"{label} {constraint}", True, f"none of {len(names)} symbols defined",
                                ", ".join(names)))
    return checks
