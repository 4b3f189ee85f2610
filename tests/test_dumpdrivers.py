"""The dump driver families (configs/dump-drivers.toml): their data, several at once, and the help that lists them."""
import re
from pathlib import Path

import pytest

from mkdump import kconfig, loadscript
from mkdump import options as O
from mkdump.errors import MkdumpError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FAMILIES = kconfig.dump_driver_families(CONFIGS)
NAMES = list(kconfig.family_names(FAMILIES))

# The QEMU 7.2 devices (Debian 12, `qemu-system-x86_64 -device help`) a family may name; ich9-ahci, megasas and
# mptsas1068 are absent on purpose: 2.6.9 has no driver for them.
QEMU_72 = {"piix3-ide", "piix4-ide", "isa-ide", "lsi53c895a", "lsi53c810", "am53c974", "dc390", "usb-storage"}


def test_the_issue_drivers_each_have_a_family():
    for name in ("ide", "ide-amd74xx", "sata-piix", "sata-via", "sata-nv", "sata-sil", "sata-promise", "sata-svw",
                 "scsi-sd", "aic7xxx", "aic79xx", "qla2300", "fusion", "3ware", "3ware-9xxx", "cciss",
                 "megaraid", "aacraid", "ips", "gdth", "dac960", "tmscsim", "usb-storage"):
        assert name in FAMILIES, name


def test_every_family_says_its_disks_sources_and_qemu_device():
    for name, fam in FAMILIES.items():
        assert fam["major"] and fam["dev"] and fam["sources"], name
        assert set(fam["qemu"]) <= QEMU_72, name
        assert all(s.startswith("drivers/") for s in fam["sources"]), name
        assert fam["symbols"][0] == "PCI", name      # every family drives a PCI controller


def test_major_and_dev_agree_with_the_load_script_encoding():
    # dump_dev=/dev/hda1 or /dev/sda1 is what the load script encodes; its major must be the family's first.
    for name, fam in FAMILIES.items():
        if re.fullmatch(r"[hs]d[a-z]+\d+", fam["dev"]):
            assert loadscript.encode_dump_dev("/dev/" + fam["dev"]) >> loadscript.MINOR_BITS == fam["major"][0], name
    assert FAMILIES["cciss"]["major"] == list(range(104, 112))
    assert FAMILIES["dac960"]["major"] == list(range(48, 56))
    assert FAMILIES["cpqarray"]["major"] == list(range(72, 80))


def test_scsi_sym53c8xx_is_a_name_of_the_scsi_sd_family():
    assert kconfig.family_names(FAMILIES)["scsi-sym53c8xx"] == "scsi-sd"
    frags = kconfig.fragments_for(CONFIGS, arch="x86_64", kind="minik", dump_driver="scsi-sym53c8xx")
    assert frags[2].name == "dump_driver=scsi-sym53c8xx"
    assert [r.symbol for r in frags[2].requests] == FAMILIES["scsi-sd"]["symbols"]


def test_several_families_give_one_fragment_each_named_for_it():
    frags = kconfig.fragments_for(CONFIGS, arch="i386", kind="minik", dump_driver="ide,scsi-sym53c8xx", pae=True)
    ide, sym = frags[2], frags[3]
    assert (ide.name, sym.name) == ("dump_driver=ide", "dump_driver=scsi-sym53c8xx")
    assert ide.covered_by == sym.covered_by == "dump_driver"
    assert sym.requests[-1].symbol == "SCSI_SYM53C8XX_2"
    assert sym.requests[-1].origin.endswith("(dump_driver=scsi-sym53c8xx)")
    assert frags[4].name == "pae=yes"
    with pytest.raises(kconfig.ConfigError, match="dump_driver=ide,floppy is not a known dump driver family"):
        kconfig.fragments_for(CONFIGS, arch="x86_64", kind="minik", dump_driver="ide,floppy")


def test_a_bad_families_file_is_refused(tmp_path):
    good = (CONFIGS / "dump-drivers.toml").read_text()
    (tmp_path / "dump-drivers.toml").write_text(good.replace("major = [72,", 'major = ["72",'))
    with pytest.raises(kconfig.ConfigError, match=r"\[family.cpqarray\] major must be a list of numbers"):
        kconfig.dump_driver_families(tmp_path)
    (tmp_path / "dump-drivers.toml").write_text(good.replace('aliases = ["scsi-sym53c8xx"]', 'aliases = ["ide"]'))
    with pytest.raises(kconfig.ConfigError, match="alias 'ide' of \\[family.scsi-sd\\] names another"):
        kconfig.dump_driver_families(tmp_path)


# ---------------------------------------------------------------------------------------------------- options

def raw(**kw):
    r = {s.name: s.default for s in O.specs(list(FAMILIES), "ide", environ={})}
    r.update(kw)
    return r


def parse(**kw):
    return O.parse(raw(**kw), dump_drivers=NAMES, environ={})


def test_options_take_a_comma_separated_list_each_once():
    assert parse(dump_driver="ide, scsi-sym53c8xx,ide").dump_driver == "ide,scsi-sym53c8xx"
    assert parse(dump_driver="scsi-sym53c8xx").dump_driver == "scsi-sym53c8xx"


@pytest.mark.parametrize("value, words", [
    ("ide,floppy", "Invalid value for dump_driver: 'ide,floppy': 'floppy' is not a dump driver family; valid "
                   "values are ide, "),
    ("floppy,tape", "'floppy', 'tape' are not dump driver families"),
    (",", "it names no family"),
    ("lspci:", "dump_driver=lspci:: no such file; give lspci:FILE"),
    ("lspci:/nonexistent/lspci.txt", "dump_driver=lspci:/nonexistent/lspci.txt: no such file"),
])
def test_options_name_what_is_wrong_in_one_sentence(value, words):
    with pytest.raises(MkdumpError) as e:
        parse(dump_driver=value)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_options_take_an_lspci_file(tmp_path):
    f = tmp_path / "lspci.txt"
    f.write_text("00:1f.1 0101: 8086:24db (rev 02)\n")
    assert O.parse(raw(dump_driver="lspci:lspci.txt"), dump_drivers=NAMES, base_dir=str(tmp_path),
                   environ={}).dump_driver == f"lspci:{f}"


def test_scons_help_lists_every_family_with_its_hardware_and_majors():
    from support import project as P
    r = P.scons(CONFIGS.parent, "-h")
    assert r.returncode == 0, r.stderr
    help_text = r.stdout[r.stdout.index("Dump driver families"):]
    for name, fam in FAMILIES.items():
        assert f"\n  {name:16} {fam['description']}" in help_text, name
    assert "(also scsi-sym53c8xx)" in help_text
    assert "dump_dev e.g. /dev/sda1, major 8, 65-71, 128-135; QEMU lsi53c895a, lsi53c810\n" in help_text
    assert "dump_dev e.g. /dev/cciss/c0d0p1, major 104-111; no QEMU device\n" in help_text
    assert "dump_dev e.g. /dev/hda1, major 3, 22, 33-34, 56-57, 88-91; QEMU piix3-ide, piix4-ide\n" in help_text


# ---------------------------------------------------------------------------------------------------- real tree

from test_config_real import configure, minik_tree, real_tree  # noqa: E402,F401  (the real tree's fixtures)


@pytest.mark.realkernel
def test_several_families_are_audited_together_on_the_real_tree(minik_tree):  # noqa: F811
    summary, _ = configure(minik_tree, "x86_64", dump_driver="ide,scsi-sym53c8xx,qla2300")
    for name in ("BLK_DEV_PIIX", "SCSI_SYM53C8XX_2", "SCSI_QLA2300", "BLK_DEV_SD"):
        assert summary["audited"][name] == "y"
    assert summary["requested"]["SCSI_QLA2300"]["origin"].endswith("(dump_driver=qla2300)")


@pytest.mark.realkernel
def test_a_family_another_one_defeats_is_named(minik_tree):  # noqa: F811
    # The legacy MegaRAID driver is offered only while the new one is off: both cannot be built in.
    with pytest.raises(kconfig.ConfigError) as e:
        configure(minik_tree, "x86_64", dump_driver="megaraid,megaraid-legacy")
    lines = str(e.value).splitlines()
    problem = next(line for line in lines if line.startswith("  CONFIG_MEGARAID_LEGACY:"))
    assert "(dump_driver=megaraid-legacy)" in problem
    assert "unmet dependencies: MEGARAID_NEWGEN = n [MEGARAID_NEWGEN (=y)]" in lines[lines.index(problem) + 1]


def test_an_lspci_file_is_an_input_of_the_mini_kernel_config(tmp_path):
    from mkdump import stages
    project = stages.Project(str(CONFIGS.parent))
    f = tmp_path / "lspci.txt"
    f.write_text("00:1f.1 0101: 8086:24db (rev 02)\n")
    params = stages.ConfigParams("minik", dump_driver=f"lspci:{f}", pae=None, minik_fragment=None, system_config=None)
    files, _ = stages._config_inputs(params, "x86_64", project, "build")
    assert str(f) in files and str(CONFIGS / "dump-drivers.toml") in files


def _built_in(*families):
    return {s: "y" for f in families for s in FAMILIES[f]["symbols"]}


def test_the_disk_driver_of_a_major_is_what_every_family_with_it_builds_in():
    assert {"SCSI", "BLK_DEV_SD"} <= set(kconfig.disk_symbols_for_major(8, FAMILIES))
    assert "SCSI_SYM53C8XX_2" not in kconfig.disk_symbols_for_major(8, FAMILIES)
    assert {"IDE", "BLK_DEV_IDE", "BLK_DEV_IDEDISK"} <= set(kconfig.disk_symbols_for_major(3, FAMILIES))
    assert "BLK_DEV_PIIX" not in kconfig.disk_symbols_for_major(3, FAMILIES)     # ide-amd74xx gives hda too
    assert "BLK_CPQ_CISS_DA" in kconfig.disk_symbols_for_major(104, FAMILIES)
    assert kconfig.disk_symbols_for_major(9, FAMILIES) is None                   # md: no disk of a family


def test_a_dump_dev_the_mini_kernel_drives_passes():
    assert kconfig.dump_dev_problem("/dev/hda2", 3, _built_in("ide"), FAMILIES) is None
    assert kconfig.dump_dev_problem("/dev/sdb2", 8, _built_in("ide", "scsi-sd"), FAMILIES) is None
    assert kconfig.dump_dev_problem("104:2", 104, _built_in("cciss"), FAMILIES) is None


def test_a_dump_dev_on_a_disk_no_built_in_driver_names_is_one_sentence():
    problem = kconfig.dump_dev_problem("/dev/sdb2", 8, _built_in("ide"), FAMILIES)
    assert problem.startswith("dump_dev=/dev/sdb2 is a disk of block major 8, but the mini kernel does not build in ")
    assert "CONFIG_BLK_DEV_SD" in problem and "scsi-sd" in problem and "ide," not in problem
    assert "\n" not in problem
    unknown = kconfig.dump_dev_problem("9:0", 9, _built_in("ide"), FAMILIES)
    assert unknown.startswith("dump_dev=9:0 has block major 9, which no dump driver family's disks get (3, ")
