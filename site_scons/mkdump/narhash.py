"""Tree hashes: the SHA-256 of a file tree serialised as a Nix archive (NAR), and the hash spellings.

The Linux pin is a NAR hash because it identifies the *tree*, whatever archive or compression carried it
(see /work/shared/docs/sources.md for the format). Only what the NAR records matters: names, file contents,
the owner's execute bit and symlink targets; times, owners and other mode bits do not.
"""
import base64
import binascii
import hashlib
import os
import stat

from mkdump.errors import MkdumpError

NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_NIX32_INDEX = {c: i for i, c in enumerate(NIX32_ALPHABET)}
_CHUNK = 1 << 20


def _str(data):
    """A NAR string: 8-byte little-endian length, the bytes, zero padding to a multiple of 8."""
    return len(data).to_bytes(8, "little") + data + b"\0" * (-len(data) % 8)


def write_nar(path, write):
    """Serialise the file, directory or symlink at `path` as a NAR, passing the bytes to `write` in order.

    Raises MkdumpError for a node the NAR cannot represent (device, FIFO, socket).
    """
    write(_str(b"nix-archive-1"))
    _node(os.fsencode(path), write)


def _node(path, write):
    st = os.lstat(path)
    write(_str(b"(") + _str(b"type"))
    if stat.S_ISREG(st.st_mode):
        write(_str(b"regular"))
        if st.st_mode & stat.S_IXUSR:
            write(_str(b"executable") + _str(b""))
        write(_str(b"contents") + st.st_size.to_bytes(8, "little"))
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                write(chunk)
        if size != st.st_size:
            raise MkdumpError(f"{os.fsdecode(path)} changed size while it was being hashed; "
                              "make sure nothing else writes to the tree and run again.")
        write(b"\0" * (-size % 8))
    elif stat.S_ISLNK(st.st_mode):
        write(_str(b"symlink") + _str(b"target") + _str(os.readlink(path)))
    elif stat.S_ISDIR(st.st_mode):
        write(_str(b"directory"))
        # NAR orders entries by the bytes of their names, which is what sorting bytes gives.
        for name in sorted(os.listdir(path)):
            write(_str(b"entry") + _str(b"(") + _str(b"name") + _str(name) + _str(b"node"))
            _node(os.path.join(path, name), write)
            write(_str(b")"))
    else:
        raise MkdumpError(f"{os.fsdecode(path)} is neither a file, a directory nor a symlink, so it has no tree "
                          "hash; remove it from the tree.")
    write(_str(b")"))


def nar_sha256(path):
    """Hex SHA-256 of the NAR serialisation of the file, directory or symlink at `path`."""
    h = hashlib.sha256()
    write_nar(path, h.update)
    return h.hexdigest()


def nix32_encode(digest):
    """Nix's base32: the digest read as a little-endian number, 5-bit groups from the most significant down."""
    n = int.from_bytes(digest, "little")
    length = (len(digest) * 8 - 1) // 5 + 1
    return "".join(NIX32_ALPHABET[(n >> (5 * i)) & 31] for i in range(length - 1, -1, -1))


def nix32_decode(s):
    """Inverse of nix32_encode. Raises ValueError for a character outside the alphabet or a value too large."""
    size = len(s) * 5 // 8
    n = 0
    for c in s:
        if c not in _NIX32_INDEX:
            raise ValueError(f"{c!r} is not a nix base32 character")
        n = (n << 5) | _NIX32_INDEX[c]
    if n >> (size * 8):
        raise ValueError(f"{s!r} has bits set beyond {size} bytes")
    return n.to_bytes(size, "little")


def normalize_sha256(s):
    """A SHA-256 given as hex (64), nix base32 (52), SRI `sha256-<base64>` or `sha256:<hex|nix32>`, as hex.

    Raises MkdumpError naming the value when it is none of these.
    """
    text = s.strip() if isinstance(s, str) else ""
    try:
        if text.startswith("sha256-"):
            digest = base64.b64decode(text[len("sha256-"):], validate=True)
        else:
            if text.startswith("sha256:"):
                text = text[len("sha256:"):]
            if len(text) == 64:
                digest = binascii.unhexlify(text)
            elif len(text) == 52:
                digest = nix32_decode(text)
            else:
                digest = b""
    except (ValueError, binascii.Error):
        digest = b""
    if len(digest) != 32:
        raise MkdumpError(f"{s!r} is not a SHA-256: write it as 64 hex digits, 52 nix base32 characters "
                          "or SRI 'sha256-<base64>'.")
    return digest.hex()
