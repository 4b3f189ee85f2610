"""Reproducible initramfs images for the boot proofs: a cpio "newc" archive, gzip-compressed.

2.6.9 unpacks a cpio newc archive passed as initrd into its rootfs and runs /init from it. We write the archive
ourselves instead of calling cpio(1) or the kernel's gen_init_cpio, because both stamp entries with the build
machine's owners and times; here the same entries always give the same bytes.
"""
import gzip
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mkdump import arch as arches
from mkdump.errors import MkdumpError

ROOT = Path(__file__).resolve().parents[2]
INIT_SOURCE = ROOT / "kernel" / "boot-test" / "init.c"

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"

# Every arch needs a freestanding static executable: no libc (today's glibc refuses kernels older than 3.2), no
# dynamic loader (the initramfs has none), no PIE (a static PIE is relocated by libc's start code, which
# -nostdlib leaves out). The arch file adds its arch_cflags and the system-call numbers (-DNR_<name>=<number>).
INIT_CFLAGS = ["-static", "-nostdlib", "-ffreestanding", "-fno-pie", "-no-pie", "-O2",
               "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-Wall", "-Werror"]


@dataclass(frozen=True)
class Entry:
    """One archive member. kind is "dir", "file", "chardev" or "blockdev"; rdev is (major, minor) for a device."""
    name: str
    kind: str
    mode: int
    data: bytes = b""
    rdev: tuple = (0, 0)


def directory(name, mode=0o755):
    return Entry(name, "dir", mode)


def file(name, data, mode=0o644):
    return Entry(name, "file", mode, bytes(data))


def chardev(name, major, minor, mode=0o600):
    return Entry(name, "chardev", mode, rdev=(major, minor))


def blockdev(name, major, minor, mode=0o600):
    return Entry(name, "blockdev", mode, rdev=(major, minor))


_TYPE_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK}


def _normalise(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise MkdumpError(f"initramfs entry name {name!r} is not a relative path inside the archive: "
                          "use names such as 'init' or 'dev/console'.")
    return "/".join(parts)


def _default_mtime():
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    try:
        mtime = int(value)
    except ValueError:
        raise MkdumpError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds: set it to an integer "
                          "such as the last commit's time, or unset it.") from None
    if not 0 <= mtime <= 0xFFFFFFFF:
        raise MkdumpError(f"SOURCE_DATE_EPOCH={value!r} does not fit cpio's 32-bit mtime: use a time between "
                          "1970 and 2106.")
    return mtime


def _header(ino, mode, nlink, mtime, size, rdev, namesize):
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], namesize, 0)
    return NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad4(n):
    return b"\0" * (-n % 4)


def newc_archive(entries, *, mtime=None):
    """The bytes of a cpio newc archive holding entries, sorted by name, owned by 0:0, all stamped mtime.

    Missing parent directories are added (mode 0755) so the kernel can create every member. mtime defaults to
    SOURCE_DATE_EPOCH, else 0. Inode numbers count up from 1 in name order, so no two members look like hard
    links to the kernel's unpacker.
    """
    if mtime is None:
        mtime = _default_mtime()
    members = {}
    for entry in entries:
        name = _normalise(entry.name)
        if entry.kind not in _TYPE_BITS:
            raise ValueError(f"unknown initramfs entry kind {entry.kind!r}")
        if name in members:
            raise MkdumpError(f"initramfs entry {name!r} is given twice: keep one of them.")
        members[name] = Entry(name, entry.kind, entry.mode, entry.data, entry.rdev)
    for name in list(members):
        parent = name.rpartition("/")[0]
        while parent:
            if parent not in members:
                members[parent] = directory(parent)
            elif members[parent].kind != "dir":
                raise MkdumpError(f"initramfs entry {parent!r} is a {members[parent].kind} but {name!r} needs "
                                  "it to be a directory: rename one of them.")
            parent = parent.rpartition("/")[0]

    out = bytearray()
    # Sorting byte-wise puts every directory before its members, which the unpacker needs.
    for ino, name in enumerate(sorted(members, key=lambda n: n.encode()), start=1):
        entry = members[name]
        data = entry.data if entry.kind == "file" else b""
        raw = name.encode() + b"\0"
        nlink = 2 if entry.kind == "dir" else 1
        out += _header(ino, _TYPE_BITS[entry.kind] | (entry.mode & 0o7777), nlink, mtime, len(data),
                       entry.rdev if entry.kind in ("chardev", "blockdev") else (0, 0), len(raw))
        out += raw + _pad4(110 + len(raw))
        out += data + _pad4(len(data))
    raw = TRAILER.encode() + b"\0"
    out += _header(0, 0, 1, 0, 0, (0, 0), len(raw)) + raw + _pad4(110 + len(raw))
    return bytes(out)


def gzip_bytes(data):
    """gzip -n -9: no file name, mtime 0, so equal input gives equal output."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def boot_test_entries(init_exe, module_ko, params="", mkexec_ko=None, via_kmsg=False):
    """The members of the system-kernel boot test: our /init, the module it loads and the parameters it passes,
    and, if given, /mkexec.ko, which /init loads after the module (with no parameters) before looking in
    /proc/mkexec.

    via_kmsg: /init writes its lines to /dev/kmsg (the kernel log), for a kernel whose only console on the serial
    line is earlyprintk's.

    /dev/console must exist before /init runs: the kernel opens it as init's stdin/stdout/stderr. /init mounts
    proc on /proc, so that directory must exist too.
    """
    entries = [
        file("init", init_exe, 0o755),
        file("module.ko", module_ko),
        file("module.params", params.encode()),
        directory("dev"),
        chardev("dev/console", 5, 1),
        directory("proc"),
        directory("sys"),
    ]
    if mkexec_ko is not None:
        entries.append(file("mkexec.ko", mkexec_ko))
    if via_kmsg:
        entries += [file("say-via-kmsg", b""), chardev("dev/kmsg", 1, 11)]
    return entries


def plan_entries(plan):
    """What a bootdisk.Plan adds to the initramfs: its /plan text, the modules it loads (/modules/<name>.ko), the
    disk's device node, and /mnt to mount it on."""
    return ([file("plan", plan.text.encode())]
            + [file(f"modules/{name}.ko", data) for name, data in plan.modules.items()]
            + [blockdev(plan.device.lstrip("/"), *plan.rdev), directory(plan.mount_point.lstrip("/"))])


def build_init(arch, *, toolchain_cc, out_path, source=INIT_SOURCE, log=None):
    """Compile our static /init for arch with toolchain_cc (an argument list such as ["gcc"]) into out_path."""
    if arch not in arches.names():
        raise MkdumpError(f"arch={arch!r} has no boot-test init: use one of {', '.join(sorted(arches.names()))}.")
    facts = arches.load(arch)
    # The first compiler the arch file tries is the host's own, with what it needs for this arch.
    package = facts.toolchain["compilers"][0]["package"]
    syscalls = [f"-DNR_{name}={number}" for name, number in sorted(facts.syscalls.items())]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".init-", dir=out_path.parent)
    os.close(fd)
    cmd = (list(toolchain_cc) + list(facts.toolchain["arch_cflags"]) + INIT_CFLAGS + syscalls
           + ["-o", tmp, os.fspath(source)])
    if log:
        log(f"boot-test: compiling /init for {arch}")
    try:
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except FileNotFoundError:
            raise MkdumpError(f"the compiler {toolchain_cc[0]!r} was not found: install the Debian package "
                              f"{package} or name another compiler.") from None
        if proc.returncode != 0:
            raise MkdumpError(f"compiling the boot-test init {source} for {arch} failed with `{' '.join(cmd)}`; "
                              f"if the compiler lacks this arch, install the Debian package {package}. Compiler "
                              f"said:\n{proc.stdout.strip()}")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
