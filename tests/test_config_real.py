"""The configure stage on the real Linux 2.6.9 tree, with a stand-in for the minik patch's Kconfig lines."""
import subprocess
from pathlib import Path

import pytest

from mkdump import kconfig
from support import project, standin_minik
from support.real_sources import unpack_tree

pytestmark = pytest.mark.realkernel

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# The minik patch's Kconfig options; the real patch is applied by the patch stage, these tests need only its Kconfig
# side, so they go into init/Kconfig's "General setup" menu.
STANDIN = standin_minik.KCONFIG_OPTIONS.decode() + "\n"
GENERAL_SETUP_END = "endmenu\t\t# General setup"

# What the mini kernel's "no filesystem" rule catches on 2.6.9 x86 (both arches): every filesystem a user could
# switch on, disk (the README's concern and the mkdump authors' list), flash and network alike; and what it must
# let through: pseudo filesystems, partition tables, NLS, and helpers without a prompt that follow a filesystem.
FILESYSTEMS = {
    "EXT2_FS", "EXT3_FS", "REISERFS_FS", "JFS_FS", "XFS_FS", "MINIX_FS", "ROMFS_FS", "ISO9660_FS", "UDF_FS",
    "MSDOS_FS", "VFAT_FS", "NTFS_FS", "CRAMFS", "HFS_FS", "HFSPLUS_FS", "BEFS_FS", "BFS_FS", "EFS_FS", "VXFS_FS",
    "HPFS_FS", "QNX4FS_FS", "SYSV_FS", "UFS_FS", "ADFS_FS", "AFFS_FS", "JFFS_FS", "JFFS2_FS", "AUTOFS_FS",
    "AUTOFS4_FS", "NFS_FS", "NFSD", "SMB_FS", "CIFS", "NCP_FS", "CODA_FS", "AFS_FS",
}
NOT_CAUGHT = {"PROC_FS", "SYSFS", "TMPFS", "RAMFS", "HUGETLBFS", "DEVFS_FS", "NLS", "MSDOS_PARTITION", "JBD",
              "FAT_FS", "UMSDOS_FS", "EXPORTFS", "LOCKD", "QUOTA"}


@pytest.fixture(scope="session")
def real_tree(real_linux_tarball, tmp_path_factory):
    root = tmp_path_factory.mktemp("real-config")
    tree = unpack_tree(real_linux_tarball, root)
    init = tree / "init" / "Kconfig"
    pristine = init.read_text(encoding="latin-1")
    assert GENERAL_SETUP_END in pristine
    return tree, pristine


@pytest.fixture
def minik_tree(real_tree):
    tree, pristine = real_tree
    (tree / "init" / "Kconfig").write_text(pristine.replace(GENERAL_SETUP_END, STANDIN + GENERAL_SETUP_END),
                                           encoding="latin-1")
    return tree


@pytest.fixture
def system_tree(real_tree):
    tree, pristine = real_tree
    (tree / "init" / "Kconfig").write_text(pristine, encoding="latin-1")
    return tree


def configure(tree, arch, kind="minik", **kw):
    frags = kconfig.fragments_for(CONFIGS, arch=arch, kind=kind, **kw)
    logs = []
    summary = kconfig.configure(tree, arch=arch, kind=kind, fragments=frags, log=logs.append)
    return summary, logs


def config_lines(path):
    """The lines of a .config that carry values (conf also writes the date into its header comment)."""
    return [line for line in path.read_text(encoding="latin-1").splitlines()
            if not line.startswith("#") or line.startswith("# CONFIG_")]


def oldconfig_again_changes_nothing(tree, arch):
    config = tree / ".config"
    before = config_lines(config)
    subprocess.run(["make", f"ARCH={arch}", "oldconfig"], cwd=tree, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True, timeout=600)
    return config_lines(config) == before and len(before) > 100


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_mini_kernel_config_passes_the_audit(minik_tree, arch):
    summary, logs = configure(minik_tree, arch)
    audited = summary["audited"]
    assert audited["DUMP_MINI_KERNEL"] == "y"
    for name in ("SMP", "SWAP", "NET", "MODULES"):
        assert audited[name] == "n", name
    for name in ("IDE", "BLK_DEV_IDEDISK", "BLK_DEV_IDEDMA_PCI", "BLK_DEV_PIIX", "SERIAL_8250_CONSOLE", "PROC_FS"):
        assert audited[name] == "y", name
    caught = set(summary["filesystem_symbols"])
    assert caught == FILESYSTEMS
    kconf = kconfig.load_kconfig(minik_tree, arch)
    assert all(kconf.syms[name].nodes for name in NOT_CAUGHT)
    assert all(audited[name] == "n" for name in caught)
    # kconfiglib's .config is what the kernel's own conf would write: oldconfig changes no value, then no byte.
    assert summary["oldconfig_changed"] == {}
    assert oldconfig_again_changes_nothing(minik_tree, arch)
    values = kconfig.read_config_values(minik_tree / ".config")
    assert values["SYSFS"] == "y" and values["RAMFS"] == "y"
    if arch == "i386":
        assert audited["X86_PAE"] == "y"
        assert summary["requested"]["X86_PAE"]["origin"] == "option pae=yes"


def test_i386_without_pae(minik_tree):
    summary, _ = configure(minik_tree, "i386", pae=False)
    assert summary["audited"]["X86_PAE"] == "n"
    assert kconfig.read_config_values(minik_tree / ".config").get("X86_PAE", "n") == "n"


@pytest.mark.parametrize("family", list(kconfig.dump_driver_families(CONFIGS)))
def test_every_dump_driver_family_is_built_in(minik_tree, family):
    summary, _ = configure(minik_tree, "x86_64", dump_driver=family)
    symbols = kconfig.dump_driver_families(CONFIGS)[family]["symbols"]
    assert {name: summary["audited"][name] for name in symbols} == {name: "y" for name in symbols}


@pytest.mark.parametrize("line, rule", [
    ("CONFIG_SMP=y", "README step 2: the mini kernel must not be SMP"),
    ("CONFIG_NET=y", "README step 2: the mini kernel has no networking"),
])
def test_user_fragment_asking_for_a_forbidden_value_fails_with_the_reason(minik_tree, tmp_path, line, rule):
    user = tmp_path / "mine.config"
    user.write_text(f"# my additions\n{line}\n")
    with pytest.raises(kconfig.ConfigError) as info:
        configure(minik_tree, "x86_64", user_fragment=user)
    msg = str(info.value)
    symbol = line.split("=")[0]
    assert msg.splitlines()[0].startswith("the mini kernel configuration for x86_64 cannot be made as asked: "
                                          "1 problem")
    assert f"  {symbol}: requested y at {user}:2, but must be n: {rule}" in msg


def test_user_fragment_defeated_by_kconfig_is_explained(minik_tree, tmp_path):
    user = tmp_path / "mine.config"
    user.write_text("CONFIG_SCSI_ATA_PIIX=y\n# CONFIG_SYSFS is not set\n")
    with pytest.raises(kconfig.ConfigError) as info:
        configure(minik_tree, "x86_64", user_fragment=user)
    msg = str(info.value)
    assert f"  CONFIG_SCSI_ATA_PIIX: requested y at {user}:1, actual n" in msg
    assert "defined at drivers/scsi/Kconfig:418; unmet dependencies: SCSI_SATA (=n)" in msg
    assert f"  CONFIG_SYSFS: requested n at {user}:2, actual y" in msg
    assert "its prompt is hidden (needs EMBEDDED (=n))" in msg


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_system_kernel_default_config_passes_the_audit(system_tree, arch):
    summary, _ = configure(system_tree, arch, kind="system")
    assert summary["audited"]["MODULES"] == "y"
    assert summary["audited"]["BLK_DEV_PIIX"] == "y"
    assert summary["oldconfig_changed"] == {}
    assert oldconfig_again_changes_nothing(system_tree, arch)


def test_mini_kernel_on_a_tree_without_the_minik_patch(system_tree):
    with pytest.raises(kconfig.ConfigError, match="the minik patch did not apply or is not the expected one"):
        configure(system_tree, "x86_64")


def without_lines(path, needle):
    return "".join(line for line in path.read_text(encoding="latin-1").splitlines(keepends=True)
                   if needle not in line)


def test_users_config_leaving_a_choice_open_is_completed_before_oldconfig(system_tree, tmp_path):
    configure(system_tree, "i386", kind="system")
    usual = tmp_path / "usual.config"
    usual.write_text(without_lines(system_tree / ".config", "PCI_GO"), encoding="latin-1")
    # The kernel's own conf, given that file with stdin at EOF, asks the PCI access question forever.
    (system_tree / ".config").write_text(usual.read_text(encoding="latin-1"), encoding="latin-1")
    with pytest.raises(kconfig.ConfigError, match="printed more than 1 MB and was stopped") as info:
        kconfig.run_make(["make", "ARCH=i386", "oldconfig"], system_tree, max_output=1 << 20)
    assert "(PCI_GOANY) (NEW)" in str(info.value)
    # configure() writes the whole choice with kconfiglib first, so oldconfig has nothing to ask.
    summary = kconfig.configure(system_tree, arch="i386", kind="system", fragments=[], base_config=usual,
                                log=lambda msg: None)
    assert summary["audited"] == {"MODULES": "y", "PROC_FS": "y"}
    assert kconfig.read_config_values(system_tree / ".config")["PCI_GOANY"] == "y"
    assert oldconfig_again_changes_nothing(system_tree, "i386")


def test_a_line_this_tree_cannot_take_is_left_out_and_named(system_tree, tmp_path):
    configure(system_tree, "x86_64", kind="system")
    usual = tmp_path / "usual.config"
    usual.write_text((system_tree / ".config").read_text(encoding="latin-1")
                     + "CONFIG_KEXEC=y\n# CONFIG_CRASH_DUMP is not set\n", encoding="latin-1")
    summary = kconfig.configure(system_tree, arch="x86_64", kind="system", fragments=[], base_config=usual,
                                log=lambda msg: None)
    number = usual.read_text(encoding="latin-1").splitlines().index("CONFIG_KEXEC=y") + 1
    assert summary["user_config"]["left_out"] == [
        {"line": number, "setting": "CONFIG_KEXEC=y", "why": "no Kconfig file of Linux 2.6.9 defines it for x86_64"}]
    assert "KEXEC" not in kconfig.read_config_values(system_tree / ".config")


FIELD_CONFIGS = {
    # file: (arch, symbols a distribution added that 2.6.9 lacks, among those left out)
    "x86_64-rhel4-2.6.9-34.ELsmp.config": ("x86_64", {"DISKDUMP", "NETDUMP", "TUX", "AUDITFILESYSTEM"}),
    "i386-p4-smp-2.6.9-udm1.config": ("i386", {"DM_MULTIPATH", "DM_FLAKEY"}),
    "i386-2.6.9-vanilla-up.config": ("i386", set()),
}


@pytest.mark.parametrize("name", sorted(FIELD_CONFIGS))
def test_a_field_configuration_configures_without_hand_editing(system_tree, name, tmp_path):
    """A user's real 2.6.9 .config (../shared/field-configs) is taken as it is: what 2.6.9 lacks is left out and
    listed, what Kconfig changes is given with its reason, and the rules (MODULES, PROC_FS) hold."""
    path = project.FIELD_CONFIGS / name
    if not path.is_file():
        pytest.skip(f"{path} is not present (the field configurations are test data outside the repository)")
    arch, distro_symbols = FIELD_CONFIGS[name]
    logs = []
    summary = kconfig.configure(system_tree, arch=arch, kind="system", fragments=[], base_config=path,
                                log=logs.append)
    user = summary["user_config"]
    left = {e["setting"].split("=")[0][len("CONFIG_"):] for e in user["left_out"] if e["setting"]}
    assert distro_symbols <= left
    assert all(c["why"] for c in user["changed"])
    assert summary["audited"] == {"MODULES": "y", "PROC_FS": "y"}
    values = kconfig.read_config_values(system_tree / ".config")
    original = kconfig.read_config_values(path)
    assert values["MODVERSIONS"] == "y" and values["SMP"] == original.get("SMP", "n")
    report = kconfig.user_config_report(summary)
    print(f"\n{name}: {len(user['left_out'])} left out, {len(user['changed'])} changed\n{report}")
    assert oldconfig_again_changes_nothing(system_tree, arch)
