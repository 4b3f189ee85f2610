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
