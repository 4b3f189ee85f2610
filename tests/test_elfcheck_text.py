"""The parts of the checker that read kernel source text: the loader's relocation switch and head.S's jump."""
import pytest

from mkdump import elfcheck
from mkdump.errors import MkdumpError

# Shaped like 2.6.9's arch/x86_64/kernel/module.c after our compat patch (PLT32 falls through to PC32).
X86_64_MODULE_C = """
int apply_relocate_add(Elf64_Shdr *sechdrs, const char *strtab, unsigned int symindex,
                       unsigned int relsec, struct module *me);   /* prototype: no body */

int apply_relocate_add(Elf64_Shdr *sechdrs, const char *strtab, unsigned int symindex,
                       unsigned int relsec, struct module *me)
{
    for (i = 0; i < n; i++) {
        /* case R_X86_64_GOTPCREL: would be nice, one day */
        switch (ELF64_R_TYPE(rel[i].r_info)) {
        case R_X86_64_NONE:
            break;
        case R_X86_64_64:
            *(u64 *)loc = val;
            break;
        case R_X86_64_32:
        case R_X86_64_32S:
            *(s32 *)loc = val;
            break;
        case R_X86_64_PLT32:
        case R_X86_64_PC32:
            val -= (u64)loc;
#if 0
        case R_X86_64_GOT32:
#endif
            break;
        default:
            printk(KERN_ERR "module %s: Unknown rela relocation: %Lu\\n", me->name, type);
            return -ENOEXEC;
        }
    }
    return 0;
}

int apply_relocate(Elf_Shdr *sechdrs, const char *strtab, unsigned int symindex,
                   unsigned int relsec, struct module *me)
{
    printk("non add relocation not supported\\n");
    return -ENOSYS;
}
"""

# Shaped like 2.6.9's arch/i386/kernel/module.c: apply_relocate() does the work, apply_relocate_add() refuses.
I386_MODULE_C = """
int apply_relocate(Elf32_Shdr *sechdrs, const char *strtab, unsigned int symindex,
                   unsigned int relsec, struct module *me)
{
    for (i = 0; i < n; i++) {
        switch (ELF32_R_TYPE(rel[i].r_info)) {
        case R_386_32:
            *location += sym->st_value;
            break;
        case R_386_PC32:
            *location += sym->st_value - (uint32_t)location;
            break;
        default:
            printk(KERN_ERR "module %s: Unknown relocation: %u\\n", me->name, t);
            return -ENOEXEC;
        }
    }
    return 0;
}

int apply_relocate_add(Elf32_Shdr *sechdrs, const char *strtab, unsigned int symindex,
                       unsigned int relsec, struct module *me)
{
    printk(KERN_ERR "module %s: ADD RELOCATION unsupported\\n", me->name);
    return -ENOEXEC;
}
"""


def test_x86_64_loader_cases_with_fall_through_and_compat_plt32():
    allowed = elfcheck.loader_allowed_relocs(X86_64_MODULE_C, "x86_64")
    assert allowed == {0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 4: "R_X86_64_PLT32",
                       10: "R_X86_64_32", 11: "R_X86_64_32S"}


def test_x86_64_loader_without_compat_patch_refuses_plt32():
    stock = X86_64_MODULE_C.replace("        case R_X86_64_PLT32:\n", "")
    assert 4 not in elfcheck.loader_allowed_relocs(stock, "x86_64")


def test_i386_loader_reads_apply_relocate_not_apply_relocate_add():
    assert elfcheck.loader_allowed_relocs(I386_MODULE_C, "i386") == {1: "R_386_32", 2: "R_386_PC32"}


def test_loader_without_the_function_is_an_error():
    with pytest.raises(MkdumpError, match="apply_relocate_add"):
        elfcheck.loader_allowed_relocs(I386_MODULE_C.replace("apply_relocate_add", "other_fn"), "x86_64")


def test_loader_without_case_labels_is_an_error():
    text = "int apply_relocate(void) { return -ENOEXEC; }"
    with pytest.raises(MkdumpError, match="no `case R_386_"):
        elfcheck.loader_allowed_relocs(text, "i386", source="arch/i386/kernel/module.c")


def test_loader_with_unknown_relocation_name_is_an_error():
    text = X86_64_MODULE_C.replace("case R_X86_64_PLT32:", "case R_X86_64_MADE_UP:")
    with pytest.raises(MkdumpError, match="R_X86_64_MADE_UP"):
        elfcheck.loader_allowed_relocs(text, "x86_64")


def test_unknown_arch_is_an_error():
    with pytest.raises(MkdumpError, match="arm64"):
        elfcheck.loader_allowed_relocs(X86_64_MODULE_C, "arm64")


STOCK_X86_64_HEAD = """
#include <linux/linkage.h>
#include <asm/segment.h>
	.code32
startup_32:
	cmpl %eax,0x100000
	call decompress_kernel
	ljmp $(__KERNEL_CS), $0x100000

3:	movl $move_routine_start,%esi
	movl $0x1000,%edi
	ljmp $(__KERNEL_CS), $0x1000 # and jump to the move routine
move_routine_start:
	xorl %ebx,%ebx
	ljmp $(__KERNEL_CS), $0x100000
move_routine_end:
"""

STOCK_I386_HEAD = STOCK_X86_64_HEAD.replace("__KERNEL_CS", "__BOOT_CS")


@pytest.mark.parametrize("text", [STOCK_X86_64_HEAD, STOCK_I386_HEAD], ids=["x86_64", "i386"])
def test_stock_head_s_jumps_to_1mib(text):
    assert elfcheck.head_s_load_address(text) == 0x100000


def test_head_s_with_defined_constant():
    text = "#define MB (1024 * 1024)\n#define MINIK_LOAD (16 * MB)\n" + \
        STOCK_X86_64_HEAD.replace("$0x100000", "$MINIK_LOAD")
    assert elfcheck.head_s_load_address(text) == 0x1000000


def test_head_s_with_literal_suffix_and_plain_segment():
    assert elfcheck.head_s_load_address("\tljmp $0x10, $0x200000UL\n") == 0x200000


def test_head_s_ignores_if0_and_comments():
    text = ("#if 0\n\tljmp $(__KERNEL_CS), $0x400000\n#endif\n"
            "/* ljmp $(__KERNEL_CS), $0x800000 */\n" + STOCK_X86_64_HEAD)
    assert elfcheck.head_s_load_address(text) == 0x100000


def test_head_s_name_from_a_header_via_defines():
    text = STOCK_I386_HEAD.replace("$0x100000", "$__PHYSICAL_START")
    with pytest.raises(MkdumpError, match="__PHYSICAL_START"):
        elfcheck.head_s_load_address(text)
    assert elfcheck.head_s_load_address(text, defines={"__PHYSICAL_START": "0x300000"}) == 0x300000


def test_head_s_without_kernel_jump_is_an_error():
    with pytest.raises(MkdumpError, match="no far jump"):
        elfcheck.head_s_load_address("\tljmp $(__KERNEL_CS), $0x1000\n\tret\n", source="head.S")


def test_head_s_with_two_kernel_addresses_is_an_error():
    text = STOCK_X86_64_HEAD.replace("xorl %ebx,%ebx\n\tljmp $(__KERNEL_CS), $0x100000",
                                     "xorl %ebx,%ebx\n\tljmp $(__KERNEL_CS), $0x200000")
    with pytest.raises(MkdumpError, match="different addresses"):
        elfcheck.head_s_load_address(text)


def test_head_s_with_unevaluable_target_is_an_error():
    with pytest.raises(MkdumpError, match="cannot|can evaluate"):
        elfcheck.head_s_load_address("\tljmp $(__KERNEL_CS), $(foo(1))\n")


@pytest.mark.parametrize("kwargs, expected", [
    ({"release": "2.6.9", "smp": False, "preempt": False, "gcc_version": "12.2.0"}, "2.6.9 gcc-12.2"),
    ({"release": "2.6.9", "smp": True, "preempt": True, "gcc_version": "12.2"}, "2.6.9 SMP preempt gcc-12.2"),
    ({"release": "2.6.9", "smp": False, "preempt": False, "gcc_version": "12.2",
      "arch_tokens": ("686", "REGPARM")}, "2.6.9 686 REGPARM gcc-12.2"),
])
def test_kernel_vermagic(kwargs, expected):
    assert elfcheck.kernel_vermagic(**kwargs) == expected


def test_check_line_and_dict():
    check = elfcheck.Check("mkexec.ko relocations", False, "1 of 5 refused", "first at .text+0x4")
    assert str(check) == "FAIL mkexec.ko relocations: 1 of 5 refused -- first at .text+0x4"
    assert str(elfcheck.Check("x", True, "fine")) == "PASS x: fine"
    assert check.to_dict() == {"name": "mkexec.ko relocations", "ok": False, "figure": "1 of 5 refused",
                               "detail": "first at .text+0x4"}
