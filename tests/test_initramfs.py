"""The initramfs writer: newc format (read back by our own parser and by Debian's cpio), determinism, gzip, and
the static /init built for both arches."""
import gzip
import shutil
import stat
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from mkdump import initramfs
from mkdump.errors import MkdumpError
from support.boot_newc import parse_newc

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="Debian's cpio is not installed")


def sample():
    return [initramfs.file("init", b"\x7fELF-ish", 0o755),
            initramfs.chardev("dev/console", 5, 1),
            initramfs.file("etc/deep/odd-size", b"12345"),
            initramfs.directory("proc", 0o555)]


def test_newc_members_sorted_owned_by_root_with_parents():
    members = parse_newc(initramfs.newc_archive(sample(), mtime=1234))
    assert [m["name"] for m in members] == ["dev", "dev/console", "etc", "etc/deep", "etc/deep/odd-size", "init",
                                            "proc"]
    by = {m["name"]: m for m in members}
    assert all(m["uid"] == 0 and m["gid"] == 0 and m["mtime"] == 1234 and m["check"] == 0 for m in members)
    assert sorted(m["ino"] for m in members) == list(range(1, 8))
    assert stat.S_ISCHR(by["dev/console"]["mode"]) and by["dev/console"]["rdev"] == (5, 1)
    assert stat.S_IMODE(by["dev/console"]["mode"]) == 0o600
    assert stat.S_ISREG(by["init"]["mode"]) and stat.S_IMODE(by["init"]["mode"]) == 0o755
    assert by["init"]["data"] == b"\x7fELF-ish"
    assert by["etc/deep/odd-size"]["data"] == b"12345"
    assert stat.S_ISDIR(by["etc/deep"]["mode"]) and by["etc/deep"]["nlink"] == 2
    assert stat.S_IMODE(by["proc"]["mode"]) == 0o555


def test_newc_is_independent_of_entry_order_and_environment(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first = initramfs.newc_archive(sample())
    assert initramfs.newc_archive(list(reversed(sample()))) == first
    assert {m["mtime"] for m in parse_newc(first)} == {0}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert {m["mtime"] for m in parse_newc(initramfs.newc_archive(sample()))} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(MkdumpError, match="SOURCE_DATE_EPOCH='yesterday'"):
        initramfs.newc_archive(sample())


@pytest.mark.parametrize("entries,message", [
    ([initramfs.file("a", b""), initramfs.file("./a", b"x")], "given twice"),
    ([initramfs.file("../a", b"")], "not a relative path"),
    ([initramfs.file("", b"")], "not a relative path"),
    ([initramfs.file("a", b""), initramfs.file("a/b", b"")], "needs it to be a directory"),
])
def test_newc_rejects_bad_entries(entries, message):
    with pytest.raises(MkdumpError, match=message):
        initramfs.newc_archive(entries)


@needs_cpio
def test_debian_cpio_lists_what_we_wrote(tmp_path):
    archive = tmp_path / "a.cpio"
    archive.write_bytes(initramfs.newc_archive(sample(), mtime=86400 * 365))
    out = subprocess.run(["cpio", "-itv", "--quiet", "-F", str(archive)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    names = [line.split()[-1] for line in out]
    assert names == ["dev", "dev/console", "etc", "etc/deep", "etc/deep/odd-size", "init", "proc"]
    console = out[1].split()
    assert console[0] == "crw-------" and console[2:4] == ["root", "root"] and console[4:6] == ["5,", "1"]
    assert out[5].split()[0] == "-rwxr-xr-x"
    assert all("1971" in line for line in out)


@needs_cpio
def test_debian_cpio_extracts_what_we_wrote(tmp_path):
    entries = [e for e in sample() if e.kind != "chardev"]  # mknod needs root; the listing test covers devices
    archive = tmp_path / "a.cpio"
    archive.write_bytes(initramfs.newc_archive(entries))
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames", "-F", str(archive)], cwd=dest,
                   check=True)
    assert (dest / "init").read_bytes() == b"\x7fELF-ish"
    assert (dest / "etc/deep/odd-size").read_bytes() == b"12345"
    assert stat.S_IMODE((dest / "init").stat().st_mode) == 0o755
    assert (dest / "proc").is_dir()


def test_our_reader_agrees_with_a_cpio_made_by_debian_cpio(tmp_path):
    if shutil.which("cpio") is None:
        pytest.skip("Debian's cpio is not installed")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"abc")
    made = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input=b"f\n", cwd=tmp_path / "src",
                          capture_output=True, check=True).stdout
    member, = parse_newc(made, block_padding=True)
    assert member["name"] == "f" and member["data"] == b"abc"


def test_gzip_is_deterministic_and_nameless():
    data = initramfs.newc_archive(sample())
    packed = initramfs.gzip_bytes(data)
    assert packed == initramfs.gzip_bytes(data)
    assert packed[:3] == b"\x1f\x8b\x08"
    assert packed[3] == 0          # no FNAME, FEXTRA, FCOMMENT: gzip -n stores no name
    assert packed[4:8] == b"\0\0\0\0"  # mtime 0
    assert gzip.decompress(packed) == data
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-dc"], input=packed, capture_output=True, check=True).stdout == data


def test_boot_test_entries_hold_init_module_params_and_console():
    members = {m["name"]: m for m in parse_newc(initramfs.newc_archive(
        initramfs.boot_test_entries(b"INIT", b"MODULE", "token=1"), mtime=0))}
    assert members["init"]["data"] == b"INIT" and stat.S_IMODE(members["init"]["mode"]) == 0o755
    assert members["module.ko"]["data"] == b"MODULE"
    assert members["module.params"]["data"] == b"token=1"
    assert members["dev/console"]["rdev"] == (5, 1)
    assert "mkexec.ko" not in members
    assert stat.S_ISDIR(members["proc"]["mode"])


def test_boot_test_entries_with_mkexec_add_one_member_and_stay_reproducible():
    def archive(order=1):
        entries = initramfs.boot_test_entries(b"INIT", b"MODULE", "token=1", b"MKEXEC")
        return initramfs.newc_archive(entries[::order], mtime=0)

    members = parse_newc(archive())
    by = {m["name"]: m for m in members}
    assert by["mkexec.ko"]["data"] == b"MKEXEC" and stat.S_IMODE(by["mkexec.ko"]["mode"]) == 0o644
    assert by["module.ko"]["data"] == b"MODULE"
    without = {m["name"] for m in parse_newc(initramfs.newc_archive(
        initramfs.boot_test_entries(b"INIT", b"MODULE", "token=1"), mtime=0))}
    assert set(by) - without == {"mkexec.ko"}
    assert archive() == archive(-1)
    assert initramfs.gzip_bytes(archive()) == initramfs.gzip_bytes(archive(-1))


# --- the static /init ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,elfclass,machine", [("x86_64", 64, "EM_X86_64"), ("i386", 32, "EM_386")])
def test_build_init_makes_a_static_elf_without_interpreter(tmp_path, arch, elfclass, machine):
    out = initramfs.build_init(arch, toolchain_cc=["gcc"], out_path=tmp_path / "sub" / "init")
    assert [p.name for p in out.parent.iterdir()] == ["init"]
    with open(out, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == elfclass
        assert elf["e_machine"] == machine
        assert elf["e_type"] == "ET_EXEC"
        types = [seg["p_type"] for seg in elf.iter_segments()]
        assert "PT_INTERP" not in types and "PT_DYNAMIC" not in types
        entry = elf["e_entry"]
        assert any(seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1
                   and seg["p_vaddr"] <= entry < seg["p_vaddr"] + seg["p_memsz"] for seg in elf.iter_segments())
        assert elf.get_section_by_name(".dynsym") is None
    again = initramfs.build_init(arch, toolchain_cc=["gcc"], out_path=tmp_path / "again")
    assert again.read_bytes() == out.read_bytes()


def test_build_init_reports_compiler_errors(tmp_path):
    src = tmp_path / "broken.c"
    src.write_text("this is not C\n")
    with pytest.raises(MkdumpError, match="compiling the boot-test init .*broken.c for x86_64 failed"):
        initramfs.build_init("x86_64", toolchain_cc=["gcc"], out_path=tmp_path / "init", source=src)
    assert not (tmp_path / "init").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.c"]
    with pytest.raises(MkdumpError, match="was not found"):
        initramfs.build_init("x86_64", toolchain_cc=["no-such-cc-here"], out_path=tmp_path / "init")
    with pytest.raises(MkdumpError, match="arch='arm'"):
        initramfs.build_init("arm", toolchain_cc=["gcc"], out_path=tmp_path / "init")
