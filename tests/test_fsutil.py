import os

from mkdump import fsutil


def test_replace_dir_swaps_in_the_new_tree_and_drops_the_old(tmp_path):
    dest = tmp_path / "tree"
    dest.mkdir()
    (dest / "old").write_text("old")
    staging = fsutil.staging_dir(str(dest))
    (tmp_path / os.path.basename(staging) / "new").write_text("new")
    fsutil.replace_dir(staging, str(dest))
    assert os.listdir(dest) == ["new"]
    assert os.listdir(tmp_path) == ["tree"]


def test_replace_dir_into_an_empty_place(tmp_path):
    staging = fsutil.staging_dir(str(tmp_path / "tree"))
    fsutil.replace_dir(staging, str(tmp_path / "tree"))
    assert os.listdir(tmp_path) == ["tree"]


def test_write_atomic_sets_mode_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "sub" / "script"
    fsutil.write_atomic(str(dest), "#!/bin/sh\n", 0o755)
    fsutil.write_atomic(str(dest), "#!/bin/sh\necho\n", 0o755)
    assert dest.read_text() == "#!/bin/sh\necho\n"
    assert dest.stat().st_mode & 0o777 == 0o755
    assert os.listdir(dest.parent) == ["script"]


def test_stale_staging_finds_what_killed_stages_leave_and_nothing_else(tmp_path):
    stale = [".sconsign.tmp", "fetch/.stamp-k2j_8abc", "x86_64/.minik.tmp-abcd1234", "x86_64/.system.old-zz9_0aaa",
             "x86_64/.mkexec.tmp-0123abcd", "x86_64/.out.tmp-q1w2e3r4", "x86_64/mkdump-boot-a1b2c3d4",
             "x86_64/src/.linux-2.6.9.unpack-u1n2p3k4", "x86_64/src/.mkexec.unpack-aaaaaaaa",
             "x86_64/stamps/.stamp-abcdefgh", "x86_64/reports/patch-minik.txt.tmp", "x86_64/out/manifest.json.tmp",
             "i386/checked/vmlinux.bin.tmp"]
    kept = [".sconsign.dblite", ".mkdump.lock", "notes.tmp", "fetch/linux.json", "x86_64/minik/.tmp_versions/x",
            "x86_64/minik/.config", "x86_64/minik/.minik.tmp-abcd1234/x", "x86_64/src/linux-2.6.9/.x.tmp-abcd1234",
            "x86_64/out/vmlinux.bin", "x86_64/stamps/patch-minik.json", "x86_64/.minik.tmp-toolong12",
            "x86_64/logs/build-minik.log", "repro/a/x86_64/.minik.tmp-abcd1234/x"]
    for rel in stale + kept:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "tmp-" in rel or "unpack-" in rel or "old-" in rel or "boot-" in rel:
            path.mkdir(exist_ok=True)
        else:
            path.write_text("x")
    assert fsutil.stale_staging(str(tmp_path), ("x86_64", "i386")) == sorted(str(tmp_path / p) for p in stale)
    said = []
    fsutil.remove_stale_staging(str(tmp_path), ("x86_64", "i386"), said.append)
    assert len(said) == 1 and said[0].startswith(f"mkdump: removed what an interrupted run left in {tmp_path}: ")
    assert not any((tmp_path / p).exists() for p in stale)
    assert all((tmp_path / p).exists() for p in kept)
