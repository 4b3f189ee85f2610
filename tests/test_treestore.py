"""mkdump.treestore: verified trees in the download cache, linked into build directories and hashed again."""
import os
import stat
from pathlib import Path

from mkdump import treestore
from mkdump.narhash import nar_sha256


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "Makefile").write_text("all:\n")
    (root / "sub" / "a.c").write_text("int a;\n")
    os.symlink("a.c", root / "sub" / "link.c")
    for f in (root / "Makefile", root / "sub" / "a.c"):
        f.chmod(0o444)
    return nar_sha256(root)


def test_a_tree_put_in_the_store_is_linked_into_the_next_build_directory(tmp_path):
    cache, first, second = tmp_path / "cache", tmp_path / "b1" / "linux", tmp_path / "b2" / "linux"
    tree_hash = make_tree(first)
    assert treestore.same_filesystem(cache, tmp_path / "b2")
    assert not treestore.link_from_store(cache, tree_hash, second, log=print)
    treestore.add_to_store(cache, tree_hash, first, log=print)
    treestore.add_to_store(cache, tree_hash, first, log=print)      # there already: nothing to do
    said = []
    assert treestore.link_from_store(cache, tree_hash, second, log=said.append)
    assert nar_sha256(second) == tree_hash and "linked from the verified tree" in said[0]
    stored = Path(treestore.tree_path(cache, tree_hash))
    assert os.path.samestat(os.stat(second / "sub" / "a.c"), os.stat(stored / "sub" / "a.c"))
    assert os.path.samestat(os.stat(first / "sub" / "a.c"), os.stat(stored / "sub" / "a.c"))
    assert os.readlink(second / "sub" / "link.c") == "a.c"
    # Nothing is left beside the trees.
    assert sorted(os.listdir(tmp_path / "b2")) == ["linux"]
    assert sorted(os.listdir(cache / "trees")) == [tree_hash]


def test_a_stored_tree_that_changed_is_evicted_and_the_build_directory_keeps_its_own(tmp_path):
    cache, first, second = tmp_path / "cache", tmp_path / "b1" / "linux", tmp_path / "b2" / "linux"
    tree_hash = make_tree(first)
    treestore.add_to_store(cache, tree_hash, first, log=print)
    # An edit through any link (here the first build directory's) changes the stored file too.
    target = first / "sub" / "a.c"
    target.chmod(0o644)
    target.write_text("int a = 1;\n")
    second.mkdir(parents=True)
    (second / "kept").write_text("the tree this build directory had\n")
    said = []
    assert not treestore.link_from_store(cache, tree_hash, second, log=said.append)
    assert "changed since it was verified" in said[0]
    assert not os.path.exists(treestore.tree_path(cache, tree_hash))
    assert os.listdir(cache / "trees") == []
    assert (second / "kept").is_file() and sorted(os.listdir(tmp_path / "b2")) == ["linux"]


def test_the_store_of_a_build_on_another_filesystem_is_not_used(tmp_path, monkeypatch):
    real_stat = os.stat

    def other_device(path, *a, **k):
        st = real_stat(path, *a, **k)
        if str(path).endswith("trees"):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev + 1) + tuple(st)[3:])
        return st
    monkeypatch.setattr(os, "stat", other_device)
    assert not treestore.same_filesystem(tmp_path / "cache", tmp_path / "build")
    assert stat.S_ISDIR(real_stat(tmp_path / "cache" / "trees").st_mode)


def test_a_cache_that_cannot_keep_the_tree_only_says_so(tmp_path, monkeypatch):
    from mkdump.errors import NoSpace
    cache, first = tmp_path / "cache", tmp_path / "b1" / "linux"
    tree_hash = make_tree(first)

    def full(src, dest, what):
        os.makedirs(dest)
        raise NoSpace(f"linking the tree {src} into {dest}", dest, "No space left on device")
    monkeypatch.setattr(treestore, "link_tree", full)
    said = []
    treestore.add_to_store(cache, tree_hash, first, log=said.append)
    assert len(said) == 1 and "is not kept in the download cache's tree store" in said[0], said
    assert "No space left on device" in said[0] and os.listdir(cache / "trees") == []
    assert nar_sha256(first) == tree_hash


def _leftover(trees, name):
    place = trees / name / "tree"
    place.mkdir(parents=True)
    (place / "a.c").write_text("int a;\n")
    return trees / name


def test_what_killed_runs_left_in_the_store_is_removed_and_what_a_running_one_holds_is_not(tmp_path):
    import fcntl
    cache, first = tmp_path / "cache", tmp_path / "b1" / "linux"
    tree_hash = make_tree(first)
    trees = cache / "trees"
    killed_add, killed_evict = _leftover(trees, ".add-killed01"), _leftover(trees, ".evicted-killed2")
    running = _leftover(trees, ".add-running1")
    # Another run's lock on its place (flock belongs to the open file: another descriptor of this process is one).
    held = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        treestore.add_to_store(cache, tree_hash, first, log=print)
        assert sorted(os.listdir(trees)) == sorted([".add-running1", tree_hash])
        assert (running / "tree" / "a.c").is_file()
        assert not killed_add.exists() and not killed_evict.exists()
    finally:
        os.close(held)
    # Once that run is gone, evicting (the other way places are made) removes its place too.
    treestore.evict(cache, tree_hash)
    assert os.listdir(trees) == []


def test_a_place_taken_for_a_leftover_before_it_was_locked_is_made_again(tmp_path, monkeypatch):
    trees = tmp_path / "trees"
    trees.mkdir()
    made = []
    real_mkdtemp = treestore.tempfile.mkdtemp

    def raced(*a, **k):
        path = real_mkdtemp(*a, **k)
        made.append(path)
        if len(made) == 1:
            treestore.remove_leftovers(str(trees))    # another run, between this run's mkdtemp and its flock
        return path
    monkeypatch.setattr(treestore.tempfile, "mkdtemp", raced)
    with treestore._work_place(str(trees), treestore._ADDING) as place:
        assert place == made[1] and os.path.isdir(place) and not os.path.exists(made[0])
    assert os.listdir(trees) == []


def test_a_place_removed_between_its_open_and_its_lock_is_made_again(tmp_path, monkeypatch):
    trees = tmp_path / "trees"
    trees.mkdir()
    made, raced = [], []
    real_mkdtemp, real_open = treestore.tempfile.mkdtemp, os.open

    def mkdtemp(*a, **k):
        made.append(real_mkdtemp(*a, **k))
        return made[-1]

    def open_then_race(path, *a, **k):
        fd = real_open(path, *a, **k)
        if not raced:
            raced.append(path)
            treestore.remove_leftovers(str(trees))    # another run, between this run's open and its flock
        return fd
    monkeypatch.setattr(treestore.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(treestore.os, "open", open_then_race)
    with treestore._work_place(str(trees), treestore._ADDING) as place:
        assert raced == [made[0]] and place == made[1]
        assert os.path.isdir(place) and not os.path.exists(made[0])
    assert os.listdir(trees) == []
