"""mkdump.bootdisk: the disk of the system-kernel boot proof (choice, module order, ext3 image, plan), and what
boot.py makes of /init's report of it."""
import subprocess

import pytest

from mkdump import boot, bootdisk, initramfs
from mkdump.errors import MkdumpError
from support import elf_fixtures

DISKS, FS_MODULES = bootdisk.load_disks()


def disk(name):
    return next(d for d in DISKS if d.name == name)


# --- which disk --------------------------------------------------------------------------------------------

def test_the_project_lists_scsi_before_ide_before_usb_with_ext3_modules():
    assert [d.name for d in DISKS] == ["scsi-sym53c8xx", "ide-piix", "usb-storage-uhci", "scsi-tmscsim"]
    assert FS_MODULES == ("ext3",)
    assert all(d.why and d.args and d.device.startswith("/dev/") for d in DISKS)


@pytest.mark.parametrize("values, expected", [
    # RHEL4 x86_64: sym53c8xx and sd_mod are modules, IDE PIIX is built in: the SCSI path proves more.
    ({"SCSI_SYM53C8XX_2": "m", "BLK_DEV_SD": "m", "BLK_DEV_IDEDISK": "y", "BLK_DEV_PIIX": "y"}, "scsi-sym53c8xx"),
    ({"SCSI_SYM53C8XX_2": "m", "BLK_DEV_IDEDISK": "y", "BLK_DEV_PIIX": "y"}, "ide-piix"),
    # The i386 P4 SMP site config: no IDE and no SCSI host QEMU has, but USB storage.
    ({"USB_UHCI_HCD": "m", "USB_STORAGE": "m", "BLK_DEV_SD": "m"}, "usb-storage-uhci"),
    ({"BLK_DEV_PIIX": "n", "BLK_DEV_IDEDISK": "y"}, None),
])
def test_the_first_disk_the_configuration_builds_is_chosen(values, expected):
    chosen = bootdisk.choose_disk(values, DISKS)
    assert (chosen.name if chosen else None) == expected


def test_a_configuration_without_a_disk_or_ext3_is_told(tmp_path):
    with pytest.raises(MkdumpError, match="drives none of the disks QEMU emulates .*scsi-sym53c8xx: "
                                          "SCSI_SYM53C8XX_2 BLK_DEV_SD"):
        bootdisk.prepare(tmp_path, {"EXT3_FS": "y"}, tmp_path, content="x")
    with pytest.raises(MkdumpError, match="no ext3 .CONFIG_EXT3_FS."):
        bootdisk.prepare(tmp_path, {"BLK_DEV_IDEDISK": "y", "BLK_DEV_PIIX": "y"}, tmp_path, content="x")


# --- module order ------------------------------------------------------------------------------------------

def exporting(names):
    return "".join(f"void {n}(void) {{}}\nstatic const struct {{ void *v; const char *n; }} __ksymtab_{n} "
                   f'__attribute__((section("__ksymtab"), used)) = {{ {n}, "{n}" }};\n' for n in names)


def using(names):
    return "".join(f"extern void {n}(void);\n" for n in names) + \
        "void use_them(void) {" + "".join(f" {n}();" for n in names) + " }\n"


@pytest.fixture
def modules(tmp_path):
    """A small module world like RHEL4's SCSI and ext3 stack: scsi_mod <- scsi_transport_spi <- sym53c8xx,
    scsi_mod <- sd_mod, jbd <- ext3; printk and kmalloc come from the kernel."""
    elf_fixtures.require_toolchain("x86_64")
    specs = {
        "scsi_mod": (["scsi_add_host", "scsi_register_driver"], []),
        "scsi_transport_spi": (["spi_attach_transport"], ["scsi_add_host"]),
        "sym53c8xx": ([], ["spi_attach_transport", "scsi_add_host"]),
        "sd_mod": ([], ["scsi_register_driver"]),
        "jbd": (["journal_start"], []),
        "ext3": ([], ["journal_start"]),
    }
    tree = tmp_path / "tree"
    for name, (exports, uses) in specs.items():
        directory = tree / "drivers" / name
        elf_fixtures.build_module(directory, "x86_64", name=name.replace("_", "-") if name == "sd_mod" else name,
                                  body=elf_fixtures.MODULE_BODY + exporting(exports) + using(uses))
    return tree


def test_modules_load_dependencies_first(modules):
    paths = bootdisk.module_paths(modules)
    assert set(paths) == {"scsi_mod", "scsi_transport_spi", "sym53c8xx", "sd_mod", "jbd", "ext3"}
    order = bootdisk.load_order(["sym53c8xx", "sd_mod", "ext3"], paths, {"printk", "kmalloc"})
    assert order == ["scsi_mod", "scsi_transport_spi", "sym53c8xx", "sd_mod", "jbd", "ext3"]


def test_module_symvers_names_the_exporters(modules, tmp_path):
    symvers = tmp_path / "Module.symvers"
    symvers.write_text("0x1\tscsi_add_host\tdrivers/scsi_mod/scsi_mod\n0x2\tspi_attach_transport\t"
                       "drivers/x/scsi_transport_spi\n0x3\tprintk\tvmlinux\n")
    order = bootdisk.load_order(["sym53c8xx"], bootdisk.module_paths(modules), {"printk", "kmalloc"}, symvers)
    assert order == ["scsi_mod", "scsi_transport_spi", "sym53c8xx"]


def test_a_built_in_module_is_skipped_and_a_missing_symbol_is_named(modules):
    paths = bootdisk.module_paths(modules)
    assert bootdisk.load_order(["piix", "ide_disk", "jbd"], paths, {"printk", "kmalloc"}) == ["jbd"]
    with pytest.raises(MkdumpError, match="module jbd .* uses kmalloc, which neither the kernel nor any"):
        bootdisk.load_order(["jbd"], paths, {"printk"})


# --- the disk image, the plan, the initramfs ---------------------------------------------------------------

def test_the_ext3_image_is_one_2_6_9_mounts_and_holds_the_file(tmp_path):
    image = bootdisk.make_ext3_image(tmp_path / "disk.img", "mkdump boot proof 1234\n")
    features = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True).stdout
    line = next(l for l in features.splitlines() if l.startswith("Filesystem features:"))
    assert set(line.split(":", 1)[1].split()) <= {"has_journal", "ext_attr", "resize_inode", "dir_index",
                                                  "filetype", "sparse_super", "large_file"}
    assert "has_journal" in line
    assert "Inode size:\t          128" in features
    got = subprocess.run(["debugfs", "-R", f"cat /{bootdisk.PROOF_FILE}", str(image)], capture_output=True,
                         text=True).stdout
    assert got == "mkdump boot proof 1234\n"
    again = bootdisk.make_ext3_image(tmp_path / "again" / "disk.img", "mkdump boot proof 1234\n")
    assert again.read_bytes() == image.read_bytes(), "the same content gives the same image"


def test_plan_text_and_qemu_arguments():
    d = disk("scsi-sym53c8xx")
    assert bootdisk.plan_text(d, ["scsi_mod", "sd_mod"]) == (
        "insmod /modules/scsi_mod.ko\ninsmod /modules/sd_mod.ko\nwait /dev/sda 20\nmount /dev/sda /mnt ext3\n"
        f"cat /mnt/{bootdisk.PROOF_FILE}\n")
    args = bootdisk.qemu_args(d, "/b/disk.img")
    assert args[:2] == ["-device", "lsi53c895a,id=scsi0"] and "file=/b/disk.img,format=raw,if=none,id=disk0" in args


def test_the_initramfs_holds_the_plan_modules_device_and_mount_point(tmp_path):
    plan = bootdisk.Plan(disk("ide-piix"), "wait /dev/hda 10\n", {"jbd": b"J", "ext3": b"E"}, tmp_path / "d", "c")
    entries = {e.name: e for e in initramfs.boot_test_entries(b"init", b"mod") + initramfs.plan_entries(plan)}
    assert entries["plan"].data == b"wait /dev/hda 10\n"
    assert entries["modules/jbd.ko"].data == b"J" and entries["modules/ext3.ko"].data == b"E"
    assert entries["dev/hda"].kind == "blockdev" and entries["dev/hda"].rdev == (3, 0)
    assert entries["mnt"].kind == "dir"
    archive = initramfs.newc_archive(entries.values(), mtime=0)
    listing = subprocess.run(["cpio", "-itv"], input=archive, capture_output=True).stdout.decode()
    assert any(l.startswith("brw-------") and l.endswith("dev/hda") for l in listing.splitlines())


# --- what boot.py makes of /init's words -------------------------------------------------------------------

def result(text):
    return boot.BootResult(console=text, exit_reason="exited", seconds=1.0)


PLAN = bootdisk.Plan(disk("scsi-sym53c8xx"), "", {"scsi_mod": b"", "sd_mod": b""}, None, "mkdump boot proof ab")
GOOD = """\
mkdump-init: insmod /modules/scsi_mod.ko returned 0
mkdump-init: insmod /modules/sd_mod.ko returned 0
mkdump-init: wait /dev/sda returned 0
mkdump-init: mount /dev/sda returned 0
mkdump-init: cat /mnt/mkdump-proof.txt: mkdump boot proof ab
"""


def test_a_plan_that_went_through_passes():
    checks = boot.expect_plan(result(GOOD), PLAN)
    assert checks == ["modules loaded in order: scsi_mod sd_mod", "disk: scsi-sym53c8xx, /dev/sda mounted as ext3",
                      "file read back from the disk: 'mkdump boot proof ab'"]


@pytest.mark.parametrize("console, words", [
    (GOOD.replace("sd_mod.ko returned 0", "sd_mod.ko returned -22") + "sd_mod: disagrees about version of symbol "
     "scsi_register_driver\n", "loading the module sd_mod returned -22 EINVAL (the kernel said: sd_mod: disagrees"),
    (GOOD.replace("wait /dev/sda returned 0", "wait /dev/sda returned -6"), "the disk /dev/sda (LSI Logic"),
    (GOOD.replace("mount /dev/sda returned 0", "mount /dev/sda returned -22"), "mounting /dev/sda as ext3"),
    (GOOD.replace("mkdump boot proof ab", "something else"), "gave 'something else', not 'mkdump boot proof ab'"),
    (GOOD.split("mkdump-init: mount")[0], "never reported the 'mount' step"),
    ("", "never reported loading the module scsi_mod"),
])
def test_a_failed_plan_step_is_named(console, words):
    with pytest.raises(boot.BootError) as e:
        boot.expect_plan(result(console), PLAN)
    assert words in e.value.sentence


def test_every_cpu_must_come_up():
    assert boot.expect_cpus(result("Total of 2 processors activated\nBrought up 2 CPUs\n"), 2) == \
        ["cpus: Brought up 2 CPUs"]
    with pytest.raises(boot.BootError, match="brought up 1 of the 2 CPUs"):
        boot.expect_cpus(result("Brought up 1 CPUs\n"), 2)
    with pytest.raises(boot.BootError, match="not an SMP kernel"):
        boot.expect_cpus(result("Linux version 2.6.9\n"), 2)


def test_smp_and_a_disk_reach_the_qemu_command():
    config = boot.load_qemu_config("x86_64", "system")
    cmd = boot.qemu_command(config, "/k/bzImage", append="x", smp=2, extra=["-drive", "file=/d"])
    assert cmd[cmd.index("-smp") + 1] == "2" and cmd[-6:-4] == ["-drive", "file=/d"]
    assert "-smp" not in boot.qemu_command(config, "/k/bzImage", append="x")


def test_a_root_disk_holds_init_and_its_device_nodes(tmp_path):
    entries = [initramfs.file("init", b"\x7fELF", 0o755), initramfs.directory("dev"),
               initramfs.chardev("dev/console", 5, 1), initramfs.blockdev("dev/hda", 3, 0)]
    image = bootdisk.make_ext3_image(tmp_path / "root.img", "proof\n", entries=entries)
    listing = subprocess.run(["debugfs", "-R", "ls -l /dev", str(image)], capture_output=True, text=True).stdout
    rows = {line.split()[-1]: line.split() for line in listing.splitlines() if line.strip()}
    assert rows["console"][1] == "20600" and rows["hda"][1] == "60600"
    stat = subprocess.run(["debugfs", "-R", "stat /dev/hda", str(image)], capture_output=True, text=True).stdout
    assert "Device major/minor number: 03:00" in stat
    init = subprocess.run(["debugfs", "-R", "stat /init", str(image)], capture_output=True, text=True).stdout
    assert "Mode:  0755" in init
