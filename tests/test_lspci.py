"""dump_driver=lspci:FILE: lspci text, the drivers' PCI ID tables, and the families chosen from them."""
from pathlib import Path

import pytest

from mkdump import kconfig, lspci
from support.real_sources import unpack_tree

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

PCI_IDS_H = """\
#define PCI_ANY_ID (~0)
#define PCI_CLASS_STORAGE_SCSI\t\t0x0100
#define PCI_CLASS_SERIAL_USB\t\t0x0c03
#define PCI_VENDOR_ID_LSI_LOGIC\t\t0x1000
#define PCI_DEVICE_ID_NCR_53C810\t0x0001  /* a comment */
#define PCI_VENDOR_ID_INTEL\t\t0x8086
#define PCI_DEVICE_ID_INTEL_82371SB_1\t0x7010
"""

POSITIONAL = """\
static struct pci_device_id sym2_id_table[] __devinitdata = {
\t{ PCI_VENDOR_ID_LSI_LOGIC, PCI_DEVICE_ID_NCR_53C810,
\t  PCI_ANY_ID, PCI_ANY_ID, 0, 0, 0UL },
\t{ PCI_VENDOR_ID_LSI_LOGIC, LOCAL_53C895A, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 0UL }, /* { 0x9999, 0x9999 } */
\t{ 0, }
};
"""

DESIGNATED = """\
#include "local.h"
static struct pci_device_id tbl[] = {
\t{
\t\t.vendor\t\t= PCI_VENDOR_ID_INTEL,
\t\t.device\t\t= PCI_DEVICE_ID_INTEL_82371SB_1,
\t\t.subvendor\t= 0x1028,
\t\t.subdevice\t= LOCAL_SUB,
\t\t.driver_data\t= (unsigned long) &board[0],
\t},
\t{ }
};
"""

CONDITIONAL = """\
static struct pci_device_id piix_pci_tbl[] = {
#ifdef ATA_ENABLE_PATA
\t{ 0x8086, 0x24db, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 1 },
#endif
#ifdef CONFIG_BLK_DEV_IDE_SATA
\t{ 0x8086, 0x24d1, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 2 },
#else
\t{ 0x8086, 0x24df, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 3 },
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(2,4,0)
\t{ 0x8086, 0x25a3, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 4 },
#else
\t{ 0x8086, 0x0bad, PCI_ANY_ID, PCI_ANY_ID, 0, 0, 5 },
#endif
\t{ }
};
"""

CLASSES = """\
static const struct pci_device_id pci_ids [] = { {
\tPCI_DEVICE_CLASS(((PCI_CLASS_SERIAL_USB << 8) | 0x20), ~0),
\t.driver_data =\t(unsigned long) &ehci_driver,
\t},
\t{ /* end: all zeroes */ }
};
static struct pci_device_id ahc_linux_pci_id_table[] = {
\t{
\t\t0x9005, PCI_ANY_ID, PCI_ANY_ID, PCI_ANY_ID,
\t\tPCI_CLASS_STORAGE_SCSI << 8, 0xFFFF00, 0
\t},
\t{ PCI_DEVICE(0x1234, 0x5678) },
\t{ 0 }
};
"""


def make_tree(tmp_path, files):
    tree = tmp_path / "linux"
    for rel, text in {"include/linux/pci_ids.h": PCI_IDS_H, **files}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text, encoding="latin-1")
    return tree


def family(symbols=("PCI",), **kw):
    return {"description": "d", "symbols": list(symbols), "sources": [], "pci_ids": [], "storage_classes": [],
            "aliases": [], "major": [], "qemu": [], "dev": None, **kw}


def ids(entries):
    return [(e.family, e.vendor, e.device, e.subvendor, e.subdevice, e.cls, e.class_mask) for e in entries]


# ---------------------------------------------------------------------------------------------------- tables

def test_positional_table_with_pci_ids_h_and_local_defines(tmp_path):
    tree = make_tree(tmp_path, {"drivers/scsi/sym.c": "#define LOCAL_53C895A 0x12\n" + POSITIONAL})
    entries = lspci.family_tables(tree, {"sym": family(sources=["drivers/scsi/sym.c"])})
    assert ids(entries) == [("sym", 0x1000, 0x0001, lspci.ANY, lspci.ANY, 0, 0),
                            ("sym", 0x1000, 0x0012, lspci.ANY, lspci.ANY, 0, 0)]
    assert entries[0].origin == "drivers/scsi/sym.c:3" and entries[1].origin == "drivers/scsi/sym.c:5"


def test_designated_fields_and_constants_of_a_local_header(tmp_path):
    tree = make_tree(tmp_path, {"drivers/block/d.c": DESIGNATED, "drivers/block/local.h": "#define LOCAL_SUB 0x00d1\n"})
    entries = lspci.family_tables(tree, {"dac": family(sources=["drivers/block/d.c"])})
    assert ids(entries) == [("dac", 0x8086, 0x7010, 0x1028, 0x00D1, 0, 0)]


def test_conditionals_follow_the_family_config_and_the_files_defines(tmp_path):
    tree = make_tree(tmp_path, {"drivers/scsi/p.c": CONDITIONAL})
    without = lspci.family_tables(tree, {"p": family(sources=["drivers/scsi/p.c"])})
    assert [e.device for e in without] == [0x24DF, 0x25A3]
    with_sata = lspci.family_tables(tree, {"p": family(["PCI", "BLK_DEV_IDE_SATA"], sources=["drivers/scsi/p.c"])})
    assert [e.device for e in with_sata] == [0x24D1, 0x25A3]
    defined = make_tree(tmp_path / "b", {"drivers/scsi/p.c": "#define ATA_ENABLE_PATA\n" + CONDITIONAL})
    assert [e.device for e in lspci.family_tables(defined, {"p": family(sources=["drivers/scsi/p.c"])})] == [
        0x24DB, 0x24DF, 0x25A3]


def test_class_matches_and_pci_device_macros(tmp_path):
    tree = make_tree(tmp_path, {"drivers/usb/e.c": CLASSES})
    entries = lspci.family_tables(tree, {"u": family(sources=["drivers/usb/e.c"])})
    assert ids(entries) == [
        ("u", lspci.ANY, lspci.ANY, lspci.ANY, lspci.ANY, 0x0C0320, 0xFFFFFFFF),
        ("u", 0x9005, lspci.ANY, lspci.ANY, lspci.ANY, 0x010000, 0xFFFF00),
        ("u", 0x1234, 0x5678, lspci.ANY, lspci.ANY, 0, 0)]


def test_pci_ids_of_a_driver_without_a_table(tmp_path):
    tree = make_tree(tmp_path, {"drivers/scsi/tw.h": "#define TW_VENDOR_ID (0x13C1)\n#define TW_DEVICE_ID (0x1000)\n"})
    fams = {"tw": family(sources=["drivers/scsi/tw.h"], pci_ids=["TW_VENDOR_ID:TW_DEVICE_ID"])}
    assert ids(lspci.family_tables(tree, fams)) == [("tw", 0x13C1, 0x1000, lspci.ANY, lspci.ANY, 0, 0)]
    fams["tw"]["pci_ids"] = ["TW_VENDOR_ID:TW_DEVICE_ID9"]
    with pytest.raises(lspci.LspciError, match="pci_ids 'TW_VENDOR_ID:TW_DEVICE_ID9' of family tw names a constant"):
        lspci.family_tables(tree, fams)


def test_an_unknown_constant_names_the_table_line(tmp_path):
    tree = make_tree(tmp_path, {"drivers/scsi/sym.c": POSITIONAL})     # LOCAL_53C895A is not defined
    with pytest.raises(lspci.LspciError, match=r"drivers/scsi/sym.c:4: .*'LOCAL_53C895A'.* \(family sym\)"):
        lspci.family_tables(tree, {"sym": family(sources=["drivers/scsi/sym.c"])})


def test_a_missing_source_file_is_one_sentence(tmp_path):
    tree = make_tree(tmp_path, {})
    with pytest.raises(lspci.LspciError, match=r"cannot read .*drivers/scsi/gone.c .*unpack it again"):
        lspci.family_tables(tree, {"g": family(sources=["drivers/scsi/gone.c"])})


# ---------------------------------------------------------------------------------------------------- lspci text

def test_parse_lspci_n_and_nn_and_verbose_subsystems():
    n = lspci.parse("00:1f.2 0101: 8086:24d1 (rev 02)\n0000:02:03.0 0100: 1000:0030 (rev 08)\n")
    assert [(d.slot, d.cls, d.ids, d.progif) for d in n] == [("00:1f.2", "0101", "8086:24d1", None),
                                                            ("0000:02:03.0", "0100", "1000:0030", None)]
    nn = lspci.parse(
        "00:1f.1 IDE interface [0101]: Intel Corporation 82801EB/ER (ICH5/ICH5R) IDE Controller [8086:24db] (rev 02) "
        "(prog-if 8a [ISA Compatibility mode controller, supports both channels switched to PCI native mode, "
        "supports bus mastering])\n"
        "\tSubsystem: Dell PowerEdge [1028:0169]\n"
        "\tFlags: bus master, medium devsel, latency 0, IRQ 18\n"
        "06:00.0 Fibre Channel [0c04]: QLogic Corp. QLA2312 Fibre Channel Adapter [1077:2312] (rev 02)\n"
        "\tSubsystem: 1077:0100\n")
    assert [(d.cls, d.ids, d.progif, d.subvendor, d.subdevice) for d in nn] == [
        ("0101", "8086:24db", 0x8A, 0x1028, 0x0169), ("0c04", "1077:2312", None, 0x1077, 0x0100)]


@pytest.mark.parametrize("text, words", [
    ("", "lists no PCI device"),
    ("00:1f.2 0101: 8086:24d1\nlspci: Unable to load libkmod resources\n", "line 2 ('lspci: Unable"),
    ("00:1f.2 IDE interface: Intel Corporation 82801EB SATA\n", "line 1"),
])
def test_parse_refuses_what_is_not_lspci_output(text, words):
    with pytest.raises(lspci.LspciError) as e:
        lspci.parse(text, "f.txt")
    assert words in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- choosing

def entry(fam, vendor, device, **kw):
    return lspci.Entry(fam, vendor, device, **kw)


FAMS = {n: family() for n in ("ide", "sata", "mega", "mega-old", "aic7", "aic79", "usb")}
FAMS["usb"]["storage_classes"] = ["0c03"]
TABLES = [entry("ide", 0x8086, 0x24DB), entry("sata", 0x8086, 0x24D1),
          entry("mega", 0x1000, 0x1960), entry("mega-old", 0x1000, 0x1960),
          entry("aic7", 0x9005, lspci.ANY, cls=0x010000, class_mask=0xFFFF00),
          entry("aic79", 0x9005, lspci.ANY, cls=0x010000, class_mask=0xFFFF00),
          entry("aic7", 0x9005, 0x0250, subvendor=0x9005, subdevice=0x0250),
          entry("usb", lspci.ANY, lspci.ANY, cls=0x0C0300, class_mask=0xFFFFFFFF)]


def choose(text):
    return lspci.choose(lspci.parse(text), TABLES, FAMS, "f.txt")


def test_choose_one_family_per_controller_named_exactly():
    c = choose("00:00.0 0600: 8086:2578\n00:1f.1 0101: 8086:24db\n00:1f.2 0101: 8086:24d1\n")
    assert c.families == ["ide", "sata"] and not c.unsupported and not c.notes
    assert c.summary() == "ide, sata (8086:24db IDE, 8086:24d1 IDE)"


def test_two_tables_naming_a_controller_exactly_take_the_first_family_and_say_so():
    c = choose("01:00.0 0104: 1000:1960\n")
    assert c.families == ["mega"]
    assert c.notes == ["1000:1960 (01:00.0) is known to mega, mega-old; chose mega"]


def test_class_wide_tables_all_count_and_an_exact_one_wins():
    assert choose("02:00.0 0100: 9005:801f (rev 10)\n").families == ["aic7", "aic79"]
    assert choose("02:00.0 0100: 9005:0250\n").families == ["aic7"]
    assert choose("02:00.0 0104: 9005:801f\n").families == []        # a RAID class device is not class SCSI


def test_subsystem_ids_are_held_against_an_entry_only_when_lspci_shows_them():
    assert choose("02:00.0 0100: 9005:0250\n\tSubsystem: 9005:0251\n").families == ["aic7", "aic79"]


def test_an_undriven_storage_controller_is_named_in_one_sentence():
    c = choose("00:1f.2 0101: 8086:24d1\n04:00.0 0107: 1000:0054 (rev 01)\n00:01.0 0300: 1234:1111\n")
    assert c.families == ["sata"]
    assert [d.ids for d in c.unsupported] == ["1000:0054"]
    assert c.notes == ["the storage controller 1000:0054 in f.txt ('04:00.0 0107: 1000:0054 (rev 01)') is driven by "
                       "no dump driver family of Linux 2.6.9, so the mini kernel cannot reach a disk behind it"]


def test_usb_storage_only_when_nothing_else_is_driven():
    c = choose("00:1d.0 0c03: 8086:24d2\n00:1f.2 0101: 8086:24d1\n")
    assert c.families == ["sata"] and [d.ids for d in c.usb] == ["8086:24d2"]
    assert "usb-storage could reach a USB disk behind 8086:24d2" in c.notes[0]
    alone = choose("00:1d.0 0c03: 8086:24d2\n")
    assert alone.families == ["usb"] and alone.summary() == "usb (8086:24d2 USB)"


def test_resolve_reads_the_file_and_refuses_a_machine_without_a_family(tmp_path):
    tree = make_tree(tmp_path, {"drivers/scsi/sym.c": "#define LOCAL_53C895A 0x12\n" + POSITIONAL})
    fams = {"sym": family(sources=["drivers/scsi/sym.c"])}
    good = tmp_path / "good.txt"
    good.write_text("00:04.0 0100: 1000:0012\n")
    assert lspci.resolve(good, tree, fams).families == ["sym"]
    bad = tmp_path / "bad.txt"
    bad.write_text("00:04.0 0100: 1000:0030\n")
    with pytest.raises(lspci.LspciError) as e:
        lspci.resolve(bad, tree, fams)
    assert str(e.value).startswith(f"dump_driver=lspci:{bad}: no dump driver family drives a storage controller "
                                   "of this machine (the storage controller 1000:0030")
    with pytest.raises(lspci.LspciError, match="cannot read the file"):
        lspci.resolve(tmp_path / "none.txt", tree, fams)


# ---------------------------------------------------------------------------------------------------- real tree

# `lspci -n` of machines of 2005, their IDs each taken from the 2.6.9 driver table cited next to it.
SERVER_2005 = """\
00:00.0 0600: 8086:2578 (rev 02)
00:1d.0 0c03: 8086:24d2 (rev 02)
00:1d.7 0c03: 8086:24dd (rev 02)
00:1f.0 0601: 8086:24d0 (rev 02)
00:1f.1 0101: 8086:24db (rev 02)
00:1f.2 0101: 8086:24d1 (rev 02)
02:03.0 0100: 1000:0030 (rev 08)
03:01.0 0c04: 1077:2312 (rev 02)
"""
# 8086:24db: PCI_DEVICE_ID_INTEL_82801EB_11 in drivers/ide/pci/piix.c; 8086:24d1: drivers/scsi/ata_piix.c;
# 1000:0030: PCI_DEVICE_ID_LSI_53C1030 in drivers/message/fusion/mptbase.c; 1077:2312: ISP2312 in
# drivers/scsi/qla2xxx/ql2300.c; 8086:24d2/24dd: the ICH5 UHCI and EHCI, matched by class in drivers/usb/host.
UNSUPPORTED = """\
00:00.0 0600: 8086:2578 (rev 02)
00:1f.1 0101: 8086:24db (rev 02)
04:00.0 0100: 1000:0054 (rev 01)
"""
# 1000:0054: the LSI SAS1068 (QEMU's mptsas1068), which no 2.6.9 table names (the Fusion driver knows FC909-FC929X
# and 53C1030/53C1035 only).


@pytest.fixture(scope="module")
def real_tables(real_linux_tarball, tmp_path_factory):
    tree = unpack_tree(real_linux_tarball, tmp_path_factory.mktemp("lspci-real"))
    families = kconfig.dump_driver_families(CONFIGS)
    return families, lspci.family_tables(tree, families)


def table_has(entries, family, vendor, device):
    return any(e.family == family and e.vendor == vendor and e.device == device for e in entries)


@pytest.mark.realkernel
def test_every_family_has_a_table_in_the_real_tree(real_tables):
    families, entries = real_tables
    assert {e.family for e in entries} == set(families)


@pytest.mark.realkernel
def test_a_2005_server_chooses_its_families_from_the_real_tables(real_tables):
    families, entries = real_tables
    for family, vendor, device in [("ide", 0x8086, 0x24DB), ("sata-piix", 0x8086, 0x24D1),
                                   ("fusion", 0x1000, 0x0030), ("qla2300", 0x1077, 0x2312)]:
        assert table_has(entries, family, vendor, device)
    choice = lspci.choose(lspci.parse(SERVER_2005), entries, families, "server.txt")
    assert choice.families == ["ide", "sata-piix", "qla2300", "fusion"]
    assert choice.summary() == ("ide, sata-piix, qla2300, fusion (8086:24db IDE, 8086:24d1 IDE, 1000:0030 SCSI, "
                                "1077:2312 FC)")
    assert not choice.unsupported and [d.ids for d in choice.usb] == ["8086:24d2", "8086:24dd"]
    # ata_piix's ICH5 PATA entry is behind libata.h's `#undef ATA_ENABLE_PATA`: 24db is PIIX IDE's alone.
    assert not table_has(entries, "sata-piix", 0x8086, 0x24DB)


@pytest.mark.realkernel
def test_an_unsupported_controller_is_named_from_the_real_tables(real_tables):
    families, entries = real_tables
    assert not any(e.matches(lspci.parse("04:00.0 0100: 1000:0054 (rev 01)")[0]) for e in entries)
    choice = lspci.choose(lspci.parse(UNSUPPORTED), entries, families, "old.txt")
    assert choice.families == ["ide"]
    assert [d.ids for d in choice.unsupported] == ["1000:0054"]
    assert choice.notes == ["the storage controller 1000:0054 in old.txt ('04:00.0 0100: 1000:0054 (rev 01)') is "
                            "driven by no dump driver family of Linux 2.6.9, so the mini kernel cannot reach a disk "
                            "behind it"]


@pytest.mark.realkernel
def test_qemu_controllers_meet_the_family_that_names_them(real_tables):
    families, entries = real_tables
    # PCI IDs QEMU 7.2 gives the devices the families list under `qemu` (hw/ide/piix.c, hw/scsi/lsi53c895a.c,
    # hw/scsi/esp-pci.c, hw/usb/hcd-uhci.c).
    qemu = {"piix3-ide": "0101: 8086:7010", "piix4-ide": "0101: 8086:7111", "lsi53c895a": "0100: 1000:0012",
            "lsi53c810": "0100: 1000:0001", "am53c974": "0100: 1022:2020", "dc390": "0100: 1022:2020",
            "usb-storage": "0c03: 8086:7020"}
    for family, fam in families.items():
        for device in fam["qemu"]:
            choice = lspci.choose(lspci.parse(f"00:04.0 {qemu[device]}\n"), entries, families)
            assert choice.families == [family], device
