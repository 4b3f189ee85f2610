"""mkexec.ko from the stand-in archive, built for real against a small 2.6.9 system kernel."""
import re
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from mkdump import elfcheck, mkexec, toolchain, unpack
from support import standin_mkexec
from support.real_sources import extract_files, unpack_tree

ROOT = Path(__file__).resolve().parent.parent

# toolchain.md: what gcc 12 needs to build 2.6.9 at all.
CC = {
    "x86_64": "gcc -fno-pie -fgnu89-inline -mno-sse -mno-mmx -mno-sse2 -mno-3dnow",
    "i386": "gcc -m32 -fno-pie -fgnu89-inline",
}
ELF = {"x86_64": ("ELFCLASS64", "EM_X86_64"), "i386": ("ELFCLASS32", "EM_386")}


def _make(tree, arch, *args, stdin=None):
    subprocess.run(["make", f"ARCH={arch}", f"CC={CC[arch]}", *args], cwd=tree, check=True, input=stdin,
                   stdout=subprocess.DEVNULL)


def _set_config(config, values):
    text = config.read_text()
    for name, value in values.items():
        text = re.sub(rf"^(# )?CONFIG_{name}( is not set|=.*)$", f"CONFIG_{name}={value}", text, flags=re.M)
        if f"CONFIG_{name}={value}" not in text:
            text += f"CONFIG_{name}={value}\n"
    config.write_text(text)


def _system_kernel(tarball, work, arch):
    """A pristine 2.6.9 tree with our compat patches and the stand-in mkexec patch, built (vmlinux, modpost)."""
    tree = unpack_tree(tarball, work)
    for patch in sorted((ROOT / "patches" / "compat").glob(f"{arch}-*.patch")):
        standin_mkexec.apply_patch(tree, patch.read_text(encoding="latin-1"))
    patch_text = standin_mkexec.kernel_patch(tree)
    standin_mkexec.apply_patch(tree, patch_text)
    _make(tree, arch, "allnoconfig")
    _set_config(tree / ".config", {"MODULES": "y", "MODULE_UNLOAD": "y", "PROC_FS": "y"})
    _make(tree, arch, "oldconfig", stdin=b"\n" * 4000)
    _make(tree, arch, "-j2", "vmlinux", "modules")
    return tree, patch_text


@pytest.mark.realkernel
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_standin_module_builds_against_real_kernel(real_linux_tarball, tmp_path, arch):
    tree, patch_text = _system_kernel(real_linux_tarball, tmp_path, arch)
    taz = standin_mkexec.make_taz(tmp_path / "mkexec-2.6.9-1.0-update1.taz", patch_text=patch_text)
    src = tmp_path / "build" / arch / "src" / "mkexec"
    unpack.unpack(taz, src, log=lambda m: None)
    mkexec.find_layout(src, arch=arch)
    ko = mkexec.build_module(src, tmp_path / "build" / arch / "mkexec", arch=arch, kdir=tree, kver="2.6.9",
                             kmoddir="/lib/modules/2.6.9/extra", toolchain=toolchain.detect(arch),
                             log_path=tmp_path / "mkexec.log", log=lambda m: None)
    assert ko == str(tmp_path / "build" / arch / "mkexec" / "kernel" / "mkexec.ko")
    with open(ko, "rb") as f:
        elf = ELFFile(f)
        assert (elf.header.e_ident.EI_CLASS, elf.header.e_machine) == ELF[arch]
        assert elf.header.e_type == "ET_REL"
        modinfo = elf.get_section_by_name(".modinfo").data().split(b"\0")
        symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
    gcc = subprocess.run(["gcc", "-dumpfullversion"], stdout=subprocess.PIPE, text=True, check=True).stdout
    major_minor = ".".join(gcc.strip().split(".")[:2])
    # i386 puts its MODULE_ARCH_VERMAGIC (CPU family, ...) between release and compiler: take the kernel's own.
    vermagic = elfcheck.vmlinux_vermagic(tree / "vmlinux")
    assert vermagic.startswith("2.6.9 ") and vermagic.endswith(f"gcc-{major_minor}")
    assert f"vermagic={vermagic}".encode() in modinfo
    assert "mkexec_stub_version" in elfcheck.kernel_exports(tree / "vmlinux")
    assert b"license=GPL" in modinfo
    assert symbols["init_module"]["st_shndx"] != "SHN_UNDEF"
    assert symbols["mkexec_stub_version"]["st_shndx"] == "SHN_UNDEF"
    # The archive is untouched: the asm link and any generated Makefile.base live only in the build copy.
    assert not (src / "include" / "asm").exists()
    assert (tmp_path / "build" / arch / "mkexec" / "include" / "asm").resolve().name == f"asm-{arch}"


@pytest.mark.realkernel
def test_standin_patch_applies_to_real_tree(real_linux_tarball, tmp_path):
    tree = extract_files(real_linux_tarball, tmp_path, ["kernel/Makefile"])
    standin_mkexec.apply_patch(tree, standin_mkexec.kernel_patch(tree))
    assert (tree / "kernel" / "Makefile").read_text().endswith(standin_mkexec.MAKEFILE_LINE)
    assert "EXPORT_SYMBOL(mkexec_stub_version);" in (tree / "kernel" / "mkexec_stub.c").read_text()
