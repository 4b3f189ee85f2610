"""Stage glue that the integration tests reach only indirectly."""
import pytest

from mkdump import layout as L
from mkdump import pipeline as P
from mkdump import stamp
from mkdump.errors import MkdumpError
from mkdump.sources import Source


def test_fetched_path_names_the_vanished_file(tmp_path):
    stamp.write(L.fetch_where(str(tmp_path), "minik"), {"path": str(tmp_path / "gone"), "url": None,
                                                        "origin": "cache", "file": "gone"})
    assert P.fetched_path_recorded(str(tmp_path), "minik") == str(tmp_path / "gone")
    with pytest.raises(MkdumpError, match="scons fetch"):
        P.fetched_path(str(tmp_path), "minik")
    assert P.fetched_path_recorded(str(tmp_path), "linux") is None


def test_fetch_signature_follows_definition_and_lock():
    src = Source("minik", "m.patch", ("http://a/m.patch",), None, None, ())
    a = P.fetch_signature(src, lock_sha256=None)
    b = P.fetch_signature(src, lock_sha256="ab" * 32)
    assert a != b and a["urls"] == ["http://a/m.patch"]


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
