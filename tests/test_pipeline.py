"""Stage glue that the integration tests reach only indirectly."""
import os
from dataclasses import replace

import pytest

from mkdump import layout as L
from mkdump import pipeline as P
from mkdump import stamp
from mkdump.errors import MkdumpError
from mkdump.sources import Source
from support.trees import make_tree


def write_fetch_stamps(root, path, sha256):
    stamp.write(L.fetch_where(root, "minik"), {"path": str(path), "url": None, "origin": "cache", "file": "m.patch",
                                               "identity": P.file_identity(path)})
    stamp.write(L.fetch_stamp(root, "minik"), {"name": "minik", "sha256": sha256, "tree_sha256": None})


def test_fetched_path_names_the_vanished_file(tmp_path):
    root = str(tmp_path)
    f = tmp_path / "gone"
    f.write_bytes(b"verified")
    verified = stamp.sha256_file(f)
    write_fetch_stamps(root, f, verified)
    src = Source("minik", "gone", ("http://a/gone",), None, None, ())
    assert not P.fetch_stamp_stale(root, src, verified)
    f.unlink()
    assert P.fetch_stamp_stale(root, src, verified)
    with pytest.raises(MkdumpError, match="scons fetch"):
        P.fetched_path(root, "minik")
    assert not P.fetch_stamp_stale(root, replace(src, name="linux"), None), "no stamp: nothing to void"


def test_fetch_is_redone_when_the_definition_or_the_lock_changes(tmp_path):
    src = Source("minik", "m.patch", ("http://a/m.patch",), None, None, ())
    assert P.fetch_signature(src)["urls"] == ["http://a/m.patch"]
    assert P.fetch_signature(src) != P.fetch_signature(replace(src, urls=("http://b/m.patch",)))
    root = str(tmp_path)
    f = tmp_path / "m.patch"
    f.write_bytes(b"verified")
    verified = stamp.sha256_file(f)
    assert not P.fetch_stamp_stale(root, src, None), "no stamp yet: nothing to void"
    write_fetch_stamps(root, f, verified)
    assert not P.fetch_stamp_stale(root, src, verified), "what trust on first use recorded"
    assert P.fetch_stamp_stale(root, src, "ab" * 32), "an edited lock entry"
    assert P.fetch_stamp_stale(root, src, None), "a deleted lock entry"
    assert not P.fetch_stamp_stale(root, replace(src, sha256=verified), "ab" * 32), "a pin makes the lock moot"


def test_series_inputs_split_sources_from_local_patches(tmp_path):
    series = tmp_path / "k.series"
    series.write_text("source:minik\nsource:mkexec/PATCH/x.patch\ncompat/a.patch arch=i386\ncompat/b.patch\n")
    files, srcs = P.series_inputs(str(series), "x86_64", "/p")
    assert files == ["/p/compat/b.patch"]
    assert srcs == ["minik", "mkexec"]


def test_missing_series_is_one_sentence(tmp_path):
    with pytest.raises(MkdumpError, match="cannot be read"):
        P.read_series(str(tmp_path / "nope.series"), "x86_64")


def test_fetched_file_swapped_after_verification_is_refused(tmp_path):
    f = tmp_path / "m.patch"
    f.write_bytes(b"verified")
    root = str(tmp_path)
    stamp.write(L.fetch_where(root, "minik"), {"path": str(f), "url": None, "origin": "cache", "file": "m.patch"})
    stamp.write(L.fetch_stamp(root, "minik"), {"name": "minik", "sha256": stamp.sha256_file(f),
                                               "tree_sha256": None})
    assert P.fetched_path(root, "minik") == str(f)
    f.write_bytes(b"swapped")
    with pytest.raises(MkdumpError, match="changed after it was verified"):
        P.fetched_path(root, "minik")


def test_a_file_edited_after_fetch_voids_its_stamp_even_with_its_old_mtime(tmp_path):
    root = str(tmp_path)
    f = tmp_path / "m.patch"
    f.write_bytes(b"verified")
    write_fetch_stamps(root, f, stamp.sha256_file(f))
    src = Source("minik", "m.patch", ("http://a/m.patch",), stamp.sha256_file(f), None, ())
    assert not P.fetch_stamp_stale(root, src, None)
    before = f.stat()
    f.write_bytes(b"swapped!")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert f.stat().st_size == before.st_size and f.stat().st_mtime_ns == before.st_mtime_ns
    assert P.fetch_stamp_stale(root, src, None)


def test_tree_state_sees_any_edit_even_with_the_old_mtime(tmp_path):
    tree = tmp_path / "tree"
    (tree / "init").mkdir(parents=True)
    f = tree / "init" / "main.c"
    f.write_bytes(b"int main;\n")
    state = P.tree_state(tree)
    assert P.tree_state(tree) == state
    before = f.stat()
    f.write_bytes(b"int mair;\n")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert P.tree_state(tree) != state
    state = P.tree_state(tree)
    (tree / "init" / "new.c").write_bytes(b"")
    assert P.tree_state(tree) != state


def test_a_kernel_is_built_in_its_object_directory_named_like_its_tree(tmp_path):
    lay = L.Layout(str(tmp_path / "build"), "x86_64")
    for kind in ("minik", "system"):
        assert lay.obj(kind) == str(tmp_path / "build" / "x86_64" / "obj" / kind)
        assert os.path.basename(lay.obj(kind)) == os.path.basename(lay.tree(kind))
        assert not lay.obj(kind).startswith(lay.tree(kind) + os.sep)


@pytest.mark.parametrize("left", [".config", "include/asm"])
def test_a_tree_configured_in_place_by_an_older_version_must_be_made_anew(tmp_path, left):
    lay = L.Layout(str(tmp_path / "build"), "x86_64")
    tree = lay.tree("minik")
    os.makedirs(os.path.join(tree, "include"))
    assert P.source_tree(lay, "minik") == tree
    if left == ".config":
        open(os.path.join(tree, ".config"), "w").close()
    else:
        os.symlink("asm-x86_64", os.path.join(tree, "include", "asm"))
    with pytest.raises(MkdumpError, match=rf"The minik kernel tree {tree} was configured or built in place "
                                          rf"\(it has {left}\); remove it and run again"):
        P.source_tree(lay, "minik")


def _linked(pristine, dest, written):
    """A kernel tree as the patch stage makes it: hard links to `pristine`, `written` as files of its own."""
    for path in pristine.rglob("*"):
        if path.is_file():
            (dest / path.relative_to(pristine)).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, dest / path.relative_to(pristine))
    for rel, text in written.items():
        (dest / rel).unlink(missing_ok=True)
        (dest / rel).write_text(text)
    return dest


def test_own_files_are_those_the_patches_wrote(tmp_path):
    pristine = make_tree(tmp_path / "src", {"a.c": "a\n", "d/b.h": "b\n", "d/c.h": "c\n"})
    tree = _linked(pristine, tmp_path / "minik", {"d/b.h": "patched\n", "new.c": "new\n"})
    assert P.own_files(tree, pristine) == {"d/b.h", "new.c"}
    assert os.path.samestat((tree / "a.c").stat(), (pristine / "a.c").stat())


def test_re_patching_keeps_the_times_of_what_did_not_change(tmp_path):
    pristine = make_tree(tmp_path / "src", {"a.c": "a\n", "b.h": "b\n", "c.h": "c\n", "d.h": "d\n"})
    old = _linked(pristine, tmp_path / "old", {"a.c": "a patched\n", "b.h": "b patched\n", "c.h": "c patched\n"})
    for name in ("a.c", "b.h", "c.h"):
        os.utime(old / name, ns=(10**18, 10**18))   # built long ago
    # One hunk edited (b.h), one patch left the series (c.h is the pristine file again), one new (d.h).
    new = _linked(pristine, tmp_path / "new", {"a.c": "a patched\n", "b.h": "b patched again\n",
                                               "d.h": "d patched\n"})
    pristine_mtime = (pristine / "c.h").stat().st_mtime_ns
    P.keep_timestamps(str(pristine), str(old), str(new))
    assert (new / "a.c").stat().st_mtime_ns == 10**18, "same contents: the old file's time"
    assert (new / "b.h").stat().st_mtime_ns > 10**18 and (new / "d.h").stat().st_mtime_ns > 10**18
    # c.h holds the pristine text, newer than what the old tree built, in a file of its own.
    assert (new / "c.h").read_text() == "c\n" and (new / "c.h").stat().st_mtime_ns > 10**18
    assert not os.path.samestat((new / "c.h").stat(), (pristine / "c.h").stat())
    assert (pristine / "c.h").stat().st_mtime_ns == pristine_mtime
    # Nothing to compare with on a first patch.
    P.keep_timestamps(str(pristine), str(tmp_path / "none"), str(new))


def test_a_per_arch_copy_of_an_unpacked_source_an_older_version_left_is_removed(tmp_path):
    lay = L.Layout(str(tmp_path), None)
    assert lay.src("linux") == str(tmp_path / "src" / "linux-2.6.9")
    assert lay.src("mkexec") == str(tmp_path / "src" / "mkexec")
    for arch in ("x86_64", "i386"):
        (tmp_path / arch / "src" / "linux-2.6.9" / "init").mkdir(parents=True)
        (tmp_path / arch / "src" / "linux-2.6.9" / "init" / "main.c").write_text("x")
        (tmp_path / arch / "src" / "mkexec").mkdir()
        (tmp_path / arch / "minik").mkdir()
    said = []
    P._remove_per_arch_copies(lay, "linux", said.append)
    for arch in ("x86_64", "i386"):
        assert not (tmp_path / arch / "src" / "linux-2.6.9").exists()
        assert (tmp_path / arch / "src" / "mkexec").is_dir() and (tmp_path / arch / "minik").is_dir()
    assert sorted(said) == [f"mkdump: removing {tmp_path / a / 'src' / 'linux-2.6.9'}: every arch now shares "
                            f"{tmp_path / 'src' / 'linux-2.6.9'}" for a in ("i386", "x86_64")]
