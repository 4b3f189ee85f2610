"""mkdump.arch: one file per arch under kernel/arch/, read into a frozen Arch; no other module names an arch."""
import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from mkdump import arch as arches
from mkdump.errors import MkdumpError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def arch_dir(tmp_path):
    d = tmp_path / "arch"
    shutil.copytree(arches.ARCH_DIR, d)
    return d


def test_names_are_the_files_present_the_default_first(arch_dir):
    assert arches.names() == ("x86_64", "i386")
    assert arches.default() == "x86_64"
    # Adding an arch is adding its file.
    text = (arch_dir / "i386.toml").read_text()
    (arch_dir / "a386.toml").write_text(text)
    assert arches.names(arch_dir) == ("x86_64", "a386", "i386")
    assert arches.load("a386", arch_dir).elf.machine == 3


def test_every_fact_is_read_with_its_type():
    x = arches.load("x86_64")
    i = arches.load("i386")
    assert (x.elf.elfclass, x.elf.machine, x.elf.kernel_map_base) == (64, 62, 0xffffffff80000000)
    assert (i.elf.elfclass, i.elf.machine, i.elf.kernel_map_base) == (32, 3, 0xC0000000)
    assert (x.mem_minus_mb, i.mem_minus_mb) == (1, 0)
    assert x.pae is None and i.pae == arches.Pae("X86_PAE", True)
    assert x.syscalls["init_module"] == 175 and i.syscalls["init_module"] == 128
    assert x.path == str(arches.ARCH_DIR / "x86_64.toml")
    assert [c["package"] for c in i.toolchain["compilers"]] == ["gcc-multilib", "gcc-i686-linux-gnu"]
    assert all(f["why"] for a in (x, i) for f in a.toolchain["flags"])


def test_an_arch_is_frozen():
    a = arches.load("x86_64")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.mem_minus_mb = 0
    with pytest.raises(TypeError):
        a.syscalls["read"] = 1
    with pytest.raises(TypeError):
        a.toolchain["compilers"][0]["cc"] = ("clang",)


def test_a_file_is_parsed_once_per_version(arch_dir):
    first = arches.load("x86_64", arch_dir)
    assert arches.load("x86_64", arch_dir) is first
    # An edit is seen at once, whatever its size and mtime.
    path = arch_dir / "x86_64.toml"
    path.write_text(path.read_text().replace("mem_minus_mb = 1", "mem_minus_mb = 3"))
    assert arches.load("x86_64", arch_dir).mem_minus_mb == 3


def test_qemu_settings_overlay_the_kind():
    a = arches.load("x86_64")
    assert a.qemu_settings()["memory_mb"] == 64
    assert a.qemu_settings("minik")["memory_mb"] == 8
    assert "minik" not in a.qemu_settings("minik") and "system" not in a.qemu_settings()
    with pytest.raises(ValueError):
        a.qemu_settings("crash")


@pytest.mark.parametrize("values, name", [
    ({"X86": "y", "X86_64": "y"}, "x86_64"),
    ({"X86": "y"}, "i386"),
    ({"MODULES": "y"}, None),
])
def test_a_config_says_its_arch(values, name):
    said = [a.name for a in arches.load_all() if a.says_config(values)]
    assert said == ([name] if name else [])


def test_for_elf_machine():
    assert arches.for_elf_machine(62).name == "x86_64"
    assert arches.for_elf_machine(3).name == "i386"
    assert arches.for_elf_machine(183) is None


def test_an_unknown_arch_is_one_sentence(arch_dir):
    with pytest.raises(MkdumpError, match=r"arch 'arm' is not described: .* has no arm\.toml "
                                          r"\(known arches: i386, x86_64\)"):
        arches.load("arm", arch_dir)
    with pytest.raises(MkdumpError, match="is not described"):
        arches.load("../arch/x86_64", arch_dir)
    with pytest.raises(MkdumpError, match="cannot read the arch files: .*absent is not a directory"):
        arches.load("x86_64", arch_dir / "absent")


def _without(text, line):
    assert line in text
    return text.replace(line, "")


@pytest.mark.parametrize("change, message", [
    (lambda t: t + "[broken\n", "is not valid TOML"),
    (lambda t: _without(t, "entry_symbol = \"startup_32\"\n"), r"lacks entry_symbol in \[elf\]"),
    (lambda t: t.replace("mem_minus_mb = 1", "mem_minus_mb = \"one\""),
     r"mem_minus_mb in \[minik\] is 'one', not an integer"),
    (lambda t: t.replace("mem_minus_mb = 1", "mem_minus_mb = true"), r"mem_minus_mb in \[minik\] is True"),
    (lambda t: t.replace('"0xffffffff80000000"', '"high"'), "kernel_map_base in \\[elf\\] is 'high', not a number"),
    (lambda t: t.replace("[elf]", "[elves]"), r"lacks the table \[elf\]"),
    (lambda t: t.replace('why = "as -mno-sse"', 'reason = "as -mno-sse"', 1), "needs flag and why"),
    (lambda t: t.replace('package = "gcc"\n', "", 1), "needs cc or cross_compile, and package"),
    (lambda t: t.replace('cpu = "qemu64"\nmemory_mb = 64\nconsole = "ttyS0"\n', 'cpu = "qemu64"\n'),
     r"\[qemu\] lacks memory_mb, console: add them"),
])
def test_a_malformed_file_is_named(arch_dir, change, message):
    path = arch_dir / "x86_64.toml"
    path.write_text(change(path.read_text()))
    with pytest.raises(MkdumpError, match=message) as e:
        arches.load("x86_64", arch_dir)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_exactly_one_default(arch_dir):
    path = arch_dir / "x86_64.toml"
    path.write_text(path.read_text().replace("default = true", "default = false"))
    with pytest.raises(MkdumpError, match="exactly one file .* must say `default = true`.*none does"):
        arches.names(arch_dir)
    path.write_text(path.read_text().replace("default = false", "default = true"))
    other = arch_dir / "i386.toml"
    other.write_text("default = true\n" + other.read_text())
    with pytest.raises(MkdumpError, match="these do: x86_64, i386|these do: i386, x86_64"):
        arches.names(arch_dir)


# Names an arch under one of its spellings: ours, 2.6.9's and the toolchain's (arch names, triplets, ELF machine
# and relocation names, QEMU binaries, Kconfig symbols).
_ARCH_WORDS = re.compile(r"x86|i[3-6]86|80386|amd64|ia32|EM_386|R_386|startup_32|qemu-system", re.I)


def test_no_module_but_the_arch_reader_names_an_arch():
    """Per-arch facts live in kernel/arch/<arch>.toml: the code names no arch, so adding one is adding a file."""
    package = ROOT / "site_scons" / "mkdump"
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
                 for p in sorted((ROOT / "site_scons").rglob("*.py")) if p.name != "arch.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if _ARCH_WORDS.search(line)]
    assert offenders == []
    # arch.py reads the files; it names no arch either.
    assert not _ARCH_WORDS.search((package / "arch.py").read_text())


def test_the_guard_sees_an_arch_name():
    assert _ARCH_WORDS.search('MEM_BIAS = {"i386": 0, "x86_64": 1}')
    assert _ARCH_WORDS.search("the Intel 80386 loader")
    assert _ARCH_WORDS.search("x86-64")
    assert not _ARCH_WORDS.search("arches.load(lay.arch).mem_minus_mb")
