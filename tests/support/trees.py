"""Comparing directory trees in tests."""
import os


def snapshot(root):
    """Every directory (as 'rel/': None) and file (rel: bytes) under root, for before/after comparisons."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel + "/"] = None
        for n in filenames:
            with open(os.path.join(dirpath, n), "rb") as f:
                out[os.path.join(rel, n)] = f.read()
    return out
