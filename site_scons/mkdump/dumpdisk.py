"""The mini kernel finds its dump disk: README step 4 under QEMU with a partitioned disk on the controller its
dump driver drives.

The mini kernel exists to write memory to one partition of one disk, through a driver built into it. For each disk
of kernel/boot-disks.toml whose every symbol the mini kernel builds in (=y), the proof makes a disk image with a
real partition table (sfdisk), boots the mini kernel stand-alone as the load script would start it (mem= with the
arch's rule, dump_dev= the image's last partition, encoded as the load script encodes it) in the memory the README
gives it, and passes only if the console shows the driver reading that partition table (`hda: hda1 hda2`).
"""
import os
import re
import shutil
import subprocess

from . import arch as arches
from . import boot, bootdisk
from .errors import MkdumpError
from .loadscript import encode_dump_dev, format_dump_dev
from .logs import log_default

# Two partitions, as a dump disk beside a swap or data partition would have; small, since only the table is read.
PARTITIONS_MB = (4, 4)


def disks_built_in(config_values, disks):
    """The disks whose every symbol the mini kernel builds in (it loads no modules)."""
    return [d for d in disks if all(config_values.get(s) == "y" for s in d.symbols)]


def make_partitioned_image(path, sizes_mb=PARTITIONS_MB):
    """A raw disk image at `path` holding an MS-DOS partition table with one Linux partition per size, written by
    sfdisk (what an administrator would use). Returns the partition numbers."""
    if shutil.which("sfdisk") is None:
        raise MkdumpError("sfdisk was not found: install Debian's fdisk package (the dump disk proof partitions its "
                          "disk image with it).")
    with open(path, "wb") as f:
        f.truncate((sum(sizes_mb) + 1) * 1024 * 1024)
    script = "label: dos\n" + "".join(f"size={mb}MiB, type=83\n" for mb in sizes_mb)
    proc = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", os.fspath(path)], input=script,
                          capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    if proc.returncode:
        raise MkdumpError(f"sfdisk could not write a partition table to {path} ({proc.stderr.strip()}); check "
                          "the disk space there.")
    return list(range(1, len(sizes_mb) + 1))


def partition_line(console, name):
    """The partition check's line for disk `name` (` hda: hda1 hda2`), as its list of partitions, or None."""
    found = None
    for line in console.splitlines():
        m = re.match(rf"\s*{re.escape(name)}:((?: {re.escape(name)}\d+)+)\s*$", line)
        if m:
            found = m.group(1).split()
    return found


def prove(arch, bzimage, config_values, *, mem_mb, workdir, console_dir, log=None, disks=None, timeout=None,
          arch_dir=arches.ARCH_DIR):
    """Boot the mini kernel once per built-in disk; a list of JSON-able reports. Raises BootError (with the
    console) when a boot does not show the disk's partitions."""
    if disks is None:
        disks, _ = bootdisk.load_disks()
    reports = []
    for disk in disks_built_in(config_values, disks):
        if disk.minik_unproven:
            (log or log_default)(f"boot {arch}: dump disk {disk.name} not proved: {disk.minik_unproven}")
            reports.append({"disk": disk.name, "why": disk.why, "proved": False, "reason": disk.minik_unproven})
            continue
        image = os.path.join(workdir, f"dump-disk-{disk.name}.img")
        os.makedirs(workdir, exist_ok=True)
        try:
            parts = make_partitioned_image(image)
            name = os.path.basename(disk.device)
            target = f"{name}{parts[-1]}"
            dump_dev = format_dump_dev(encode_dump_dev(target))
            console_log = os.path.join(console_dir, f"boot-minik-disk-{disk.name}.log")
            settings = boot.load_qemu_config(arch, "minik", arch_dir=arch_dir)
            memory_mb = settings["memory_mb"]
            append = " ".join(filter(None, [boot.minik_append(arch, mem_mb, dump_dev, arch_dir=arch_dir),
                                            settings.get("disk_append")]))

            def run(earlyprintk=False):
                return boot.boot(arch, bzimage, append=append, memory_mb=memory_mb,
                                 timeout=timeout, log=log, kind="minik", console_log=console_log,
                                 arch_dir=arch_dir, earlyprintk=earlyprintk, extra=bootdisk.qemu_args(disk, image))

            result, checks, retried = boot.checked_boot(run, log, kind="minik", expect_memory_kb=mem_mb * 1024)
        finally:
            if os.path.exists(image):
                os.remove(image)    # made for this boot only, and as large as its partitions
        listed = partition_line(result.console, name)
        if listed != [f"{name}{n}" for n in parts]:
            seen = f"it listed {' '.join(listed)}" if listed else "no partition check line for it"
            raise boot.BootError(f"the mini kernel did not read the partition table of its dump disk {name} on "
                                 f"{disk.name} ({disk.why}): {seen}, expected {name}: "
                                 f"{' '.join(name + str(n) for n in parts)}.", result)
        reports.append({"disk": disk.name, "why": disk.why, "proved": True, "device": name, "partitions": listed,
                        "dump_dev": {"name": target, "value": dump_dev},
                        "memory_kb": boot.reported_memory_kb(result.console), "mem_mb": mem_mb,
                        "machine_memory_mb": memory_mb, "seconds": round(result.seconds, 2),
                        "append": result.append, "timer_check_retries": retried,
                        "console": os.path.basename(console_log), "checks": checks})
    return reports
