"""Small ELF inputs for the checker tests, built at test time with the system's gcc, as and ld.

A fake kernel module (`build_module`) and a fake kernel image (`build_image`) whose layout follows 2.6.9's:
__ksymtab/__ksymtab_strings export tables, .init sections, .bss, and link (virtual) addresses that may differ
from load (physical) addresses.
"""
import re
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

ARCH_FLAGS = {
    # what 2.6.9's arch Makefiles pass, minus what gcc 12 does not need for these small files
    "x86_64": {"cflags": ["-m64", "-mcmodel=kernel", "-mno-red-zone"], "ld": ["-m", "elf_x86_64"],
               "link_base": 0xffffffff80100000, "map_base": 0xffffffff80000000},
    "i386": {"cflags": ["-m32"], "ld": ["-m", "elf_i386"], "link_base": 0xC0100000, "map_base": 0xC0000000},
}
COMMON_CFLAGS = ["-O2", "-fno-pic", "-fno-pie", "-ffreestanding", "-fno-stack-protector",
                 "-fno-asynchronous-unwind-tables", "-fcf-protection=none", "-fno-common"]


def require_toolchain(arch):
    """Skip an i386 test where gcc cannot build 32-bit objects (no gcc-multilib); x86_64 must work."""
    probe = subprocess.run(["gcc", *ARCH_FLAGS[arch]["cflags"], *COMMON_CFLAGS, "-x", "c", "-c", "-o",
                            "/dev/null", "-"], input="int x;", capture_output=True, text=True)
    if probe.returncode and arch == "i386":
        pytest.skip(f"gcc cannot build i386 objects here (install gcc-multilib): {probe.stderr.strip()}")
    assert probe.returncode == 0, probe.stderr


def _run(args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"{' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def compile_c(tmp, name, source, arch, cflags=()):
    src = Path(tmp) / f"{name}.c"
    src.write_text(source)
    obj = Path(tmp) / f"{name}.o"
    _run(["gcc", *ARCH_FLAGS[arch]["cflags"], *COMMON_CFLAGS, *cflags, "-c", "-o", obj, src])
    return obj


MODULE_BODY = r"""
extern int printk(const char *fmt, ...);
extern void *kmalloc(unsigned long size, int flags);
static char buffer[64];
/* an absolute pointer: R_X86_64_64 / R_386_32 */
void *function_table[] = { (void *)kmalloc };
static int mkexec_init(void)
{
    buffer[0] = 1;                       /* RIP-relative store: R_X86_64_PC32 */
    return printk("mkexec %p\n", buffer); /* call: R_X86_64_PLT32 with binutils 2.40, R_386_PC32 */
}
static void mkexec_exit(void) { buffer[0] = 0; }
int init_module(void) __attribute__((alias("mkexec_init")));
void cleanup_module(void) __attribute__((alias("mkexec_exit")));
"""


def build_module(tmp, arch, *, name="mkexec", license="GPL", vermagic="2.6.9 gcc-12.2", body=MODULE_BODY,
                 cflags=(), asm=None, modinfo=True):
    """A relocatable module like kbuild's: the objects linked with `ld -r`, .modinfo strings as MODULE_LICENSE
    and the vermagic from modpost put them."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    parts = []
    if modinfo:
        tags = ([f"license={license}"] if license is not None else []) + [f"vermagic={vermagic}"]
        parts += [f'static const char __mod_{i}[] __attribute__((section(".modinfo"), used, aligned(1))) = '
                  f'"{tag}";' for i, tag in enumerate(tags)]
    objects = [compile_c(tmp, f"{name}_main", body + "\n".join(parts) + "\n", arch, cflags)]
    if asm is not None:
        src = tmp / f"{name}_asm.S"
        src.write_text(asm)
        objects.append(tmp / f"{name}_asm.o")
        _run(["gcc", *ARCH_FLAGS[arch]["cflags"], *COMMON_CFLAGS, "-c", "-o", objects[-1], src])
    ko = tmp / f"{name}.ko"
    _run(["ld", *ARCH_FLAGS[arch]["ld"], "-r", "-o", ko, *objects])
    return ko


IMAGE_SCRIPT = """
ENTRY(startup_32)
SECTIONS
{{
  . = {link:#x};
  _text = .;
  .text : @AT(.text)@ {{ *(.text.head) *(.text .text.*) }}
  _etext = .;
  .rodata : @AT(.rodata)@ {{ *(.rodata .rodata.*) }}
  .note : @AT(.note)@ {{ *(.note) }}
  . = ALIGN(64);
  __ksymtab : @AT(__ksymtab)@ {{ *(__ksymtab) }}
  __ksymtab_gpl : @AT(__ksymtab_gpl)@ {{ *(__ksymtab_gpl) }}
  __ksymtab_strings : @AT(__ksymtab_strings)@ {{ *(__ksymtab_strings) }}
  .data : @AT(.data)@ {{ *(.data .data.*) }}
  _edata = .;
  . = ALIGN(4096);
  __init_begin = .;
  .init.text : @AT(.init.text)@ {{ *(.init.text) }}
  .init.data : @AT(.init.data)@ {{ *(.init.data) }}
  __init_end = .;
  . = ALIGN(4096);
  __bss_start = .;
  .bss : @AT(.bss)@ {{ *(.bss .bss.*) }}
  _end = .;
  /DISCARD/ : {{ *(.note.GNU-stack) *(.note.gnu.property) *(.eh_frame) }}
}}
"""


def build_image(tmp, arch, *, name="vmlinux", load_base=0x100000, link_base=None, with_at=True,
                functions=(), exports=("printk", "kmalloc"), gpl_exports=(), cond_syscalls=(), raw_symbols=(),
                bss_kib=64, init_kib=8, vermagic=None):
    """A linked kernel-like image.

    Linked at link_base (the arch's kernel virtual address by default). With `with_at`, AT() puts every section
    at load_base + (address - link_base), as a kernel at 0xffffffff80100000 loaded at 0x100000; without it, load
    addresses equal link addresses, as in 2.6.9's own vmlinux.lds.S.
    `functions`: extra global functions by name; `exports`/`gpl_exports`: functions exported 2.6.9-style;
    `cond_syscalls`: weak aliases of sys_ni_syscall, as 2.6.9's cond_syscall(); `raw_symbols`: functions
    with names C cannot spell (e.g. GCC clones "name.isra.0"); `vermagic`: kernel/module.c's vermagic[] string.
    """
    tmp = Path(tmp)
    flags = ARCH_FLAGS[arch]
    link = flags["link_base"] if link_base is None else link_base
    lines = [
        "struct kernel_symbol { unsigned long value; const char *name; };",
        '__attribute__((section(".text.head"), used)) void startup_32(void) { for (;;) ; }',
        "long sys_ni_syscall(void) { return -38; }",
        f'static char bss_blob[{bss_kib * 1024}] __attribute__((used));',
        f'static char init_blob[{init_kib * 1024}] __attribute__((section(".init.data"), used)) = {{1}};',
        '__attribute__((section(".init.text"), used)) int init_setup(void) { return init_blob[0] + bss_blob[1]; }',
        'int data_word = 0x5a5a5a5a;',
        'const char banner[] = "Linux version 2.6.9-fixture";',
        'asm(".section .note,\\"a\\"\\n.long 4, 4, 1\\n.ascii \\"fix\\\\0\\"\\n.long 7\\n.previous");',
    ]
    for fn in {*exports, *gpl_exports, *functions}:
        lines.append(f"__attribute__((noinline, used)) int {fn}(void) {{ return data_word + {len(fn)}; }}")
    for fn, section in [(f, "__ksymtab") for f in exports] + [(f, "__ksymtab_gpl") for f in gpl_exports]:
        lines.append(f'static const char __kstrtab_{fn}[] __attribute__((section("__ksymtab_strings"), used)) '
                     f'= "{fn}";')
        lines.append(f'static const struct kernel_symbol __ksymtab_{fn} __attribute__((section("{section}"), '
                     f'used)) = {{ (unsigned long)&{fn}, __kstrtab_{fn} }};')
    if vermagic is not None:
        lines.append(f'static const char vermagic[] __attribute__((used)) = "{vermagic}";')
    for fn in cond_syscalls:
        lines.append(f'asm(".weak {fn}\\n.set {fn}, sys_ni_syscall");')
    for i, raw in enumerate(raw_symbols):
        lines.append(f'__attribute__((noinline, used)) int raw_{i}(void) asm("{raw}");')
        lines.append(f'int raw_{i}(void) {{ return {i}; }}')
    obj = compile_c(tmp, f"{name}_src", "\n".join(lines) + "\n", arch)
    script = re.sub(r"@AT\((\S+)\)@",
                    lambda m: f"AT(ADDR({m.group(1)}) - {link - load_base:#x})" if with_at else "",
                    IMAGE_SCRIPT.format(link=link))
    lds = tmp / f"{name}.lds"
    lds.write_text(script)
    image = tmp / name
    _run(["ld", *flags["ld"], "--no-warn-rwx-segments", "-z", "noexecstack", "-T", lds, "-o", image, obj])
    return image


def objcopy_binary(image, out=None):
    """vmlinux.bin the way 2.6.9's arch/<arch>/boot/compressed/Makefile makes it."""
    out = Path(out) if out else Path(image).with_name(Path(image).name + ".bin")
    _run(["objcopy", "-O", "binary", "-R", ".note", "-R", ".comment", "-S", image, out])
    return out


def symbol_value(image, name):
    """A symbol's value as nm reports it: an oracle independent of pyelftools."""
    for line in _run(["nm", image]).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise KeyError(name)


def section_header_offset(path, section_name):
    """File offset of a section header, to craft bad files."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for i, sec in enumerate(elf.iter_sections()):
            if sec.name == section_name:
                return elf["e_shoff"] + i * elf["e_shentsize"], elf.elfclass
    raise KeyError(section_name)


def retype_section(path, section_name, sh_type, sh_entsize):
    """Overwrite a section's sh_type and sh_entsize in place (e.g. call a SHT_REL section SHT_RELA)."""
    offset, elfclass = section_header_offset(path, section_name)
    with open(path, "r+b") as f:
        f.seek(offset + 4)   # after sh_name, in both ELF classes
        f.write(struct.pack("<I", sh_type))
        f.seek(offset + (36 if elfclass == 32 else 56))
        f.write(struct.pack("<I" if elfclass == 32 else "<Q", sh_entsize))
