"""The mini kernel's dump disk proof: a partitioned image, the controller its driver drives, the console's
partition check."""
import json
import subprocess

import pytest

from mkdump import boot, dumpdisk
from mkdump.bootdisk import Disk, load_disks
from support import boot_consoles as consoles
from support import boot_fakeqemu as fakeqemu

IDE = Disk("ide-piix", "the board's PIIX3 IDE", ("BLK_DEV_IDEDISK", "BLK_DEV_PIIX"), ("piix", "ide_disk"),
           "/dev/hda", (3, 0), ("-drive", "file={image},format=raw,if=ide,index=0,media=disk"), 10)
SCSI = Disk("scsi-sym53c8xx", "LSI 53C895A", ("SCSI_SYM53C8XX_2", "BLK_DEV_SD"), ("sym53c8xx", "sd_mod"),
            "/dev/sda", (8, 0), ("-device", "lsi53c895a,id=scsi0", "-drive", "file={image},if=none,id=d0"), 20)


def test_the_image_has_a_real_partition_table(tmp_path):
    image = tmp_path / "disk.img"
    assert dumpdisk.make_partitioned_image(image, (4, 2)) == [1, 2]
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["label"] == "dos"
    assert [(p["size"] * 512 // 2**20, p["type"]) for p in table["partitions"]] == [(4, "83"), (2, "83")]
    assert image.stat().st_size == 7 * 2**20


@pytest.mark.parametrize("console, name, listed", [
    ("hda: 18432 sectors (9 MB)\r\n hda: hda1 hda2\r\n", "hda", ["hda1", "hda2"]),
    ("SCSI device sda: 18432 512-byte hdwr sectors (9 MB)\n sda: sda1 sda2 sda3\n", "sda", ["sda1", "sda2", "sda3"]),
    (" hda: unknown partition table\n", "hda", None),
    (" hda: hda1 hda2\n", "sda", None),
    ("hda: lost interrupt\n", "hda", None),
])
def test_the_partition_check_line(console, name, listed):
    assert dumpdisk.partition_line(boot.normalise_console(console.encode()), name) == listed


def test_only_disks_built_into_the_mini_kernel_are_proved():
    values = {"BLK_DEV_IDEDISK": "y", "BLK_DEV_PIIX": "y", "SCSI_SYM53C8XX_2": "m", "BLK_DEV_SD": "y"}
    assert dumpdisk.disks_built_in(values, [SCSI, IDE]) == [IDE]
    # the project's own list knows the controllers QEMU emulates for the default family
    assert "ide-piix" in [d.name for d in dumpdisk.disks_built_in(values, load_disks()[0])]


def _prove(tmp_path, late, disks=(IDE,)):
    image = tmp_path / "bzImage"
    image.write_bytes(b"not really a kernel")
    arch_dir, argv_file = fakeqemu.make(tmp_path, [(0, consoles.minik(middle=consoles.MIDDLE + late))])
    values = {"BLK_DEV_IDEDISK": "y", "BLK_DEV_PIIX": "y"}
    reports = dumpdisk.prove("x86_64", image, values, mem_mb=8, workdir=tmp_path / "work", console_dir=tmp_path,
                             log=lambda m: None, disks=list(disks), arch_dir=arch_dir)
    return reports, fakeqemu.argv(argv_file)


def test_the_disk_is_attached_and_dump_dev_names_its_last_partition(tmp_path):
    reports, argv = _prove(tmp_path, "hda: QEMU HARDDISK, ATA DISK drive\r\n hda: hda1 hda2\r\n")
    [r] = reports
    assert r["disk"] == "ide-piix" and r["proved"] and r["partitions"] == ["hda1", "hda2"]
    # hda2 is major 3, minor 2: what the load script writes to /proc/mkexec/dumpdev for dump_dev=/dev/hda2
    assert r["dump_dev"] == {"name": "hda2", "value": "0x300002"}
    append = argv[argv.index("-append") + 1]
    assert "mem=7M dump_dev=0x300002" in append
    drive = argv[argv.index("-drive") + 1]
    assert drive.startswith(f"file={tmp_path / 'work' / 'dump-disk-ide-piix.img'},format=raw,if=ide")
    assert r["memory_kb"] == 6000 and r["machine_memory_mb"] == 8
    assert (tmp_path / "boot-minik-disk-ide-piix.log").is_file()
    assert not (tmp_path / "work" / "dump-disk-ide-piix.img").exists()


def test_a_disk_whose_partitions_are_not_read_fails_with_the_console(tmp_path):
    with pytest.raises(boot.BootError, match=r"did not read the partition table of its dump disk hda on ide-piix "
                                             r"\(.*\): no partition check line for it, expected hda: hda1 hda2\.") as e:
        _prove(tmp_path, "hda: QEMU HARDDISK, ATA DISK drive\r\nhda: lost interrupt\r\n")
    assert "hda: lost interrupt" in str(e.value)
    assert not (tmp_path / "work" / "dump-disk-ide-piix.img").exists(), "a failed proof left its disk image"


def test_every_family_qemu_emulates_has_a_disk_to_prove_it():
    """A family's `qemu` devices are attached by some disk of kernel/boot-disks.toml whose symbols the family
    builds in: its proof then boots with that disk."""
    from mkdump import kconfig
    from support.project import ROOT
    families = kconfig.dump_driver_families(str(ROOT / "configs"))
    disks, _ = load_disks()
    for name, family in families.items():
        values = {s: "y" for s in family["symbols"]}
        attached = [d for d in dumpdisk.disks_built_in(values, disks)
                    if d.qemu_device in family.get("qemu", ())]
        assert bool(attached) == bool(family.get("qemu")), name


def test_a_disk_the_proof_cannot_use_is_reported_not_booted(tmp_path):
    usb = Disk("usb", "a USB disk", ("USB_STORAGE",), (), "/dev/sda", (8, 0), ("-device", "usb-storage"), 30,
               "usb-storage", "found after the boot has ended")
    said = []
    reports = dumpdisk.prove("x86_64", tmp_path / "no-image", {"USB_STORAGE": "y"}, mem_mb=8, workdir=tmp_path,
                             console_dir=tmp_path, log=said.append, disks=[usb])
    assert reports == [{"disk": "usb", "why": "a USB disk", "proved": False,
                        "reason": "found after the boot has ended"}]
    assert said == ["boot x86_64: dump disk usb not proved: found after the boot has ended"]
