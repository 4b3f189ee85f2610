"""mkdump.mkdutils: layout check, the build with today's gcc for this machine, the tools' checks, the tar."""
import os
import shutil
import subprocess
import tarfile

import pytest

from mkdump import install as inst
from mkdump import mkdutils as tools
from mkdump.errors import MkdumpError
from mkdump.unpack import unpack
from support import standin_mkdutils as standin

EPOCH = 1126051200
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("make") is None,
                               reason="gcc and make are needed (packages.debian has them)")


def unpacked(tmp_path, **kw):
    archive = standin.make_taz(tmp_path / "mkdutils.taz", **kw)
    dest = tmp_path / "src"
    unpack(str(archive), str(dest), log=lambda m: None)
    return dest


@pytest.mark.parametrize("compression", ["gzip", "compress"])
def test_the_standin_unpacks_to_its_layout_whatever_taz_means(tmp_path, compression):
    if compression == "compress" and shutil.which("compress") is None:
        pytest.skip("compress is not installed (packages.debian has ncompress)")
    root = unpacked(tmp_path, compression=compression)
    assert tools.missing_parts(str(root)) == []
    assert tools.find_layout(str(root)) == str(root)    # unpack makes the one top directory the tree


def test_a_flat_archive_is_found_too(tmp_path):
    root = unpacked(tmp_path, top="")
    assert tools.find_layout(str(root)) == str(root)


@pytest.mark.parametrize("files, lacks", [
    ({"README": "no code here\n"}, "a Makefile and C sources"),
    ({"Makefile": "all:\n"}, "C sources"),
    ({"mkdconv.c": "int main(){return 0;}\n"}, "a Makefile"),
])
def test_a_wrong_archive_is_named_with_what_it_lacks(tmp_path, files, lacks):
    root = unpacked(tmp_path, files=files)
    with pytest.raises(MkdumpError, match=f"lacks {lacks} .*mkdutils.taz of 2005-09-07"):
        tools.find_layout(str(root))


def test_a_missing_tree_says_to_unpack(tmp_path):
    with pytest.raises(MkdumpError, match="run the unpack stage first"):
        tools.find_layout(str(tmp_path / "nothing"))


@needs_gcc
def test_plain_gcc_12_cannot_build_it_but_the_flags_can(tmp_path):
    """The stand-in is 2005 C: without our flags today's gcc stops at the link (-fno-common)."""
    src = tools.find_layout(str(unpacked(tmp_path)))
    plain = tmp_path / "plain"
    shutil.copytree(src, plain)
    assert subprocess.run(["make"], cwd=plain, capture_output=True).returncode != 0
    built = tools.build(src, str(tmp_path / "work"), log_path=str(tmp_path / "log"), log=lambda m: None)
    assert built == list(standin.TOOLS)


@needs_gcc
def test_built_tools_pass_their_checks_and_pack_reproducibly(tmp_path):
    src = tools.find_layout(str(unpacked(tmp_path)))
    trees = []
    for name in ("a", "b"):
        work = tmp_path / name
        built = tools.build(src, str(work), log_path=str(tmp_path / f"{name}.log"), log=lambda m: None)
        checks = tools.check_tools(str(work), built, [str(work)])
        assert [c["name"] for c in checks] == ["mkdutils mkdconv", "mkdutils mkdinfo"]
        assert all(c["ok"] for c in checks), checks
        assert tools.pack(str(work), built, str(work / "t.tar"), epoch=EPOCH) == ["mkdconv", "mkdinfo"]
        trees.append(work)
    assert (trees[0] / "t.tar").read_bytes() == (trees[1] / "t.tar").read_bytes()
    with tarfile.open(trees[0] / "t.tar") as tar:
        assert [(i.name, i.mode, i.mtime, i.uid) for i in tar.getmembers()] == [
            ("sbin/mkdconv", 0o755, EPOCH, 0), ("sbin/mkdinfo", 0o755, EPOCH, 0)]
    out = subprocess.run([str(trees[0] / "mkdinfo")], input=b"12345", capture_output=True)
    assert out.stdout == b"5 bytes\n"


@needs_gcc
def test_a_build_path_inside_a_tool_fails_its_check(tmp_path):
    src = tools.find_layout(str(unpacked(tmp_path)))
    work = tmp_path / "work"
    built = tools.build(src, str(work), log_path=str(tmp_path / "log"), log=lambda m: None)
    with open(work / "mkdinfo", "ab") as f:
        f.write(str(tmp_path / "builder").encode())
    checks = {c["name"]: c for c in tools.check_tools(str(work), built, [str(tmp_path / "builder")])}
    assert checks["mkdutils mkdconv"]["ok"]
    assert not checks["mkdutils mkdinfo"]["ok"] and "build directory" in checks["mkdutils mkdinfo"]["figure"]


@needs_gcc
def test_an_object_file_is_no_linked_executable(tmp_path):
    (tmp_path / "x.c").write_text("int f(void) { return 1; }\n")
    subprocess.run(["gcc", "-c", "x.c", "-o", "x.o"], cwd=tmp_path, check=True)
    os.chmod(tmp_path / "x.o", 0o755)
    assert tools.new_executables(str(tmp_path), set()) == ["x.o"]
    [check] = tools.check_tools(str(tmp_path), ["x.o"], [])
    assert not check["ok"] and "not a linked executable" in check["figure"]


def test_a_failing_make_is_one_error_naming_the_log(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Makefile").write_text("all:\n\t@echo broken >&2; exit 3\n")
    with pytest.raises(MkdumpError, match=r"(?s)building mkdutils failed \(make exit 2\).*broken.*Full log"):
        tools.build(str(src), str(tmp_path / "work"), log_path=str(tmp_path / "log"), log=lambda m: None)


def test_an_outer_makes_flags_do_not_reach_its_make(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEFLAGS", "n")      # a user's `make -n` around scons: make would build nothing
    src = tmp_path / "src"
    src.mkdir()
    (src / "Makefile").write_text("all:\n\tcp /bin/true tool\n")
    assert tools.build(str(src), str(tmp_path / "work"), log_path=str(tmp_path / "log"), log=print) == ["tool"]


def test_a_make_that_builds_nothing_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Makefile").write_text("all:\n\t@true\n")
    with pytest.raises(MkdumpError, match="made no executable"):
        tools.build(str(src), str(tmp_path / "work"), log_path=str(tmp_path / "log"), log=lambda m: None)


@pytest.mark.parametrize("name, kind", [("sbin/../../etc/passwd", tarfile.REGTYPE), ("bin/x", tarfile.REGTYPE),
                                        ("sbin/x", tarfile.SYMTYPE), ("sbin", tarfile.DIRTYPE)])
def test_members_refuses_anything_but_sbin_tools(tmp_path, name, kind):
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        tar.addfile(info)
    with pytest.raises(MkdumpError, match="not a tool sbin/<name>"):
        tools.members(str(tmp_path / "t.tar"))


def test_install_puts_the_tools_under_prefix_sbin(tmp_path):
    out = tmp_path / "build" / "x86_64" / "out"
    out.mkdir(parents=True)
    files = {"vmlinux.bin": "vmlinux.bin", "System.map": "minik-System.map", "manifest.json": "manifest.json",
             "load-script": "mkdump-load-x86_64", "mkexec.ko": "mkexec.ko", "kernel-image": "system-bzImage"}
    for name in files.values():
        (out / name).write_bytes(name.encode())
    work = tmp_path / "work"
    work.mkdir()
    (work / "mkdconv").write_bytes(b"tool")
    tools.pack(str(work), ["mkdconv"], str(out / "mkdutils.tar"), epoch=EPOCH)
    dest = tmp_path / "dest"
    got = inst.install(str(out), destdir=str(dest), prefix="/opt/m", release="2.6.9", files=files,
                       tools="mkdutils.tar", log=lambda m: None)
    tool = dest / "opt/m/sbin/mkdconv"
    assert got[-1] == str(tool)
    assert tool.read_bytes() == b"tool"
    assert tool.stat().st_mode & 0o7777 == 0o755 and tool.stat().st_mtime == EPOCH


@needs_gcc
def test_a_tool_for_another_machine_fails_its_check(tmp_path):
    """-m32 on a 64-bit machine (or -m64 on a 32-bit one): another ELF class than this machine's."""
    (tmp_path / "x.c").write_text("int main(void) { return 0; }\n")
    other = "-m64" if tools.host_machine()[0] == 1 else "-m32"
    if subprocess.run(["gcc", other, "x.c", "-o", "x"], cwd=tmp_path, capture_output=True).returncode != 0:
        pytest.skip(f"gcc {other} cannot link here (packages.debian's gcc-multilib gives it)")
    [check] = tools.check_tools(str(tmp_path), ["x"], [])
    assert not check["ok"] and "not this machine's" in check["figure"]
