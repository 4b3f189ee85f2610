import hashlib
import os

import pytest
from hypothesis import given, strategies as st

from mkdump.errors import MkdumpError
from mkdump.narhash import nar_sha256, nix32_decode, nix32_encode, normalize_sha256, write_nar

PIN_HEX = "02573e89056d5b89b65ae3b62808b3758dbe0943896dd683665491fca8dc36c3"
PIN_NIX32 = "1hrnvjlgr4alcs1xcvc98c4vx3bmnc42idp3bav8jnvd0n4kwmq2"
PIN_SRI = "sha256-Alc+iQVtW4m2WuO2KAizdY2+CUOJbdaDZlSR/KjcNsM="


def nar_bytes(path):
    out = []
    write_nar(path, out.append)
    return b"".join(out)


def s(data):
    """A NAR string, written out from the format description for the expected streams below."""
    return len(data).to_bytes(8, "little") + data + bytes(-len(data) % 8)


def test_single_file_byte_for_byte(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"hi")
    os.chmod(f, 0o644)
    expected = bytes.fromhex(
        "0d00000000000000" "6e69782d61726368" "6976652d31000000"   # 13 "nix-archive-1" + 3 padding
        "0100000000000000" "2800000000000000"                      # "("
        "0400000000000000" "7479706500000000"                      # "type"
        "0700000000000000" "726567756c617200"                      # "regular"
        "0800000000000000" "636f6e74656e7473"                      # "contents"
        "0200000000000000" "6869000000000000"                      # "hi"
        "0100000000000000" "2900000000000000")                     # ")"
    assert nar_bytes(f) == expected
    assert nar_sha256(f) == hashlib.sha256(expected).hexdigest()


def test_tiny_tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "b").write_bytes(b"hello")
    (root / "B").write_bytes(b"")
    (root / "a.sh").write_bytes(b"#!/bin/sh\n")
    (root / "sub" / "z").write_bytes(b"12345678")
    os.symlink("b", root / "link")
    for p in ("b", "B", "sub/z"):
        os.chmod(root / p, 0o644)
    os.chmod(root / "a.sh", 0o755)

    def entry(name, node):
        return s(b"entry") + s(b"(") + s(b"name") + s(name) + s(b"node") + node + s(b")")

    def regular(contents, executable=False):
        return (s(b"(") + s(b"type") + s(b"regular") + (s(b"executable") + s(b"") if executable else b"")
                + s(b"contents") + s(contents) + s(b")"))

    # Sorted by name bytes: "B" (0x42) before "a.sh" (0x61) before "b", "link", "sub".
    expected = (s(b"nix-archive-1") + s(b"(") + s(b"type") + s(b"directory")
                + entry(b"B", regular(b""))
                + entry(b"a.sh", regular(b"#!/bin/sh\n", executable=True))
                + entry(b"b", regular(b"hello"))
                + entry(b"link", s(b"(") + s(b"type") + s(b"symlink") + s(b"target") + s(b"b") + s(b")"))
                + entry(b"sub", s(b"(") + s(b"type") + s(b"directory") + entry(b"z", regular(b"12345678")) + s(b")"))
                + s(b")"))
    assert nar_bytes(root) == expected
    assert nar_sha256(root) == hashlib.sha256(expected).hexdigest()


def test_only_the_owner_execute_bit_counts(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    os.chmod(f, 0o644)
    plain = nar_sha256(f)
    os.chmod(f, 0o654)       # group x, other r: still not executable for NAR
    assert nar_sha256(f) == plain
    os.utime(f, (0, 0))
    assert nar_sha256(f) == plain
    os.chmod(f, 0o700)
    assert nar_sha256(f) != plain


def test_fifo_has_no_tree_hash(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(MkdumpError, match="pipe"):
        nar_sha256(tmp_path)


def test_known_pin_spellings():
    assert nix32_encode(bytes.fromhex(PIN_HEX)) == PIN_NIX32
    assert nix32_decode(PIN_NIX32).hex() == PIN_HEX
    for spelling in (PIN_HEX, PIN_HEX.upper(), PIN_NIX32, PIN_SRI, "sha256:" + PIN_NIX32, "sha256:" + PIN_HEX):
        assert normalize_sha256(spelling) == PIN_HEX


@given(st.binary(min_size=1, max_size=64))
def test_nix32_round_trip(digest):
    assert nix32_decode(nix32_encode(digest)) == digest


@given(st.binary(min_size=32, max_size=32))
def test_normalize_accepts_every_spelling(digest):
    assert normalize_sha256(nix32_encode(digest)) == digest.hex()
    assert normalize_sha256(digest.hex()) == digest.hex()


@pytest.mark.parametrize("bad", [
    "",
    PIN_HEX[:-1],                       # 63 hex digits
    PIN_HEX[:-1] + "g",                 # not hex
    PIN_NIX32[:-1] + "e",               # 'e' is not in the nix alphabet
    "z" * 52,                           # more than 256 bits
    "sha256-" + PIN_SRI[7:-2],          # broken base64
    "sha1-" + PIN_SRI[7:],
    None,
])
def test_malformed_hashes(bad):
    with pytest.raises(MkdumpError, match="is not a SHA-256"):
        normalize_sha256(bad)
