"""The fixture kernel tree (tests/support/fixture_kernel.py) behaves like Linux 2.6.9 where the product
relies on it: Kconfig layout and quirks, kbuild targets and variables, what a build produces."""
import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile

import kconfiglib
import pytest
from elftools.elf.elffile import ELFFile

from support import fixture_kernel as fk

X86_64_CC = "gcc -fno-pie"
I386_CC = "gcc -m32"
R_X86_64_PLT32 = 4


def run(args, cwd, check=True):
    proc = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, proc.returncode, proc.stdout, proc.stderr))
    return proc


def set_config(tree, **values):
    """Edit .config as a user would: drop the symbols' lines, append the new values (None: not set)."""
    path = tree / ".config"
    pattern = re.compile(r"^(# )?CONFIG_(%s)[= ]" % "|".join(values))
    lines = [line for line in path.read_text().splitlines() if not pattern.match(line)]
    for name, value in values.items():
        lines.append("CONFIG_%s=%s" % (name, value) if value else "# CONFIG_%s is not set" % name)
    path.write_text("\n".join(lines) + "\n")


def config_values(tree):
    values = {}
    for line in (tree / ".config").read_text().splitlines():
        m = re.match(r"CONFIG_(\w+)=(.*)", line) or re.match(r"# CONFIG_(\w+) is not set", line)
        if m:
            values[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
    return values


def symbols(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {sym.name: sym["st_value"] for sym in elf.get_section_by_name(".symtab").iter_symbols()
                if sym.name}


def modinfo(path):
    with open(path, "rb") as f:
        data = ELFFile(f).get_section_by_name(".modinfo").data()
    return dict(item.decode().split("=", 1) for item in data.split(b"\0") if item)


def gcc_version(cc):
    macros = run(cc.split() + ["-dM", "-E", "-x", "c", os.devnull], cwd=None).stdout
    major = re.search(r"#define __GNUC__ (\d+)", macros).group(1)
    minor = re.search(r"#define __GNUC_MINOR__ (\d+)", macros).group(1)
    return "%s.%s" % (major, minor)


def load_kconfig(tree, arch, latin1=True, legacy_depends=True):
    """Load the tree's Kconfig with kconfiglib through a shadow copy, with 2.6.9's two adjustments."""
    shadow = tree.parent / ("kconfig-shadow-" + arch)
    shutil.rmtree(shadow, ignore_errors=True)
    for src in tree.rglob("Kconfig*"):
        data = src.read_bytes()
        if latin1:
            data = data.decode("latin-1").encode("utf-8")
        if legacy_depends:
            data = re.sub(rb"(?m)^([ \t]*)depends(?=[ \t])(?![ \t]+on[ \t])", rb"\1depends on", data)
        dst = shadow / src.relative_to(tree)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
    old = os.environ.get("srctree")
    os.environ["srctree"] = str(shadow)
    try:
        return kconfiglib.Kconfig("arch/%s/Kconfig" % arch, warn=False)
    finally:
        if old is None:
            del os.environ["srctree"]
        else:
            os.environ["srctree"] = old


def build(tree, arch, cc, extra=None, *make_args):
    """allnoconfig, then the user's edits, oldconfig with stdin at /dev/null, then bzImage."""
    run(["make", "ARCH=" + arch, "allnoconfig"], tree)
    if extra:
        set_config(tree, **extra)
    run(["make", "ARCH=" + arch, "oldconfig"], tree)
    return run(["make", "ARCH=" + arch, "CC=" + cc, "-j2", *make_args, "bzImage"], tree)


X86_64_CONFIG = {"SMP": "y", "MODULES": "y", "NET": "y", "EXT2_FS": "m", "SERIAL_8250": "y", "PROC_FS": "y"}


@pytest.fixture(scope="module")
def x86_64_tree(tmp_path_factory):
    tree = fk.make_fixture_tree(tmp_path_factory.mktemp("x86_64"))
    build(tree, "x86_64", X86_64_CC, X86_64_CONFIG)
    return tree


# --- the tree itself ------------------------------------------------------------------------------------

def test_tree_is_small_text_with_2_6_9_quirks(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    assert tree == tmp_path / "linux-2.6.9"
    files = [p for p in tree.rglob("*") if p.is_file()]
    assert len(files) <= 64 and sum(p.stat().st_size for p in files) < 100_000
    non_ascii = [p.relative_to(tree).as_posix() for p in files if max(p.read_bytes()) > 127]
    assert non_ascii == ["fs/Kconfig"]
    with pytest.raises(UnicodeDecodeError):
        (tree / "fs/Kconfig").read_bytes().decode("utf-8")
    legacy = [line for p in tree.rglob("Kconfig*") for line in p.read_text("latin-1").splitlines()
              if re.match(r"\s*depends\s+(?!on\b)", line)]
    assert len(legacy) >= 2
    head = (tree / "Makefile").read_text().splitlines()[:4]
    assert head == ["VERSION = 2", "PATCHLEVEL = 6", "SUBLEVEL = 9", "EXTRAVERSION ="]
    assert "$Id: head.S,v 1.3 2001/04/20 00:59:28 ak Exp $" in (tree / "arch/x86_64/boot/compressed/head.S").read_text()
    assert "ljmp $(__KERNEL_CS), $0x100000" in (tree / "arch/x86_64/boot/compressed/head.S").read_text()
    assert "ljmp $(__BOOT_CS), $0x100000" in (tree / "arch/i386/boot/compressed/head.S").read_text()
    assert re.search(r"^ \*  \$Id\$$", (tree / "arch/x86_64/kernel/setup.c").read_text(), re.M)
    with pytest.raises(FileExistsError):
        fk.make_fixture_tree(tmp_path)


def test_kconfiglib_needs_exactly_the_two_adjustments(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    with pytest.raises(kconfiglib.KconfigError, match="Malformed utf-8 in 'fs/Kconfig'"):
        load_kconfig(tree, "x86_64", latin1=False)
    with pytest.raises(kconfiglib.KconfigError, match="depends"):
        load_kconfig(tree, "x86_64", legacy_depends=False)
    for arch in fk.ARCHES:
        kconf = load_kconfig(tree, arch)
        syms = kconf.syms
        for name in ("SMP", "SWAP", "NET", "INET", "MODULES", "MODULE_UNLOAD", "PCI", "IDE", "BLK_DEV_IDE",
                     "BLK_DEV_IDEDISK", "BLK_DEV_IDEPCI", "BLK_DEV_IDEDMA_PCI", "BLK_DEV_PIIX", "SCSI",
                     "BLK_DEV_SD", "SCSI_SATA", "SCSI_ATA_PIIX", "EXT2_FS", "EXT3_FS", "JBD", "ISO9660_FS",
                     "PROC_FS", "SYSFS", "RAMFS", "TMPFS", "MSDOS_PARTITION", "SERIAL_8250",
                     "SERIAL_8250_CONSOLE", "PREEMPT", "HOTPLUG", "SYSVIPC", "ACPI", "EMBEDDED", "BINFMT_ELF",
                     "BLK_DEV_RAM", "BLK_DEV_INITRD"):
            assert syms[name].nodes, (arch, name)
        assert "DUMP_MINI_KERNEL" not in syms or not syms["DUMP_MINI_KERNEL"].nodes
        assert "BLK_DEV_IDEDMA_PCI" in kconfiglib.expr_str(syms["BLK_DEV_PIIX"].direct_dep)
        assert "SCSI_SATA" in kconfiglib.expr_str(syms["SCSI_ATA_PIIX"].direct_dep)
        assert "EXT3_FS" in kconfiglib.expr_str(syms["JBD"].rev_dep)
        assert not any(node.prompt for node in syms["RAMFS"].nodes) and syms["RAMFS"].str_value == "y"
        assert "EMBEDDED" in kconfiglib.expr_str(syms["SYSFS"].nodes[0].prompt[1])
        assert any(node.filename == "fs/Kconfig" for node in syms["EXT2_FS"].nodes)
    i386 = load_kconfig(tree, "i386").syms
    assert kconfiglib.expr_str(i386["X86_PAE"].direct_dep) == "HIGHMEM64G"
    assert not any(node.prompt for node in i386["X86_PAE"].nodes)


def test_fragment_symbols_are_declared_in_misc(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "minik.config").write_text("CONFIG_DUMP_MINI_KERNEL=y\n# CONFIG_SMP is not set\n"
                                          "CONFIG_FOO_DRIVER=m\n# CONFIG_BAR_FS is not set\nCONFIG_CMDLINE=\"x\"\n")
    (configs / "drivers.toml").write_text('[ide]\nsymbols = ["BLK_DEV_PIIX", "QUUX_CHIP"]\n'
                                          '[sata.set]\nSCSI_FOO = "m"\nX86_PAE = "y"\n')
    tree = fk.make_fixture_tree(tmp_path / "src", configs_dir=configs)
    misc = (tree / "drivers/Kconfig").read_text()
    assert 'menu "Misc"' in misc
    syms = load_kconfig(tree, "x86_64").syms
    assert syms["FOO_DRIVER"].orig_type == kconfiglib.TRISTATE
    assert syms["SCSI_FOO"].orig_type == kconfiglib.TRISTATE
    assert syms["BAR_FS"].orig_type == kconfiglib.BOOL
    assert syms["QUUX_CHIP"].orig_type == kconfiglib.BOOL
    assert syms["CMDLINE"].orig_type == kconfiglib.STRING
    for defined_elsewhere in ("SMP", "BLK_DEV_PIIX"):
        assert [node.filename for node in syms[defined_elsewhere].nodes] != ["drivers/Kconfig"]
    for patch_only in ("DUMP_MINI_KERNEL", "X86_PAE"):
        assert "config %s\n" % patch_only not in misc


def test_the_repository_fragments_name_no_unknown_symbol(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    run(["patch", "-p1", "-s", "--fuzz=0", "-i", str(write_contracted_patch(tree))], tree)
    wanted = fk.fragment_symbols(fk.DEFAULT_CONFIGS_DIR)
    for arch in fk.ARCHES:
        syms = load_kconfig(tree, arch).syms
        unknown = sorted(name for name in wanted if name not in syms or not syms[name].nodes)
        # i386-only symbols may appear in x86_64's view and the reverse; the fragments are per arch.
        arch_only = {"HIGHMEM64G", "HIGHMEM4G", "NOHIGHMEM", "HIGHMEM", "MATH_EMULATION", "UID16",
                     "IA32_EMULATION", "64BIT", "X86_64", "PCI_DIRECT"}
        assert [name for name in unknown if name not in arch_only] == [], arch


# --- building -------------------------------------------------------------------------------------------

def test_oldconfig_fills_defaults_and_writes_autoconf(x86_64_tree):
    values = config_values(x86_64_tree)
    assert values["SMP"] == "y" and values["NR_CPUS"] == "8" and values["MODULES"] == "y"
    assert values["EXT2_FS"] == "m" and values["SWAP"] == "n" and values["INET"] == "n"
    assert values["RAMFS"] == "y" and values["SYSFS"] == "y"
    assert values["SERIAL_CORE"] == "y"
    autoconf = (x86_64_tree / "include/linux/autoconf.h").read_text()
    assert "#define CONFIG_SMP 1\n" in autoconf
    assert "#undef CONFIG_SWAP\n" in autoconf
    assert "#define CONFIG_EXT2_FS_MODULE 1\n" in autoconf
    assert "#define CONFIG_NR_CPUS 8\n" in autoconf
    before = (x86_64_tree / ".config").read_bytes(), (x86_64_tree / "include/linux/autoconf.h").stat().st_mtime_ns
    run(["make", "ARCH=x86_64", "oldconfig"], x86_64_tree)
    after = (x86_64_tree / ".config").read_bytes(), (x86_64_tree / "include/linux/autoconf.h").stat().st_mtime_ns
    assert before == after


def check_image(tree, arch, elfclass, machine, run_base):
    vmlinux = tree / "vmlinux"
    vmlinux_bin = tree / "arch" / arch / "boot/compressed/vmlinux.bin"
    bzimage = tree / "arch" / arch / "boot/bzImage"
    expected_bin = tree / "expected.bin"
    run(["objcopy", "-O", "binary", "-R", ".note", "-R", ".comment", "-S", str(vmlinux), str(expected_bin)], tree)
    assert vmlinux_bin.read_bytes() == expected_bin.read_bytes()
    nm = run(["nm", "-n", str(vmlinux)], tree).stdout.splitlines()
    assert (tree / "System.map").read_text().splitlines() == [l for l in nm if not re.search(r" [aUw] ", l)]
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        assert (elf.elfclass, elf["e_machine"]) == (elfclass, machine)
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        assert loads[0]["p_vaddr"] == run_base + 0x100000 and loads[0]["p_paddr"] == 0x100000
        assert all(seg["p_vaddr"] - seg["p_paddr"] == run_base for seg in loads)
    syms = symbols(vmlinux)
    order = ["_text", "_etext", "_edata", "__init_begin", "__init_end", "__bss_start", "_end"]
    assert [syms[name] for name in order] == sorted(syms[name] for name in order)
    assert syms["_text"] == syms["startup_32"] == run_base + 0x100000
    data = bzimage.read_bytes()
    assert data[0x1fe:0x200] == b"\x55\xaa" and data[0x202:0x206] == b"HdrS"
    assert gzip.decompress(data[1024:]) == vmlinux_bin.read_bytes()
    return syms


def test_x86_64_build(x86_64_tree):
    syms = check_image(x86_64_tree, "x86_64", 64, "EM_X86_64", 0xffffffff80000000)
    for present in ("smp_boot_cpus", "sock_init", "sys_socket", "sys_init_module", "load_module",
                    "__ksymtab_printk", "__ksymtab_kmalloc", "linux_banner", "start_kernel"):
        assert present in syms, present
    for absent in ("sys_swapon", "ext2_fill_super", "inet_init"):
        assert absent not in syms, absent
    with open(x86_64_tree / "vmlinux", "rb") as f:
        elf = ELFFile(f)
        ksymtab = elf.get_section_by_name("__ksymtab")
        init = elf.get_section_by_name(".init.text")
        assert ksymtab["sh_addr"] <= syms["__ksymtab_printk"] < ksymtab["sh_addr"] + ksymtab["sh_size"]
        assert init["sh_addr"] <= syms["start_kernel"] < init["sh_addr"] + init["sh_size"]
        rodata = elf.get_section_by_name(".rodata").data()
    assert re.search(rb"Linux version 2\.6\.9 \(mkdump@fixture\) \(gcc version [^\n]*\) #1 SMP ", rodata)


def test_rebuild_changes_nothing_and_a_new_cc_rebuilds(x86_64_tree):
    outputs = [x86_64_tree / p for p in ("vmlinux", "System.map", "arch/x86_64/boot/bzImage", "init/main.o")]
    before = [p.stat().st_mtime_ns for p in outputs]
    out = run(["make", "ARCH=x86_64", "CC=" + X86_64_CC, "bzImage"], x86_64_tree).stdout
    assert "  CC " not in out
    assert [p.stat().st_mtime_ns for p in outputs] == before
    out = run(["make", "ARCH=x86_64", "CC=%s -O1" % X86_64_CC, "V=1", "vmlinux"], x86_64_tree).stdout
    assert re.search(r"^gcc -fno-pie -O1 .* -c -o init/main.o init/main.c$", out, re.M)
    run(["make", "ARCH=x86_64", "CC=" + X86_64_CC, "vmlinux"], x86_64_tree)


def test_i386_build_without_modules_or_smp(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    out = build(tree, "i386", I386_CC, {"PROC_FS": "y"}, "HOSTCC=gcc -O1", "V=1")
    assert "gcc -O1 -Wall -O2 -o arch/i386/boot/tools/build" in out.stdout
    syms = check_image(tree, "i386", 32, "EM_386", 0xc0000000)
    for absent in ("smp_boot_cpus", "sock_init", "sys_init_module", "sys_swapon", "__ksymtab_printk"):
        assert absent not in syms, absent
    assert "printk" in syms
    proc = run(["make", "ARCH=i386", "CC=" + I386_CC, "modules"], tree, check=False)
    assert proc.returncode != 0 and "modules disabled" in proc.stderr
    module = write_module(tmp_path / "mod")
    proc = run(["make", "ARCH=i386", "CC=" + I386_CC, "SUBDIRS=%s" % module, "modules"], tree, check=False)
    assert proc.returncode != 0 and "without module support" in proc.stderr


def test_in_tree_modules_and_install(x86_64_tree, tmp_path):
    run(["make", "ARCH=x86_64", "CC=" + X86_64_CC, "modules"], x86_64_tree)
    ko = x86_64_tree / "fs/ext2/ext2.ko"
    info = modinfo(ko)
    assert info["license"] == "GPL"
    assert info["vermagic"] == "2.6.9 SMP gcc-%s" % gcc_version(X86_64_CC)
    assert {"init_module", "cleanup_module", "ext2_fill_super"} <= set(symbols(ko))
    run(["make", "ARCH=x86_64", "INSTALL_MOD_PATH=%s" % tmp_path, "modules_install"], x86_64_tree)
    assert (tmp_path / "lib/modules/2.6.9/kernel/fs/ext2/ext2.ko").read_bytes() == ko.read_bytes()


def write_module(path):
    path.mkdir(parents=True)
    (path / "Makefile").write_text("obj-m := hello.o\nhello-objs := hello-main.o helper.o\n")
    (path / "hello-main.c").write_text(
        "#include <linux/module.h>\n#include <linux/kernel.h>\n#include <linux/init.h>\n"
        "extern int helper(void);\n"
        "static int __init hello_init(void) { printk(KERN_INFO \"hello %d\\n\", helper()); return 0; }\n"
        "static void __exit hello_exit(void) { }\n"
        "module_init(hello_init);\nmodule_exit(hello_exit);\nMODULE_LICENSE(\"GPL\");\n")
    (path / "helper.c").write_text("int helper(void);\nint helper(void) { return 42; }\n")
    return path


def test_external_module_with_subdirs_and_m(x86_64_tree, tmp_path):
    module = write_module(tmp_path / "hello")
    run(["make", "-C", str(x86_64_tree), "ARCH=x86_64", "CC=" + X86_64_CC, "SUBDIRS=%s" % module, "modules"], tmp_path)
    ko = module / "hello.ko"
    with open(ko, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_type"] == "ET_REL" and elf["e_machine"] == "EM_X86_64"
        symtab = elf.get_section_by_name(".symtab")
        relocs = [(rel["r_info_type"], symtab.get_symbol(rel["r_info_sym"]).name)
                  for sec in elf.iter_sections() if sec["sh_type"] == "SHT_RELA" for rel in sec.iter_relocations()]
    assert (R_X86_64_PLT32, "printk") in relocs
    info = modinfo(ko)
    assert info["vermagic"] == "2.6.9 SMP gcc-%s" % gcc_version(X86_64_CC)
    assert info["license"] == "GPL"
    assert {"init_module", "cleanup_module", "__this_module", "helper"} <= set(symbols(ko))
    first = ko.read_bytes()
    run(["make", "-C", str(x86_64_tree), "ARCH=x86_64", "M=%s" % module, "clean"], tmp_path)
    assert not ko.exists()
    run(["make", "-C", str(x86_64_tree), "ARCH=x86_64", "CC=" + X86_64_CC, "M=%s" % module, "modules"], tmp_path)
    assert ko.read_bytes() == first


def exports(vmlinux):
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        ksymtab = elf.get_section_index("__ksymtab")
        return {sym.name[len("__ksymtab_"):] for sym in elf.get_section_by_name(".symtab").iter_symbols()
                if sym.name.startswith("__ksymtab_") and sym["st_shndx"] == ksymtab}


def vmlinux_vermagic(vmlinux):
    with open(vmlinux, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name("vermagic")[0]
        section = elf.get_section(sym["st_shndx"])
        start = sym["st_value"] - section["sh_addr"]
        return section.data()[start:start + sym["st_size"]].rstrip(b"\0").decode()


PROC_MODULE = r"""#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/proc_fs.h>
#include <linux/string.h>
#include <asm/uaccess.h>

MODULE_LICENSE("GPL");

static char value[64];
static struct proc_dir_entry *dir, *entry;

static int value_read(char *page, char **start, off_t off, int count, int *eof, void *data)
{
	*eof = 1;
	return sprintf(page, "%s\n", value);
}

static int value_write(struct file *file, const char __user *buf, unsigned long count, void *data)
{
	if (count >= sizeof(value))
		return -EINVAL;
	if (copy_from_user(value, buf, count))
		return -EFAULT;
	value[count] = '\0';
	if (strcmp(value, "1") == 0)
		printk(KERN_INFO "procmod: %s\n", value);
	return count;
}

int init_module(void)
{
	dir = proc_mkdir("procmod", NULL);
	entry = dir ? create_proc_entry("value", 0600, dir) : NULL;
	if (!entry)
		return -ENOMEM;
	entry->read_proc = value_read;
	entry->write_proc = value_write;
	return 0;
}

void cleanup_module(void)
{
	remove_proc_entry("value", dir);
	remove_proc_entry("procmod", NULL);
}
"""


def test_a_proc_module_needs_only_what_the_kernel_exports(x86_64_tree, tmp_path):
    module = tmp_path / "procmod"
    module.mkdir()
    (module / "Makefile").write_text("ifneq ($(KERNELRELEASE),)\nEXTRA_CFLAGS += -I$(src)/include\n"
                                     "obj-m := procmod.o\nendif\n")
    (module / "procmod.c").write_text(PROC_MODULE)
    run(["make", "ARCH=x86_64", "CC=" + X86_64_CC, "M=%s" % module, "modules"], x86_64_tree)
    ko = module / "procmod.ko"
    with open(ko, "rb") as f:
        undefined = {sym.name for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                     if sym.name and sym["st_shndx"] == "SHN_UNDEF"}
    assert undefined == {"copy_from_user", "create_proc_entry", "printk", "proc_mkdir", "remove_proc_entry",
                         "sprintf", "strcmp"}
    assert undefined <= exports(x86_64_tree / "vmlinux")
    assert modinfo(ko)["vermagic"] == vmlinux_vermagic(x86_64_tree / "vmlinux")


def test_fs_makefile_gates_the_filesystems_as_2_6_9_does(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    gated = re.findall(r"^obj-\$\(CONFIG_(\w+)\)\s*\+=\s*[\w.-]+/", (tree / "fs/Makefile").read_text(), re.M)
    syms = load_kconfig(tree, "x86_64").syms
    prompted = {name for name in gated if any(node.prompt for node in syms[name].nodes)}
    assert {"EXT2_FS", "EXT3_FS", "REISERFS_FS", "JFS_FS", "XFS_FS", "MINIX_FS", "ROMFS_FS", "ISO9660_FS",
            "UDF_FS", "MSDOS_FS", "VFAT_FS", "NTFS_FS", "PROC_FS", "SYSFS"} == prompted
    assert {"JBD", "FAT_FS", "RAMFS"} <= set(gated) - prompted
    run(["make", "ARCH=x86_64", "allnoconfig"], tree)
    set_config(tree, EXT3_FS="y", VFAT_FS="y")
    run(["make", "ARCH=x86_64", "oldconfig"], tree)
    values = config_values(tree)
    assert values["JBD"] == "y" and values["FAT_FS"] == "y"
    run(["make", "ARCH=x86_64", "CC=" + X86_64_CC, "vmlinux"], tree)


def test_two_builds_in_two_directories_are_identical(x86_64_tree, tmp_path):
    tree = fk.make_fixture_tree(tmp_path / "elsewhere")
    build(tree, "x86_64", X86_64_CC, X86_64_CONFIG)
    assert (tree / ".config").read_bytes() == (x86_64_tree / ".config").read_bytes()
    for rel in ("vmlinux", "System.map", "arch/x86_64/boot/compressed/vmlinux.bin", "arch/x86_64/boot/bzImage"):
        assert (tree / rel).read_bytes() == (x86_64_tree / rel).read_bytes(), rel


def _contents(tree):
    return {str(p.relative_to(tree)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in tree.rglob("*") if p.is_file() or p.is_symlink()}


def test_a_build_in_an_object_directory_matches_the_in_tree_one_and_never_writes_the_tree(x86_64_tree, tmp_path):
    tree = fk.make_fixture_tree(tmp_path / "src")
    before = _contents(tree)
    obj = tmp_path / "obj"
    obj.mkdir()
    # make O= as 2.6.9's documentation has it for the configuration, and as kbuild runs it for the build: in the
    # object directory on the tree's Makefile, all goals in one make.
    run(["make", "O=%s" % obj, "ARCH=x86_64", "allnoconfig"], tree)
    set_config(obj, **X86_64_CONFIG)
    run(["make", "O=%s" % obj, "ARCH=x86_64", "oldconfig"], tree)
    run(["make", "-f", str(tree / "Makefile"), "KBUILD_SRC=%s" % tree, "ARCH=x86_64", "CC=" + X86_64_CC, "-j2",
         "bzImage", "modules"], obj)
    assert _contents(tree) == before
    assert (obj / ".config").read_bytes() == (x86_64_tree / ".config").read_bytes()
    for rel in ("vmlinux", "System.map", "arch/x86_64/boot/compressed/vmlinux.bin", "arch/x86_64/boot/bzImage",
                "fs/ext2/ext2.ko"):
        assert (obj / rel).read_bytes() == (x86_64_tree / rel).read_bytes(), rel
    assert os.readlink(obj / "include2" / "asm") == str(tree / "include" / "asm-x86_64")
    # An external module against the object directory, through the Makefile the build wrote there.
    module = write_module(tmp_path / "hello")
    run(["make", "-C", str(obj), "ARCH=x86_64", "CC=" + X86_64_CC, "SUBDIRS=%s" % module, "modules"], tmp_path)
    assert modinfo(module / "hello.ko")["vermagic"] == "2.6.9 SMP gcc-%s" % gcc_version(X86_64_CC)
    assert _contents(tree) == before


def test_a_tree_configured_in_place_is_not_built_in_an_object_directory(tmp_path):
    tree = fk.make_fixture_tree(tmp_path / "src")
    run(["make", "ARCH=x86_64", "allnoconfig"], tree)
    obj = tmp_path / "obj"
    obj.mkdir()
    shutil.copyfile(tree / ".config", obj / ".config")
    proc = run(["make", "-f", str(tree / "Makefile"), "KBUILD_SRC=%s" % tree, "ARCH=x86_64", "CC=" + X86_64_CC,
                "bzImage"], obj, check=False)
    assert proc.returncode != 0 and ("%s is not clean" % tree) in proc.stderr


def test_unknown_arch_is_refused(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    proc = run(["make", "ARCH=arm", "allnoconfig"], tree, check=False)
    assert proc.returncode != 0 and "ARCH=arm" in proc.stderr


# --- tarball --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression,decompress", [("bz2", bz2.decompress), ("gz", gzip.decompress),
                                                     ("xz", lzma.decompress)])
def test_tarball_is_deterministic_and_holds_the_tree(tmp_path, compression, decompress):
    first = fk.make_fixture_tarball(tmp_path / "a", compression=compression)
    second = fk.make_fixture_tarball(tmp_path / "b", compression=compression)
    assert first.name == "linux-2.6.9.tar." + compression
    assert first.read_bytes() == second.read_bytes()
    tree = fk.make_fixture_tree(tmp_path / "tree")
    with tarfile.open(fileobj=io.BytesIO(decompress(first.read_bytes()))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(fk.TARBALL_MTIME, 0, 0, "root")}
        files = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
    expected = {"linux-2.6.9/" + p.relative_to(tree).as_posix(): p.read_bytes()
                for p in tree.rglob("*") if p.is_file()}
    assert files == expected
    with pytest.raises(ValueError, match="compression"):
        fk.make_fixture_tarball(tmp_path, compression="zip")


# --- the minik patch stand-in ---------------------------------------------------------------------------

ID_FILES = ["arch/x86_64/boot/compressed/head.S", "arch/x86_64/kernel/head.S", "arch/x86_64/kernel/setup.c",
            "arch/x86_64/kernel/setup64.c"]


def contract(text):
    return re.sub(r"\$Id(:[^$\n]*)?\$", "$Id$", text)


def write_contracted_patch(tree):
    """The minik patch with its $Id$ lines contracted, the tree's too: what keyword-aware patching sees."""
    for rel in ID_FILES:
        path = tree / rel
        path.write_text(contract(path.read_text("latin-1")), "latin-1")
    patch = tree.parent / "minik-contracted.patch"
    patch.write_text(contract(fk.make_fixture_minik_patch(tree).decode("latin-1")), "latin-1")
    return patch


def test_minik_patch_rejects_with_gnu_patch_only_at_the_id_lines(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    patch = tmp_path / "minik.patch"
    patch.write_bytes(fk.make_fixture_minik_patch(tree))
    text = patch.read_text("latin-1")
    assert text.count("\n--- a/") == 6 and "\n+++ b/arch/i386/Kconfig\n" in text
    out = run(["patch", "-p1", "--dry-run", "--fuzz=0", "-i", str(patch)], tree, check=False).stdout
    failed = re.findall(r"checking file (\S+)\n(?:Hunk #(\d+) FAILED)?", out)
    assert {name: hunk for name, hunk in failed} == {
        "arch/i386/Kconfig": "", "arch/x86_64/Kconfig": "", "arch/x86_64/boot/compressed/head.S": "1",
        "arch/x86_64/kernel/head.S": "1", "arch/x86_64/kernel/setup.c": "1", "arch/x86_64/kernel/setup64.c": "1"}
    # The keyword-only hunk: setup.c's first hunk changes nothing but the $Id$ line.
    setup_hunk = text.split("+++ b/arch/x86_64/kernel/setup.c\n")[1].split("\n@@")[0]
    changed = [line for line in setup_hunk.splitlines() if line[:1] in "+-" and not line.startswith("@@")]
    assert len(changed) == 2 and all("$Id:" in line for line in changed)
    # Once both sides' keywords are contracted, every hunk applies exactly.
    run(["patch", "-p1", "--fuzz=0", "-i", str(write_contracted_patch(tree))], tree)
    assert "unsigned long dump_dev;" in (tree / "arch/x86_64/kernel/setup.c").read_text()


def test_minik_patch_adds_the_mini_kernel_options(tmp_path):
    tree = fk.make_fixture_tree(tmp_path)
    run(["patch", "-p1", "-s", "--fuzz=0", "-i", str(write_contracted_patch(tree))], tree)
    for arch in fk.ARCHES:
        kconf = load_kconfig(tree, arch)
        node = kconf.syms["DUMP_MINI_KERNEL"].nodes[0]
        assert node.parent.prompt[0] == "General setup" and node.filename == "arch/%s/Kconfig" % arch
        run(["make", "ARCH=" + arch, "allnoconfig"], tree)
        set_config(tree, DUMP_MINI_KERNEL="y")
        run(["make", "ARCH=" + arch, "oldconfig"], tree)
        values = config_values(tree)
        assert values["DUMP_MINI_KERNEL"] == "y" and values["X86_PAE"] == "y", arch
