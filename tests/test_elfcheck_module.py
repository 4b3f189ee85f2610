"""mkexec.ko checks on fake modules built with gcc for x86_64 and i386."""
import pytest

from mkdump import elfcheck
from mkdump.errors import MkdumpError
from support import elf_fixtures
from test_elfcheck_text import I386_MODULE_C, X86_64_MODULE_C

ARCHES = ["x86_64", "i386"]
LOADERS = {"x86_64": X86_64_MODULE_C, "i386": I386_MODULE_C}
VERMAGIC = "2.6.9 gcc-12.2"


class Kernels(dict):
    """Per arch, built on first use: a system kernel image exporting printk and kmalloc, and kmalloc_gpl to
    GPL-compatible modules only."""

    def __init__(self, factory):
        super().__init__()
        self.factory = factory

    def __missing__(self, arch):
        elf_fixtures.require_toolchain(arch)
        self[arch] = elf_fixtures.build_image(self.factory.mktemp(f"kernel-{arch}"), arch,
                                              exports=("printk", "kmalloc"), gpl_exports=("kmalloc_gpl",))
        return self[arch]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    return Kernels(tmp_path_factory)


def run(tmp_path, arch, kernel, **module_args):
    ko = elf_fixtures.build_module(tmp_path, arch, **module_args)
    exports = elfcheck.kernel_exports(kernel[arch])
    gpl_only = exports - elfcheck.kernel_exports(kernel[arch], include_gpl_only=False)
    checks = elfcheck.check_module(ko, arch=arch, vermagic=VERMAGIC,
                                   allowed_relocs=elfcheck.loader_allowed_relocs(LOADERS[arch], arch),
                                   exports=exports, gpl_only=gpl_only)
    return {c.name.split(" ", 1)[1]: c for c in checks}


@pytest.mark.parametrize("arch", ARCHES)
def test_good_module_passes_every_check(tmp_path, arch, kernel):
    checks = run(tmp_path, arch, kernel)
    assert list(checks) == ["ELF type", "license", "vermagic", "relocations", "undefined symbols", "entry points"]
    assert all(c.ok for c in checks.values()), [str(c) for c in checks.values()]
    assert str(checks["relocations"]).startswith("PASS mkexec.ko relocations: ")


def test_kernel_exports_reads_ksymtab_and_gpl(kernel):
    assert elfcheck.kernel_exports(kernel["x86_64"]) == {"printk", "kmalloc", "kmalloc_gpl"}
    assert elfcheck.kernel_exports(kernel["i386"], include_gpl_only=False) == {"printk", "kmalloc"}


@pytest.mark.parametrize("arch", ARCHES)
def test_vmlinux_vermagic_is_what_modules_must_carry(tmp_path, arch):
    magic = elfcheck.kernel_vermagic(release="2.6.9", smp=False, preempt=False, gcc_version="12.2",
                                     arch_tokens=("686",) if arch == "i386" else ())
    elf_fixtures.require_toolchain(arch)
    vmlinux = elf_fixtures.build_image(tmp_path, arch, vermagic=magic)
    assert elfcheck.vmlinux_vermagic(vmlinux) == magic


def test_vmlinux_without_module_support_has_no_vermagic(kernel):
    with pytest.raises(MkdumpError, match="CONFIG_MODULES=y"):
        elfcheck.vmlinux_vermagic(kernel["x86_64"])


def test_kernel_exports_from_extra_modules(tmp_path, kernel):
    body = elf_fixtures.MODULE_BODY + """
struct kernel_symbol { unsigned long value; const char *name; };
int helper_api(void) { return 1; }
static const char __kstrtab_helper_api[] __attribute__((section("__ksymtab_strings"))) = "helper_api";
const struct kernel_symbol __ksymtab_helper_api __attribute__((section("__ksymtab")))
    = { (unsigned long)&helper_api, __kstrtab_helper_api };
"""
    other = elf_fixtures.build_module(tmp_path, "x86_64", name="helper", body=body)
    assert elfcheck.kernel_exports(kernel["x86_64"], [other]) == {"printk", "kmalloc", "kmalloc_gpl",
                                                                   "helper_api"}


def test_x86_64_relocation_types_from_gcc(tmp_path, kernel):
    figure = run(tmp_path, "x86_64", kernel)["relocations"].figure
    # 64 (table), PC32 (store), PLT32 (call, binutils >= 2.31), 32S (address of static data)
    assert "types {1,2,4,11}" in figure


def test_x86_64_stock_loader_refuses_plt32(tmp_path, kernel):
    ko = elf_fixtures.build_module(tmp_path, "x86_64")
    stock = elfcheck.loader_allowed_relocs(X86_64_MODULE_C.replace("case R_X86_64_PLT32:", ""), "x86_64")
    checks = elfcheck.check_module(ko, arch="x86_64", vermagic=VERMAGIC, allowed_relocs=stock,
                                   exports=elfcheck.kernel_exports(kernel["x86_64"]))
    reloc = checks[3]
    assert not reloc.ok
    assert "4 (R_X86_64_PLT32) x1" in reloc.figure and "(printk)" in reloc.detail


def test_x86_64_fno_plt_gotpcrelx_is_refused(tmp_path, kernel):
    check = run(tmp_path, "x86_64", kernel, cflags=["-fno-plt"])["relocations"]
    assert not check.ok
    assert "41 (R_X86_64_GOTPCRELX)" in check.figure


def test_x86_64_rex_gotpcrelx_from_assembler_is_refused(tmp_path, kernel):
    asm = ".text\n.globl load_ptr\nload_ptr:\n\tmovq printk@GOTPCREL(%rip), %rax\n\tret\n"
    check = run(tmp_path, "x86_64", kernel, asm=asm)["relocations"]
    assert not check.ok
    assert "42 (R_X86_64_REX_GOTPCRELX) x1" in check.figure and "(printk)" in check.detail


def test_i386_plt32_from_assembler_is_refused(tmp_path, kernel):
    asm = ".text\n.globl call_it\ncall_it:\n\tcall printk@PLT\n\tret\n"
    check = run(tmp_path, "i386", kernel, asm=asm)["relocations"]
    assert not check.ok
    assert "4 (R_386_PLT32) x1" in check.figure


def test_relocations_of_non_allocated_sections_are_skipped_like_the_loader(tmp_path, kernel):
    asm = '.section .debug_fake,"",@progbits\n\t.quad printk@GOTPCREL\n'
    check = run(tmp_path, "x86_64", kernel, asm=asm)["relocations"]
    assert check.ok, str(check)
    assert "1 in non-allocated sections skipped" in check.detail


def test_i386_rela_section_is_refused(tmp_path, kernel):
    ko = elf_fixtures.build_module(tmp_path, "i386")
    elf_fixtures.retype_section(ko, ".rel.text", 4, 12)   # SHT_RELA, Elf32_Rela
    checks = elfcheck.check_module(ko, arch="i386", vermagic=VERMAGIC,
                                   allowed_relocs=elfcheck.loader_allowed_relocs(I386_MODULE_C, "i386"),
                                   exports=elfcheck.kernel_exports(kernel["i386"]))
    assert not checks[3].ok
    assert ".rel.text are not SHT_REL" in checks[3].figure


def test_wrong_class_and_machine(tmp_path, kernel):
    ko = elf_fixtures.build_module(tmp_path, "i386")
    checks = elfcheck.check_module(ko, arch="x86_64", vermagic=VERMAGIC,
                                   allowed_relocs=elfcheck.loader_allowed_relocs(X86_64_MODULE_C, "x86_64"),
                                   exports=elfcheck.kernel_exports(kernel["x86_64"]))
    assert not checks[0].ok
    assert checks[0].figure == "32-bit ET_REL EM_386"
    assert "64-bit ET_REL EM_X86_64" in checks[0].detail


def test_linked_executable_is_not_a_module(kernel):
    checks = elfcheck.check_module(kernel["x86_64"], arch="x86_64", vermagic=VERMAGIC,
                                   allowed_relocs={2: "R_X86_64_PC32"}, exports=set())
    assert not checks[0].ok and "ET_EXEC" in checks[0].figure


@pytest.mark.parametrize("arch", ARCHES)
def test_vermagic_mismatch(tmp_path, arch, kernel):
    check = run(tmp_path, arch, kernel, vermagic="2.6.9 SMP gcc-3.4")["vermagic"]
    assert not check.ok
    assert "'2.6.9 SMP gcc-3.4'" in check.figure and VERMAGIC in check.detail


def test_missing_license(tmp_path, kernel):
    checks = run(tmp_path, "x86_64", kernel, license=None)
    assert not checks["license"].ok and checks["vermagic"].ok


def test_missing_modinfo(tmp_path, kernel):
    checks = run(tmp_path, "i386", kernel, modinfo=False)
    assert not checks["license"].ok and not checks["vermagic"].ok
    assert "no .modinfo" in checks["vermagic"].figure


@pytest.mark.parametrize("arch", ARCHES)
def test_unexported_symbols_are_named(tmp_path, arch, kernel):
    body = elf_fixtures.MODULE_BODY + "extern int mystery(void); extern int enigma(void);\n" \
        "int use_them(void) { return mystery() + enigma(); }\n"
    check = run(tmp_path, arch, kernel, body=body)["undefined symbols"]
    assert not check.ok
    assert check.figure == "2 of 4 not exported by the system kernel: enigma, mystery"


def test_weak_undefined_symbol_is_accepted(tmp_path, kernel):
    body = elf_fixtures.MODULE_BODY + "extern int optional_hook(void) __attribute__((weak));\n" \
        "int maybe(void) { return optional_hook ? optional_hook() : 0; }\n"
    check = run(tmp_path, "x86_64", kernel, body=body)["undefined symbols"]
    assert check.ok, str(check)
    assert check.figure.startswith("3 undefined")


def test_gpl_only_export_needs_gpl_license(tmp_path, kernel):
    body = elf_fixtures.MODULE_BODY + "extern int kmalloc_gpl(void);\nint g(void) { return kmalloc_gpl(); }\n"
    assert run(tmp_path / "gpl", "i386", kernel, body=body)["undefined symbols"].ok
    check = run(tmp_path, "i386", kernel, body=body, license="Proprietary")["undefined symbols"]
    assert not check.ok
    assert "kmalloc_gpl" in check.figure and "GPL-compatible" in check.detail


def test_common_symbol_is_refused(tmp_path, kernel):
    body = elf_fixtures.MODULE_BODY + "int shared_counter;\nint bump(void) { return ++shared_counter; }\n"
    check = run(tmp_path, "x86_64", kernel, body=body, cflags=["-fcommon"])["undefined symbols"]
    assert not check.ok
    assert "shared_counter" in check.figure and "-fno-common" in check.detail


def test_missing_entry_points(tmp_path, kernel):
    body = elf_fixtures.MODULE_BODY.replace('void cleanup_module(void) __attribute__((alias("mkexec_exit")));',
                                            "void keep(void) { mkexec_exit(); }")
    check = run(tmp_path, "x86_64", kernel, body=body)["entry points"]
    assert not check.ok and check.figure == "missing cleanup_module"


def test_not_elf_and_missing_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.ko"
    junk.write_bytes(b"not an elf file at all" * 4)
    with pytest.raises(MkdumpError, match="junk.ko"):
        elfcheck.check_module(junk, arch="x86_64", vermagic=VERMAGIC, allowed_relocs={}, exports=set())
    with pytest.raises(MkdumpError, match="absent.ko"):
        elfcheck.kernel_exports(tmp_path / "absent.ko")


def test_module_release_is_the_first_word_of_vermagic(tmp_path):
    elf_fixtures.require_toolchain("x86_64")
    ko = elf_fixtures.build_module(tmp_path / "a", "x86_64", vermagic="2.6.9-mk1 gcc-12.2")
    assert elfcheck.module_release(ko) == "2.6.9-mk1"
    bare = elf_fixtures.build_module(tmp_path / "b", "x86_64", modinfo=False)
    with pytest.raises(MkdumpError, match="no vermagic"):
        elfcheck.module_release(bare)


# -- symbol versions (MODVERSIONS) ---------------------------------------------------------------------------

VERSIONS_C = """
struct modversion_info {{ unsigned long crc; char name[64 - sizeof(unsigned long)]; }};
static const struct modversion_info ____versions[] __attribute__((used, section("__versions"))) = {{
{entries}
}};
"""


def crc_kernel(tmp_path, arch, crcs):
    """An object whose symbol table holds absolute __crc_<name> symbols, as vmlinux does under MODVERSIONS."""
    src = tmp_path / "crcs.S"
    src.write_text("".join(f".globl __crc_{n}\n.set __crc_{n}, {crc:#x}\n" for n, crc in crcs.items()))
    obj = tmp_path / "crcs.o"
    elf_fixtures._run(["gcc", *elf_fixtures.ARCH_FLAGS[arch]["cflags"], *elf_fixtures.COMMON_CFLAGS, "-c", "-o",
                       obj, src])
    return obj


def versioned_module(tmp_path, arch, versions):
    entries = ",\n".join(f'{{ {crc:#x}UL, "{name}" }}' for name, crc in versions.items())
    return elf_fixtures.build_module(tmp_path, arch, body=elf_fixtures.MODULE_BODY + VERSIONS_C.format(entries=entries))


@pytest.mark.parametrize("arch", ARCHES)
def test_module_versions_are_read_per_arch(tmp_path, arch):
    elf_fixtures.require_toolchain(arch)
    ko = versioned_module(tmp_path, arch, {"printk": 0x1b7d4074, "struct_module": 0xdeadbeef})
    assert elfcheck.module_versions(ko) == {"printk": 0x1b7d4074, "struct_module": 0xdeadbeef}
    assert elfcheck.module_versions(elf_fixtures.build_module(tmp_path / "plain", arch)) is None


@pytest.mark.parametrize("arch", ARCHES)
def test_crcs_are_checked_against_the_kernel_and_a_difference_names_the_symbol(tmp_path, arch):
    elf_fixtures.require_toolchain(arch)
    crcs = elfcheck.kernel_crcs(crc_kernel(tmp_path, arch, {"printk": 0x1b7d4074, "kmalloc": 0x93d4cfe6,
                                                            "struct_module": 0xdeadbeef}))
    assert crcs == {"printk": 0x1b7d4074, "kmalloc": 0x93d4cfe6, "struct_module": 0xdeadbeef}
    good = versioned_module(tmp_path / "good", arch, {"printk": 0x1b7d4074, "struct_module": 0xdeadbeef})
    check = elfcheck.check_versions(good, crcs=crcs, modversions=True)
    assert check.ok and check.figure == "2 CRCs, all equal to the system kernel's"
    bad = versioned_module(tmp_path / "bad", arch, {"printk": 0x1b7d4075, "struct_module": 0xdeadbeef})
    check = elfcheck.check_versions(bad, crcs=crcs, modversions=True)
    assert not check.ok
    assert check.figure == "1 of 2 differ from the system kernel's: printk (module 0x1b7d4075, kernel 0x1b7d4074)"
    unknown = versioned_module(tmp_path / "unknown", arch, {"vmalloc": 1})
    assert "have no CRC in the system kernel: vmalloc" in elfcheck.check_versions(unknown, crcs=crcs,
                                                                                   modversions=True).figure


def test_a_module_without_versions_fails_only_against_a_modversions_kernel(tmp_path):
    elf_fixtures.require_toolchain("x86_64")
    plain = elf_fixtures.build_module(tmp_path, "x86_64")
    assert elfcheck.check_versions(plain, crcs={}, modversions=False).ok
    check = elfcheck.check_versions(plain, crcs={"printk": 1}, modversions=True)
    assert not check.ok and check.figure == "no __versions section"


def test_module_symvers_adds_what_modules_export(tmp_path):
    elf_fixtures.require_toolchain("x86_64")
    symvers = tmp_path / "Module.symvers"
    symvers.write_text("0x1b7d4074\tprintk\tvmlinux\n0x0badcafe\tscsi_add_host\tdrivers/scsi/scsi_mod\n")
    crcs = elfcheck.kernel_crcs(crc_kernel(tmp_path, "x86_64", {"printk": 0x1b7d4074}), symvers)
    assert crcs == {"printk": 0x1b7d4074, "scsi_add_host": 0x0badcafe}


SYMBOLS_C = """
int common_one;
int data_one = 1;
static int local_one;
__attribute__((weak)) int weak_one(void) { return local_one; }
extern int undefined_one(void);
int func_one(void) { return undefined_one() + data_one; }
asm(".globl absolute_one\\n.set absolute_one, 0x1234");
"""


@pytest.mark.parametrize("arch", ARCHES)
def test_symbols_read_as_pyelftools_reads_them(tmp_path, arch):
    """The struct decoding of .symtab gives every field pyelftools gives, on either ELF class."""
    from elftools.elf.elffile import ELFFile
    elf_fixtures.require_toolchain(arch)
    obj = elf_fixtures.compile_c(tmp_path, "symbols", SYMBOLS_C, arch, cflags=("-fcommon",))
    with elfcheck._Elf(obj) as f:
        ours = [(s.name, s.value, s.size, s.type, s.bind, s.shndx) for s in f.symbols()]
    with open(obj, "rb") as fh:
        theirs = [(s.name, s["st_value"], s["st_size"], s["st_info"]["type"], s["st_info"]["bind"], s["st_shndx"])
                  for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()]
    assert ours == theirs
    by_name = {s[0]: s for s in ours}
    assert by_name["common_one"][5] == "SHN_COMMON" and by_name["absolute_one"][5] == "SHN_ABS"
    assert by_name["absolute_one"][1] == 0x1234 and by_name["undefined_one"][5] == "SHN_UNDEF"
    assert by_name["weak_one"][3:5] == ("STT_FUNC", "STB_WEAK")
    assert by_name["symbols.c"][3:5] == ("STT_FILE", "STB_LOCAL")
