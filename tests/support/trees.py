"""Making and comparing directory trees in tests."""
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


def make_tree(root, files):
    """The files {relative path: bytes or text} written under root (made as needed); returns root."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return root
