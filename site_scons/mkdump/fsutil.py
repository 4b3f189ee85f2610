"""Putting finished outputs in place: whole or not at all, so an interrupted run never leaves half a result."""
import os
import shutil
import tempfile


def replace_dir(staging, dest):
    """Move a finished staging directory to dest, replacing an old dest only once the new one is complete."""
    trash = None
    if os.path.lexists(dest):
        trash = tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".old-", dir=os.path.dirname(dest))
        os.rename(dest, os.path.join(trash, "d"))
    os.rename(staging, dest)
    if trash:
        shutil.rmtree(trash)


def write_atomic(dest, text, mode=None):
    """Write a small output so that readers see the old file or the new one, never half of one."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = dest + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, dest)


def tree_file_mode(mode):
    """The permission bits a file written into a source tree keeps of `mode` (an archive member's, a patch's).

    What tarfile's "data" filter keeps: the owner may always read and write; no setuid, setgid or sticky bit and no
    group or other write, whatever the archive or patch asks for; execute bits only where the owner's is set.
    """
    mode = (mode | 0o600) & 0o755
    if not mode & 0o100:
        mode &= ~0o111
    return mode


def staging_dir(dest):
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="." + os.path.basename(dest) + ".tmp-", dir=parent)
