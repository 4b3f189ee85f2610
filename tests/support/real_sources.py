"""A sources= directory for the real Linux 2.6.9 archive plus stand-ins for the unreachable mkdump files.

The stand-ins are computed at test time from the few real files they touch (one streaming pass over the archive);
nothing from the Linux tree is stored in this repository.
"""
import os
import tarfile
from pathlib import Path

from mkdump.unpack import unpack
from support import standin_mkdutils, standin_mkexec, standin_minik
from support.project import LINUX, MINIK, MKDUTILS, MKEXEC

WANTED = [kf.path for kf in standin_minik.KEYWORD_FILES] + list(standin_minik.KCONFIG_FILES) + ["kernel/Makefile"]


def extract_files(tarball, root, paths):
    """Only `paths` (regular files) of the real tree, in one streaming pass; returns root/linux-2.6.9."""
    wanted = {f"linux-2.6.9/{p}" for p in paths}
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.name in wanted:
                dest = Path(root) / member.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
                wanted.discard(member.name)
                if not wanted:
                    break
    assert not wanted, f"the archive lacks {sorted(wanted)}"
    return Path(root) / "linux-2.6.9"


def unpack_tree(tarball, root):
    """The whole real tree under root/linux-2.6.9, unpacked by the product (safe on every Python)."""
    tree = Path(root) / "linux-2.6.9"
    unpack(tarball, tree, log=lambda msg: None)
    return tree


def make_real_sources(tarball, workdir):
    workdir = Path(workdir)
    tree = extract_files(tarball, workdir / "files", WANTED)
    out = workdir / "sources"
    out.mkdir()
    os.symlink(os.path.abspath(tarball), out / LINUX)
    (out / MINIK).write_bytes(standin_minik.make_minik_standin(tree))
    standin_mkexec.make_taz(out / MKEXEC, patch_text=standin_mkexec.kernel_patch(tree),
                            workdir=workdir / "mkexec-tree")
    standin_mkdutils.make_taz(out / MKDUTILS)
    return out
