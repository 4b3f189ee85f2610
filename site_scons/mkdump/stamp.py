"""Stamp files: how a stage's output (often a whole tree) is represented to SCons."""
import hashlib
import json
import os
import tempfile


def dumps(data):
    """The canonical JSON text of a stamp: same data, same bytes."""
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def write(path, data):
    """Write a stamp atomically, so an interrupted run never leaves a half-written stamp behind."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".stamp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dumps(data))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read(path):
    with open(path) as f:
        return json.load(f)


def sha256_file(path):
    """The SHA-256 a stamp records for a file it vouches for."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
