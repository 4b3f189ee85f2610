"""install(): the documented layout, PREFIX, DESTDIR confinement and per-file atomicity."""
import os
import shutil

import pytest

from mkdump import install as inst
from mkdump import loadscript
from mkdump.errors import MkdumpError

SOURCES = {
    "vmlinux.bin": "vmlinux.bin",
    "System.map": "System.map",
    "manifest.json": "manifest.json",
    "load-script": "mkdump-load-x86_64",
    "mkexec.ko": "mkexec.ko",
    "kernel-image": "bzImage",
}


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "build" / "x86_64" / "out"
    out.mkdir(parents=True)
    for i, name in enumerate(SOURCES.values()):
        (out / name).write_bytes(f"artifact {name}\n".encode())
        os.utime(out / name, (1097794800 + i, 1097794800 + i))
    return out


def quiet(_msg):
    pass


def do_install(out, destdir, **kw):
    kw.setdefault("release", "2.6.9")
    kw.setdefault("files", dict(SOURCES))
    kw.setdefault("log", quiet)
    return inst.install(out, destdir=str(destdir), **kw)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_layout(out, tmp_path):
    dest = tmp_path / "dest"
    got = do_install(out, dest)
    expected = [
        "usr/share/mkdump/x86_64/vmlinux.bin",
        "usr/share/mkdump/x86_64/System.map",
        "usr/share/mkdump/x86_64/manifest.json",
        "usr/sbin/mkdump-load-x86_64",
        "lib/modules/2.6.9/extra/mkexec.ko",
        "boot/vmlinuz-2.6.9",
    ]
    assert got == [str(dest / e) for e in expected]
    assert tree(dest) == sorted(expected)
    for role, path in zip(inst.ROLES, got):
        source = out / SOURCES[role]
        assert open(path, "rb").read() == source.read_bytes()
        st = os.stat(path)
        assert st.st_mode & 0o7777 == (0o755 if role == "load-script" else 0o644)
        assert st.st_mtime_ns == source.stat().st_mtime_ns


def test_reinstall_is_identical(out, tmp_path):
    first = do_install(out, tmp_path / "a")
    second = do_install(out, tmp_path / "a")
    assert first == second
    assert tree(tmp_path / "a") == sorted(str(os.path.relpath(p, tmp_path / "a")) for p in first)


@pytest.mark.parametrize("prefix, data, sbin", [
    ("/usr/local", "usr/local/share/mkdump/x86_64", "usr/local/sbin"),
    ("/opt/mkdump/", "opt/mkdump/share/mkdump/x86_64", "opt/mkdump/sbin"),
    ("/", "share/mkdump/x86_64", "sbin"),
])
def test_prefix(out, tmp_path, prefix, data, sbin):
    dest = tmp_path / "dest"
    do_install(out, dest, prefix=prefix)
    assert (dest / data / "vmlinux.bin").is_file()
    assert (dest / sbin / "mkdump-load-x86_64").is_file()
    # The module and the kernel image follow the kernel's conventions, not PREFIX.
    assert (dest / "lib/modules/2.6.9/extra/mkexec.ko").is_file()
    assert (dest / "boot/vmlinuz-2.6.9").is_file()


def test_arch_from_out_dir_or_argument(out, tmp_path):
    elsewhere = tmp_path / "artifacts"
    shutil.copytree(out, elsewhere)
    with pytest.raises(MkdumpError, match="cannot tell the arch from .*pass arch="):
        do_install(elsewhere, tmp_path / "dest")
    got = do_install(elsewhere, tmp_path / "dest", arch="i386")
    assert got[0] == str(tmp_path / "dest/usr/share/mkdump/i386/vmlinux.bin")
    assert got[3] == str(tmp_path / "dest/usr/sbin/mkdump-load-i386")


def test_target_paths_feed_the_load_script():
    paths = inst.target_paths(arch="x86_64", release="2.6.9", prefix="/usr")
    text = loadscript.render_load_script(arch="x86_64", mem_mb=8, dump_dev="8:18", parameters="",
                                         vmlinux_bin_path=paths["vmlinux.bin"], module_path=paths["mkexec.ko"])
    assert "\nIMAGE='/usr/share/mkdump/x86_64/vmlinux.bin'\n" in text
    assert "\nMODULE='/lib/modules/2.6.9/extra/mkexec.ko'\n" in text
    assert paths["load-script"] == "/usr/sbin/" + loadscript.script_name("x86_64")


@pytest.mark.parametrize("kw, match", [
    (dict(prefix="usr"), "PREFIX='usr' must be an absolute path"),
    (dict(prefix="/usr/../../etc"), "may not contain `..`"),
    (dict(release="../../etc"), "must be a plain name"),
    (dict(release="2.6.9/x"), "must be a plain name"),
    (dict(release=".."), "must be a plain name"),
    (dict(release=""), "must be a plain name"),
    (dict(arch="arm"), "'arm' cannot be installed"),
    (dict(destdir=""), "DESTDIR is empty"),
])
def test_refusals(out, tmp_path, kw, match):
    destdir = kw.pop("destdir", tmp_path / "dest")
    with pytest.raises(MkdumpError, match=match):
        do_install(out, destdir, **kw)
    assert not (tmp_path / "dest").exists()


def test_missing_unknown_and_absent_files(out, tmp_path):
    files = dict(SOURCES)
    del files["System.map"], files["kernel-image"]
    with pytest.raises(MkdumpError, match="install lacks System.map, kernel-image; build them first"):
        do_install(out, tmp_path / "dest", files=files)
    with pytest.raises(MkdumpError, match="unknown roles initrd"):
        do_install(out, tmp_path / "dest", files=dict(SOURCES, initrd="initrd.img"))
    (out / "mkexec.ko").unlink()
    with pytest.raises(MkdumpError, match=r"mkexec.ko .*mkexec.ko does not exist"):
        do_install(out, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_symlink_leading_out_of_destdir_is_refused_before_writing(out, tmp_path):
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir()
    (dest / "lib").symlink_to(outside)
    with pytest.raises(MkdumpError, match=r"lib is a symlink to .*outside, outside DESTDIR"):
        do_install(out, dest)
    assert list(outside.iterdir()) == []
    assert tree(dest) == []


def test_relative_symlink_climbing_out_is_refused(out, tmp_path):
    dest = tmp_path / "dest"
    (dest / "usr").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (dest / "usr" / "share").symlink_to("../../etc")
    with pytest.raises(MkdumpError, match="outside DESTDIR"):
        do_install(out, dest)
    assert list((tmp_path / "etc").iterdir()) == []


def test_symlink_inside_destdir_is_followed(out, tmp_path):
    dest = tmp_path / "dest"
    (dest / "usr" / "lib").mkdir(parents=True)
    (dest / "lib").symlink_to("usr/lib")
    got = do_install(out, dest)
    assert str(dest / "lib/modules/2.6.9/extra/mkexec.ko") in got
    assert (dest / "usr/lib/modules/2.6.9/extra/mkexec.ko").is_file()


def test_existing_file_symlink_is_replaced_not_written_through(out, tmp_path):
    dest = tmp_path / "dest"
    (dest / "boot").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (dest / "boot" / "vmlinuz-2.6.9").symlink_to(victim)
    do_install(out, dest)
    assert victim.read_text() == "keep me"
    assert not (dest / "boot" / "vmlinuz-2.6.9").is_symlink()
    assert (dest / "boot" / "vmlinuz-2.6.9").read_bytes() == (out / "bzImage").read_bytes()


@pytest.mark.parametrize("blocker, match", [
    ("boot", "is in the way of the install layout"),
    ("boot/vmlinuz-2.6.9/", "is a directory where the kernel-image file belongs"),
])
def test_blocked_destination_is_refused_before_writing(out, tmp_path, blocker, match):
    dest = tmp_path / "dest"
    dest.mkdir()
    if blocker.endswith("/"):
        (dest / blocker).mkdir(parents=True)
    else:
        (dest / blocker).write_text("a file")
    with pytest.raises(MkdumpError, match=match):
        do_install(out, dest)
    assert not (dest / "usr").exists()


def test_failed_copy_keeps_old_file_and_leaves_no_temporaries(out, tmp_path, monkeypatch):
    dest = tmp_path / "dest"
    do_install(out, dest)
    (out / "mkexec.ko").write_bytes(b"new module\n")
    real_copy = shutil.copyfileobj

    def failing(src, dst, *a, **kw):
        if src.name.endswith("mkexec.ko"):
            dst.write(b"half")
            raise OSError(28, "No space left on device")
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copyfileobj", failing)
    with pytest.raises(MkdumpError, match=r"installing mkexec.ko to .*mkexec.ko failed \(No space left on device\)"):
        do_install(out, dest)
    assert (dest / "lib/modules/2.6.9/extra/mkexec.ko").read_bytes() == b"artifact mkexec.ko\n"
    assert os.listdir(dest / "lib/modules/2.6.9/extra") == ["mkexec.ko"]
