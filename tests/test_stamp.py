import os

from mkdump import stamp


def test_write_is_canonical_and_atomic(tmp_path):
    p = tmp_path / "sub" / "s.json"
    stamp.write(p, {"b": 1, "a": [1, 2]})
    first = p.read_bytes()
    stamp.write(p, {"a": [1, 2], "b": 1})
    assert p.read_bytes() == first
    assert stamp.read(p) == {"a": [1, 2], "b": 1}
    assert [n for n in os.listdir(p.parent)] == ["s.json"]


def test_write_failure_leaves_old_stamp(tmp_path):
    p = tmp_path / "s.json"
    stamp.write(p, {"ok": True})
    try:
        stamp.write(p, {"bad": object()})
    except TypeError:
        pass
    else:
        raise AssertionError("an unserialisable stamp must fail")
    assert stamp.read(p) == {"ok": True}
    assert os.listdir(tmp_path) == ["s.json"]


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert stamp.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
