"""Mini kernel checks on linked kernel-like images built with gcc and ld."""
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from mkdump import elfcheck
from mkdump.errors import MkdumpError
from support import elf_fixtures
from test_elfcheck_text import STOCK_I386_HEAD, STOCK_X86_64_HEAD

ARCHES = ["x86_64", "i386"]
# What arch/<arch>/kernel/head.S starts with on both arches (the arch files' [elf] entry_symbol).
ENTRY = "startup_32"
HEADS = {"x86_64": STOCK_X86_64_HEAD, "i386": STOCK_I386_HEAD}
# with AT(): kernel at 0xffffffff80100000 (0xc0100000) loaded at 0x100000; without: as 2.6.9's vmlinux.lds.S
LAYOUTS = [pytest.param(arch, with_at, id=f"{arch}-{'AT' if with_at else 'noAT'}")
           for arch in ARCHES for with_at in (True, False)]


def image(tmp_path, arch, **kwargs):
    elf_fixtures.require_toolchain(arch)
    return elf_fixtures.build_image(tmp_path, arch, **kwargs)


def section_offset(vmlinux, name):
    """Offset of a section in vmlinux.bin: its load address minus that of the first section (.text)."""
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        addr = {s.name: s["sh_addr"] for s in elf.iter_sections()}
        return addr[name] - addr[".text"], elf.get_section_by_name(name)["sh_size"]


# --- vmlinux.bin --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, with_at", LAYOUTS)
def test_objcopy_output_passes(tmp_path, arch, with_at):
    vmlinux = image(tmp_path, arch, with_at=with_at)
    binary = elf_fixtures.objcopy_binary(vmlinux)
    check = elfcheck.check_vmlinux_bin(vmlinux, binary)
    assert check.ok, str(check)
    assert check.figure.startswith(f"{binary.stat().st_size} bytes, identical")


@pytest.mark.parametrize("arch", ARCHES)
def test_changed_byte_in_data_names_offset_and_section(tmp_path, arch):
    vmlinux = image(tmp_path, arch)
    binary = elf_fixtures.objcopy_binary(vmlinux)
    offset, size = section_offset(vmlinux, ".data")
    blob = bytearray(binary.read_bytes())
    blob[offset + size - 1] ^= 0xFF
    binary.write_bytes(bytes(blob))
    check = elfcheck.check_vmlinux_bin(vmlinux, binary)
    assert not check.ok
    assert check.figure == f"differs from vmlinux at offset {offset + size - 1:#x} (.data)"


def test_removed_note_leaves_a_zero_gap(tmp_path):
    vmlinux = image(tmp_path, "x86_64")
    binary = elf_fixtures.objcopy_binary(vmlinux)
    offset, size = section_offset(vmlinux, ".note")
    assert size > 0
    blob = bytearray(binary.read_bytes())
    blob[offset] = 1
    binary.write_bytes(bytes(blob))
    check = elfcheck.check_vmlinux_bin(vmlinux, binary)
    assert not check.ok
    assert check.figure == f"differs from vmlinux at offset {offset:#x} (the gap before __ksymtab)"


def test_binary_with_the_note_kept_fails(tmp_path):
    vmlinux = image(tmp_path, "i386")
    binary = tmp_path / "with-note.bin"
    subprocess.run(["objcopy", "-O", "binary", "-R", ".comment", "-S", vmlinux, binary], check=True)
    assert not elfcheck.check_vmlinux_bin(vmlinux, binary).ok


def test_truncated_and_padded_binaries_fail(tmp_path):
    vmlinux = image(tmp_path, "x86_64")
    binary = elf_fixtures.objcopy_binary(vmlinux)
    whole = binary.read_bytes()
    binary.write_bytes(whole[:-10])
    short = elfcheck.check_vmlinux_bin(vmlinux, binary)
    assert not short.ok and f"at offset {len(whole) - 10:#x}" in short.figure
    binary.write_bytes(whole + b"\0")
    long = elfcheck.check_vmlinux_bin(vmlinux, binary)
    assert not long.ok
    assert long.figure == f"{len(whole) + 1} bytes, expected {len(whole)}"


def test_missing_binary_and_non_elf_vmlinux_are_errors(tmp_path):
    vmlinux = image(tmp_path, "x86_64")
    with pytest.raises(MkdumpError, match="vmlinux.bin"):
        elfcheck.check_vmlinux_bin(vmlinux, tmp_path / "vmlinux.bin")
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(MkdumpError, match="bogus"):
        elfcheck.check_vmlinux_bin(bogus, vmlinux)


# --- footprint ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, with_at", LAYOUTS)
def test_footprint_pass_and_fail(tmp_path, arch, with_at):
    vmlinux = image(tmp_path, arch, with_at=with_at, bss_kib=3072)
    # nm prints the link address; the image's first byte lands at physical 0x100000 in both layouts
    end = elf_fixtures.symbol_value(vmlinux, "_end") - elf_fixtures.ARCH_FLAGS[arch]["link_base"] + 0x100000
    need = -(-end // 4096) * 4 + elfcheck.RUNTIME_RESERVE_KIB
    small = elfcheck.check_footprint(vmlinux, minik_mem_mb=4)
    assert not small.ok
    assert f"= {need}k > 4096k (minik_mem=4)" in small.figure
    assert "use minik_mem=8" in small.detail and "3072k bss" in small.detail
    big = elfcheck.check_footprint(vmlinux, minik_mem_mb=8)
    assert big.ok and f"= {need}k <= 8192k" in big.figure


def test_readme_kernel_size_fits_4mib():
    # the rule is calibrated on README.mkdump's kernel: 2040k reserved at load 1 MiB fits 4 MiB exactly
    assert 1024 + 2040 + elfcheck.RUNTIME_RESERVE_KIB == 4 * 1024


@pytest.mark.parametrize("bad", [6, 0, "8"])
def test_footprint_rejects_bad_minik_mem(tmp_path, bad):
    vmlinux = image(tmp_path, "x86_64")
    with pytest.raises(MkdumpError, match="multiple of 4"):
        elfcheck.check_footprint(vmlinux, minik_mem_mb=bad)


# --- load address -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, with_at", LAYOUTS)
def test_load_address_matches_stock_head_s(tmp_path, arch, with_at):
    vmlinux = image(tmp_path, arch, with_at=with_at)
    check = elfcheck.check_load_address(vmlinux, elfcheck.head_s_load_address(HEADS[arch]), entry_symbol=ENTRY)
    assert check.ok, str(check)
    assert check.figure == "image at 0x100000, startup_32 at 0x100000, head.S jumps to 0x100000"


@pytest.mark.parametrize("arch", ARCHES)
def test_load_address_differs_from_patched_head_s(tmp_path, arch):
    vmlinux = image(tmp_path, arch)
    head = "#define MINIK_LOAD 0x1000000\n" + HEADS[arch].replace("$0x100000", "$MINIK_LOAD")
    check = elfcheck.check_load_address(vmlinux, elfcheck.head_s_load_address(head), entry_symbol=ENTRY)
    assert not check.ok
    assert check.figure == "image at 0x100000, startup_32 at 0x100000, head.S jumps to 0x1000000"


def test_image_linked_for_the_patched_address_passes(tmp_path):
    vmlinux = image(tmp_path, "x86_64", load_base=0x1000000)
    assert elfcheck.check_load_address(vmlinux, 0x1000000, entry_symbol=ENTRY).ok


def test_startup_code_away_from_image_start_fails(tmp_path):
    vmlinux = image(tmp_path, "x86_64")
    check = elfcheck.check_load_address(vmlinux, 0x100000, entry_symbol="init_setup")
    assert not check.ok
    assert check.detail == "the jump would not land on init_setup"
    missing = elfcheck.check_load_address(vmlinux, 0x100000, entry_symbol="startup_64")
    assert not missing.ok and "startup_64 at missing" in missing.figure


# --- constraints --------------------------------------------------------------------------------------------

STUBS = ("sys_socket", "sys_socketcall", "sys_swapon", "sys_swapoff", "sys_init_module")


@pytest.mark.parametrize("arch", ARCHES)
def test_clean_image_passes_every_constraint(tmp_path, arch):
    # cond_syscall() aliases of sys_ni_syscall are present in every 2.6.9 kernel and must not count
    vmlinux = image(tmp_path, arch, cond_syscalls=STUBS, functions=("sock_init", "ramfs_fill_super"))
    checks = elfcheck.check_constraints(vmlinux)
    assert [c.name for c in checks] == [f"vmlinux {name}" for name in elfcheck.DEFAULT_CONSTRAINTS]
    assert all(c.ok for c in checks), [str(c) for c in checks]


@pytest.mark.parametrize("constraint", list(elfcheck.DEFAULT_CONSTRAINTS))
def test_each_constraint_fails_on_its_symbol(tmp_path, constraint):
    symbol = elfcheck.DEFAULT_CONSTRAINTS[constraint][-1]
    vmlinux = image(tmp_path, "x86_64", functions=(symbol,), cond_syscalls=STUBS)
    checks = {c.name: c for c in elfcheck.check_constraints(vmlinux)}
    failed = [name for name, c in checks.items() if not c.ok]
    assert failed == [f"vmlinux {constraint}"]
    assert checks[failed[0]].figure.startswith(f"symbol {symbol} (FUNC at 0x")


def test_gcc_clone_names_and_extra_hits(tmp_path):
    vmlinux = image(tmp_path, "i386", functions=("sys_swapon",), raw_symbols=("swap_writepage.isra.0",))
    check = {c.name: c for c in elfcheck.check_constraints(vmlinux)}["vmlinux no swap"]
    assert not check.ok
    assert check.figure.startswith("symbol sys_swapon (FUNC") and check.detail == "also swap_writepage.isra.0"


def test_rules_are_data(tmp_path):
    vmlinux = image(tmp_path, "x86_64", functions=("preempt_schedule",))
    checks = elfcheck.check_constraints(vmlinux, rules={"no preemption": ("preempt_schedule",),
                                                        "no SMP boot code": ("start_secondary",)})
    assert [(c.name, c.ok) for c in checks] == [("vmlinux no preemption", False), ("vmlinux no SMP boot code", True)]


def test_stripped_vmlinux_is_an_error(tmp_path):
    vmlinux = image(tmp_path, "x86_64")
    subprocess.run(["strip", "-s", vmlinux], check=True)
    with pytest.raises(MkdumpError, match="no symbol table"):
        elfcheck.check_constraints(vmlinux)


def test_kernel_map_base_override(tmp_path):
    # a kernel linked without AT() at 0xffffffff80100000 whose boot page tables map base + x to x
    vmlinux = image(tmp_path, "x86_64", with_at=False)
    base = 0xffffffff80100000 - 0x200000
    assert elfcheck.check_load_address(vmlinux, 0x200000, entry_symbol=ENTRY, kernel_map_base=base).ok
    assert "image 0x200000-" in elfcheck.check_footprint(vmlinux, minik_mem_mb=8, kernel_map_base=base).detail


def test_truncated_vmlinux_is_an_error(tmp_path):
    vmlinux = image(tmp_path, "i386")
    short = tmp_path / "short"
    short.write_bytes(vmlinux.read_bytes()[:200])
    with pytest.raises(MkdumpError, match="short is not a readable ELF file"):
        elfcheck.check_footprint(short, minik_mem_mb=8)
