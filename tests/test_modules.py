"""mkdump.modules: the modules tar (reproducible, checked when read) and modules.dep in module-init-tools 3.1's form."""
import io
import os
import tarfile

import pytest

from mkdump import install as inst
from mkdump import modules as mods
from mkdump.errors import MkdumpError

EPOCH = 1097794800


def make_moddir(root, release="2.6.9"):
    moddir = root / "lib" / "modules" / release
    (moddir / "kernel" / "drivers" / "scsi").mkdir(parents=True)
    (moddir / "kernel" / "fs").mkdir(parents=True)
    (moddir / "kernel" / "drivers" / "scsi" / "b.ko").write_bytes(b"b module")
    (moddir / "kernel" / "fs" / "a.ko").write_bytes(b"a module")
    os.chmod(moddir / "kernel" / "fs" / "a.ko", 0o600)
    os.symlink("/home/builder/linux", moddir / "build")
    os.symlink("/home/builder/linux", moddir / "source")
    return moddir


def test_pack_is_reproducible_and_leaves_out_the_build_links(tmp_path):
    one = make_moddir(tmp_path / "one")
    two = make_moddir(tmp_path / "two")
    os.utime(two / "kernel" / "fs" / "a.ko", (1, 1))
    assert mods.pack(str(one), "2.6.9", str(tmp_path / "1.tar"), epoch=EPOCH) == 2
    mods.pack(str(two), "2.6.9", str(tmp_path / "2.tar"), epoch=EPOCH)
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()
    with tarfile.open(tmp_path / "1.tar") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names)
    assert "lib/modules/2.6.9/build" not in names and "lib/modules/2.6.9/source" not in names
    assert "lib/modules/2.6.9/kernel/fs/a.ko" in names
    for i in infos:
        assert (i.uid, i.gid, i.mtime) == (0, 0, EPOCH)
        assert i.mode == (0o755 if i.isdir() else 0o644)


def test_pack_refuses_other_links(tmp_path):
    moddir = make_moddir(tmp_path)
    os.symlink("a.ko", moddir / "kernel" / "fs" / "c.ko")
    with pytest.raises(MkdumpError, match="neither a file nor a directory"):
        mods.pack(str(moddir), "2.6.9", str(tmp_path / "m.tar"), epoch=EPOCH)


def hostile_tar(path, name, kind=tarfile.REGTYPE):
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc"
        tar.addfile(info, io.BytesIO(b""))


@pytest.mark.parametrize("name, kind", [
    ("lib/modules/2.6.9/../../../etc/passwd", tarfile.REGTYPE),
    ("etc/passwd", tarfile.REGTYPE),
    ("lib/modules/2.6.10/kernel/x.ko", tarfile.REGTYPE),
    ("lib/modules/2.6.9/kernel", tarfile.SYMTYPE),
])
def test_members_refuses_what_no_modules_tree_holds(tmp_path, name, kind):
    hostile_tar(tmp_path / "m.tar", name, kind)
    with pytest.raises(MkdumpError, match="not a file or directory under lib/modules/2.6.9/"):
        mods.members(str(tmp_path / "m.tar"), "2.6.9")


def test_members_refuses_a_file_that_is_no_tar(tmp_path):
    (tmp_path / "m.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(MkdumpError, match="not a readable tar"):
        mods.members(str(tmp_path / "m.tar"), "2.6.9")


def test_make_absolute_gives_module_init_tools_3_1_form(tmp_path):
    dep = tmp_path / "modules.dep"
    dep.write_text("kernel/fs/b.ko: kernel/fs/a.ko extra/mkexec.ko\nextra/mkexec.ko:\nkernel/fs/a.ko:\n")
    assert mods.check_dep_format(str(dep), "2.6.9")
    mods.make_absolute(str(dep), "2.6.9")
    assert dep.read_text() == (
        "/lib/modules/2.6.9/extra/mkexec.ko:\n"
        "/lib/modules/2.6.9/kernel/fs/a.ko:\n"
        "/lib/modules/2.6.9/kernel/fs/b.ko: /lib/modules/2.6.9/kernel/fs/a.ko /lib/modules/2.6.9/extra/mkexec.ko\n")
    assert mods.check_dep_format(str(dep), "2.6.9") == []


def test_make_absolute_refuses_a_line_depmod_does_not_write(tmp_path):
    dep = tmp_path / "modules.dep"
    dep.write_text("no colon here\n")
    with pytest.raises(MkdumpError, match="modules.dep has a line"):
        mods.make_absolute(str(dep), "2.6.9")


def test_check_dep_format_names_a_path_outside_the_release(tmp_path):
    dep = tmp_path / "modules.dep"
    dep.write_text("/lib/modules/2.6.10/kernel/a.ko:\n")
    assert "not an absolute path of a module under /lib/modules/2.6.9/" in mods.check_dep_format(str(dep), "2.6.9")[0]


@pytest.mark.parametrize("jobs, flags", [(None, ""), (1, "-j1"), (2, "-j2")])
def test_modules_install_runs_in_the_object_directory_with_the_runs_jobs(tmp_path, monkeypatch, jobs, flags):
    monkeypatch.setenv("MAKEFLAGS", "n")      # an outer make's flags reach no make of ours
    tree, obj, root = tmp_path / "src", tmp_path / "obj", tmp_path / "root"
    tree.mkdir()
    obj.mkdir()
    (tree / "Makefile").write_text(
        "modules_install:\n\t@mkdir -p $(INSTALL_MOD_PATH)\n"
        "\t@printf '%s\\n' '$(CURDIR)' '$(KBUILD_SRC)' '$(ARCH)' '$(DEPMOD)' '$(filter -j%,$(MAKEFLAGS))' "
        "'$(findstring --jobserver-auth=,$(MAKEFLAGS))' > $(INSTALL_MOD_PATH)/got\n")
    log_path = tmp_path / "logs" / "modules-install.log"
    mods.modules_install(tree, root, obj=obj, make_args=["ARCH=x86_64"], log_path=log_path, log=print, jobs=jobs)
    assert (root / "got").read_text().splitlines() == [
        str(obj), str(tree), "x86_64", "/bin/true", flags, "--jobserver-auth=" if jobs == 2 else ""]
    assert log_path.read_text().startswith(f"# make {flags + ' ' if flags else ''}-C {obj} ")


def test_config_has_modules(tmp_path):
    (tmp_path / "on").write_text("CONFIG_X=y\nCONFIG_MODULES=y\n")
    (tmp_path / "off").write_text("# CONFIG_MODULES is not set\n")
    assert mods.config_has_modules(str(tmp_path / "on"))
    assert not mods.config_has_modules(str(tmp_path / "off"))


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "build" / "x86_64" / "out"
    out.mkdir(parents=True)
    files = {"vmlinux.bin": "vmlinux.bin", "System.map": "minik-System.map", "manifest.json": "manifest.json",
             "load-script": "mkdump-load-x86_64", "mkexec.ko": "mkexec.ko", "kernel-image": "system-bzImage",
             "kernel-map": "system-System.map", "kernel-config": "system-config"}
    for name in files.values():
        (out / name).write_bytes(f"artifact {name}\n".encode())
    mods.pack(str(make_moddir(tmp_path / "staged")), "2.6.9", str(out / "system-modules.tar"), epoch=EPOCH)
    return out, files


def fake_depmod(tmp_path, monkeypatch, text):
    """A depmod that writes what kmod's writes: relative paths."""
    tool = tmp_path / "bin" / "depmod"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\n# -b ROOT -F MAP RELEASE\nprintf '{text}' > \"$2/lib/modules/$5/modules.dep\"\n"
                    "umask 077; : > \"$2/lib/modules/$5/modules.alias\"\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:{os.environ['PATH']}")


def test_install_modules_with_dependency_data(out, tmp_path, monkeypatch):
    out, files = out
    fake_depmod(tmp_path, monkeypatch, "kernel/fs/a.ko:\\nextra/mkexec.ko: kernel/fs/a.ko\\n")
    dest = tmp_path / "dest"
    (dest / "lib/modules/2.6.9/kernel/gone").mkdir(parents=True)
    (dest / "lib/modules/2.6.9/kernel/gone/old.ko").write_bytes(b"old")
    got = inst.install(str(out), destdir=str(dest), release="2.6.9", files=files, modules="system-modules.tar",
                       depmod_log=str(tmp_path / "depmod.log"), log=lambda m: None)
    assert str(dest / "boot/System.map-2.6.9") in got and str(dest / "boot/config-2.6.9") in got
    moddir = dest / "lib/modules/2.6.9"
    assert (moddir / "kernel/fs/a.ko").read_bytes() == b"a module"
    assert not (moddir / "kernel/gone").exists(), "a module gone from the build must be gone from the install"
    assert not (moddir / "build").exists()
    assert (moddir / "modules.dep").read_text() == ("/lib/modules/2.6.9/extra/mkexec.ko: /lib/modules/2.6.9/kernel/"
                                                   "fs/a.ko\n/lib/modules/2.6.9/kernel/fs/a.ko:\n")
    for p in [moddir, *moddir.rglob("*")]:
        st = p.stat()
        assert st.st_mode & 0o7777 == (0o755 if p.is_dir() else 0o644), p
        if p.name != "mkexec.ko":
            assert st.st_mtime == EPOCH, p


def test_install_modules_needs_the_kernel_map(out, tmp_path):
    out, files = out
    del files["kernel-map"]
    with pytest.raises(MkdumpError, match="install lacks kernel-map"):
        inst.install(str(out), destdir=str(tmp_path / "dest"), release="2.6.9", files=files,
                     modules="system-modules.tar", log=lambda m: None)


def test_install_modules_without_depmod_says_install_kmod(out, tmp_path, monkeypatch):
    out, files = out
    monkeypatch.setattr(mods.shutil, "which", lambda *a, **k: None)
    with pytest.raises(MkdumpError, match="install kmod"):
        inst.install(str(out), destdir=str(tmp_path / "dest"), release="2.6.9", files=files,
                     modules="system-modules.tar", depmod_log=str(tmp_path / "d.log"), log=lambda m: None)


def test_the_installed_config_has_no_build_time():
    """2.6.9's conf writes the time into .config's header: two builds of one configuration would differ."""
    header = "#\n# Automatically generated make config: don't edit\n# Linux kernel version: 2.6.9\n"
    body = "#\nCONFIG_X86=y\n\n#\n# Wed Dec  2 10:00:00 2026\n#\nCONFIG_A=y\n"
    first = mods.installable_config(header + "# Wed Dec  2 10:00:00 2026\n" + body)
    second = mods.installable_config(header + "# Thu Dec  3 11:22:33 2026\n" + body)
    assert first == second == header + body, "only the header's time line goes; a body comment stays"
