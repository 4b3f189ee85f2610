"""The configure stage on a small synthetic Kconfig tree, with a fake Makefile whose conf is kconfiglib."""
import functools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mkdump import kconfig, userconfig
from mkdump.errors import MkdumpError
from support.project import FIELD_CONFIGS

ROOT = Path(__file__).resolve().parent.parent
REAL_CONFIGS = ROOT / "configs"
ARCH = "testarch"

STANDIN = """\
config DUMP_MINI_KERNEL
	bool "Make dump mini kernel"

config X86_PAE
	bool "Run the mini kernel on PAE mode (default)"
	depends on DUMP_MINI_KERNEL
	default y
"""

ARCH_KCONFIG = """\
mainmenu "Test kernel"

source "init/Kconfig"

menu "Processor type and features"

config SMP
	bool "Symmetric multi-processing support"

config PCI
	bool "PCI support"
	default y

endmenu

source drivers/Kconfig

source "fs/Kconfig"
"""

INIT_KCONFIG = """\
menu "General setup"

config EMBEDDED
	bool "Configure standard kernel features (for small systems)"

config SWAP
	bool "Support for paging of anonymous memory (swap)"
	default y

config MODULES
	bool "Enable loadable module support"

config NET
	bool "Networking support"

{standin}
endmenu		# General setup
"""

DRIVERS_KCONFIG = """\
menu "Device drivers"

config IDE
	bool "ATA/IDE support"
	depends on PCI

config BLK_DEV_IDEDMA_PCI
	bool "Generic PCI bus-master DMA support"
	depends on IDE

config BLK_DEV_PIIX
	tristate "Intel PIIXn chipsets support"
	depends IDE && BLK_DEV_IDEDMA_PCI

config SERIAL
	bool "Serial port"
	help
	  Written by J\u00f6rg; this help line
	  source lines like this one are prose, not statements.

config SERIAL_CONSOLE
	bool "Console on serial port"
	depends on SERIAL

config WATCHDOG
	bool "Watchdog"
	select TIMER_HELPER

config TIMER_HELPER
	bool "Timer helper"

config VT
	bool "Virtual terminal" if EMBEDDED
	default y

config LOG_SHIFT
	int "Log buffer size" if EMBEDDED
	default 14

endmenu
"""

FS_KCONFIG = """\
menu "File systems"

config EXT2_FS
	tristate "Second extended fs support"

config JBD
	tristate
	default EXT2_FS

menu "Pseudo filesystems"

config PROC_FS
	bool "/proc file system support"

config RAMFS
	bool
	default y

endmenu

endmenu
"""

FS_MAKEFILE = """\
obj-y := open.o
obj-$(CONFIG_EXT2_FS)		+= ext2/
obj-$(CONFIG_JBD)		+= jbd/
obj-$(CONFIG_PROC_FS)		+= proc/
obj-$(CONFIG_RAMFS)		+= ramfs/
"""

# The fake kbuild: allnoconfig and oldconfig done by kconfiglib. FORCE=SYM=VALUE makes oldconfig change a value
# behind the audit's back (as a disagreement between kconfiglib and the kernel's conf would); SLOW=1 makes it hang.
FAKE_CONF = f"""\
import sys
import tempfile
sys.path.insert(0, {str(ROOT / "site_scons")!r})
from mkdump.kconfig import load_kconfig
import kconfiglib

mode, arch, cc, force = sys.argv[1:5]
with open("make-calls", "a") as f:
    f.write(mode + " CC=" + cc + "\\n")
kconf = load_kconfig(".", arch)
if mode == "allnoconfig":
    for sym in kconf.unique_defined_syms:
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            sym.set_value(0)
else:
    kconf.load_config(".config")
    if force:
        name, value = force.split("=")
        kconf.syms[name].set_value(value)
kconf.write_config(".config")
"""

# LOOP=1 is 2.6.9's conf on a choice the .config leaves open with stdin at EOF: the question, again and again.
MAKEFILE = """\
CC ?= cc
FORCE ?=
allnoconfig oldconfig:
\t@if [ "$(SLOW)" = 1 ]; then sleep 60 & echo $$! > slow.pid; wait; fi
\t@if [ "$(LOOP)" = 1 ]; then yes 'PCI access mode (BIOS, Direct, Any) [1-3]: '; fi
\t{python} scripts/fakeconf.py $@ $(ARCH) "$(CC)" "$(FORCE)"
""".format(python=sys.executable)

MINIK_COMMON = """\
# shared mini kernel fragment (test copy)
CONFIG_DUMP_MINI_KERNEL=y
# CONFIG_SMP is not set
# CONFIG_SWAP is not set
# CONFIG_NET is not set
# CONFIG_MODULES is not set
CONFIG_PROC_FS=y
"""

MINIK_ARCH = """\
CONFIG_PCI=y
CONFIG_SERIAL=y
CONFIG_SERIAL_CONSOLE=y
"""

SYSTEM_ARCH = """\
CONFIG_MODULES=y
CONFIG_PCI=y
CONFIG_SERIAL=y
CONFIG_PROC_FS=y
"""

DRIVERS = """\
default = "ide"

[family.ide]
description = "IDE on PIIX"
symbols = [
    "IDE",
    "BLK_DEV_IDEDMA_PCI",
    "BLK_DEV_PIIX",
]

[family.piix-no-dma]
description = "PIIX without the DMA option it depends on"
symbols = [
    "IDE",
    "BLK_DEV_PIIX",
]
"""


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def make_tree(root, *, standin=True):
    tree = root / "linux"
    write(tree / "arch" / ARCH / "Kconfig", ARCH_KCONFIG)
    write(tree / "init" / "Kconfig", INIT_KCONFIG.format(standin=STANDIN if standin else ""))
    write(tree / "drivers" / "Kconfig", DRIVERS_KCONFIG, encoding="latin-1")
    write(tree / "fs" / "Kconfig", FS_KCONFIG)
    write(tree / "fs" / "Makefile", FS_MAKEFILE)
    write(tree / "scripts" / "fakeconf.py", FAKE_CONF)
    write(tree / "Makefile", MAKEFILE)
    return tree


def make_configs(root):
    configs = root / "configs"
    configs.mkdir()
    shutil.copy(REAL_CONFIGS / "rules.toml", configs / "rules.toml")
    write(configs / "minik-common.config", MINIK_COMMON)
    write(configs / f"minik-{ARCH}.config", MINIK_ARCH)
    write(configs / f"system-{ARCH}.config", SYSTEM_ARCH)
    write(configs / "dump-drivers.toml", DRIVERS)
    return configs


@pytest.fixture
def env(tmp_path):
    class Env:
        tree = make_tree(tmp_path)
        configs = make_configs(tmp_path)
        logs = []

        def fragments(self, kind="minik", user=None, **kw):
            user_path = None
            if user is not None:
                user_path = write(tmp_path / "user.config", user)
            return kconfig.fragments_for(self.configs, arch=ARCH, kind=kind, user_fragment=user_path, **kw)

        def configure(self, kind="minik", user=None, fragments=None, make_args=(), **kw):
            frags = fragments if fragments is not None else self.fragments(
                kind, user, **{k: kw.pop(k) for k in ("dump_driver",) if k in kw})
            return kconfig.configure(self.tree, arch=ARCH, kind=kind, fragments=frags, make_args=make_args,
                                     log=self.logs.append, configs_dir=self.configs, **kw)

        def error(self, *args, **kw):
            with pytest.raises(kconfig.ConfigError) as info:
                self.configure(*args, **kw)
            return str(info.value)

    return Env()


def defined(env, rel, name):
    """'defined at FILE:LINE' for `config NAME` in the synthetic tree."""
    lines = (env.tree / rel).read_text(encoding="latin-1").splitlines()
    return f"defined at {rel}:{lines.index('config ' + name) + 1}"


def line_of(path, text):
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


# ------------------------------------------------------------------------------------------------ success

def test_clean_mini_kernel_config_passes_and_is_summarised(env):
    summary = env.configure(make_args=["CC=fake-gcc -m64"])
    config = env.tree / ".config"
    assert "config_sha256" not in summary
    assert summary["values_sha256"] == kconfig.config_values_sha256(config)
    assert summary["audited"]["DUMP_MINI_KERNEL"] == "y"
    assert summary["audited"]["SMP"] == "n"
    assert summary["audited"]["BLK_DEV_PIIX"] == "y"
    assert summary["filesystem_symbols"] == ["EXT2_FS"]
    drivers = env.configs / "dump-drivers.toml"
    piix_line = line_of(drivers, '"BLK_DEV_PIIX"')
    assert summary["requested"]["BLK_DEV_PIIX"]["origin"] == f"{drivers}:{piix_line} (dump_driver=ide)"
    assert summary["oldconfig_changed"] == {}
    # make ran allnoconfig then oldconfig, each with the caller's toolchain arguments.
    assert (env.tree / "make-calls").read_text() == "allnoconfig CC=fake-gcc -m64\noldconfig CC=fake-gcc -m64\n"
    json.dumps(summary)
    assert "CONFIG_PIIX" not in config.read_text()
    assert "CONFIG_BLK_DEV_PIIX=y" in config.read_text().splitlines()


def test_shadow_copy_reads_latin1_and_legacy_depends_without_touching_the_tree(env):
    before = {p: p.read_bytes() for p in env.tree.rglob("*") if p.is_file()}
    kconf = kconfig.load_kconfig(env.tree, ARCH)
    piix = kconf.syms["BLK_DEV_PIIX"]
    assert {s.name for s in kconfig.kconfiglib.expr_items(piix.direct_dep)} >= {"IDE", "BLK_DEV_IDEDMA_PCI"}
    assert "J\u00f6rg" in kconf.syms["SERIAL"].nodes[0].help
    assert piix.nodes[0].filename == "drivers/Kconfig"
    assert {p: p.read_bytes() for p in env.tree.rglob("*") if p.is_file()} == before


def test_filesystem_rule_covers_prompted_filesystems_not_pseudo_or_promptless(env):
    kconf = kconfig.load_kconfig(env.tree, ARCH)
    assert kconfig.filesystem_symbols(kconf, env.tree) == ["EXT2_FS"]


# ------------------------------------------------------------------------------------------------ audit failures

def test_request_defeated_by_a_dependency_is_explained(env):
    msg = env.error(dump_driver="piix-no-dma")
    drivers = env.configs / "dump-drivers.toml"
    # The origin is the line of the piix-no-dma family, the second occurrence of the symbol in the file.
    lines = [n for n, text in enumerate(drivers.read_text().splitlines(), 1) if '"BLK_DEV_PIIX"' in text]
    piix_line = lines[1]
    assert msg.startswith("the mini kernel configuration for testarch does not hold after make oldconfig: "
                          "1 problem")
    assert (f"  CONFIG_BLK_DEV_PIIX: requested y at {drivers}:{piix_line} (dump_driver=piix-no-dma), actual n"
            in msg.splitlines())
    assert defined(env, "drivers/Kconfig", "BLK_DEV_PIIX") in msg
    assert "unmet dependencies: BLK_DEV_IDEDMA_PCI (=n)" in msg
    assert "IDE (=n)" not in msg


def test_request_defeated_in_user_fragment_names_its_line(env):
    msg = env.error(user="# mine\nCONFIG_WATCHDOG=y\n# CONFIG_SERIAL is not set\nCONFIG_SERIAL_CONSOLE=y\n")
    user = env.tree.parent / "user.config"
    assert f"  CONFIG_SERIAL_CONSOLE: requested y at {user}:4, actual n" in msg.splitlines()
    assert "unmet dependencies: SERIAL (=n) (depends on SERIAL)" in msg
    assert defined(env, "drivers/Kconfig", "SERIAL_CONSOLE") in msg


def test_request_forced_by_a_select_is_explained(env):
    msg = env.error(user="CONFIG_WATCHDOG=y\n# CONFIG_TIMER_HELPER is not set\n")
    assert "  CONFIG_TIMER_HELPER: requested n at" in msg
    assert "actual y" in msg
    assert "selected by WATCHDOG [WATCHDOG (=y)]" in msg
    assert defined(env, "drivers/Kconfig", "TIMER_HELPER") in msg


def test_hidden_prompt_and_default_are_explained(env):
    msg = env.error(user="# CONFIG_VT is not set\nCONFIG_LOG_SHIFT=15\n")
    lines = msg.splitlines()
    assert any(line.startswith("  CONFIG_VT: requested n at") and line.endswith("actual y") for line in lines)
    vt = defined(env, "drivers/Kconfig", "VT").split()[-1]
    assert f"its prompt is hidden (needs EMBEDDED (=n)), so its default applies (default y at {vt})" in msg
    assert any(line.startswith("  CONFIG_LOG_SHIFT: requested 15 at") and line.endswith("actual 14")
               for line in lines)
    assert msg.count("its prompt is hidden (needs EMBEDDED (=n))") == 2


def test_audit_reads_the_final_config_written_by_oldconfig(env):
    msg = env.error(make_args=["FORCE=SERIAL_CONSOLE=n"])
    assert f"  CONFIG_SERIAL_CONSOLE: requested y at {env.configs / f'minik-{ARCH}.config'}:3, actual n" in msg
    # The rejected configuration cannot be built by accident, but stays for inspection.
    assert not (env.tree / ".config").exists()
    assert "# CONFIG_SERIAL_CONSOLE is not set" in (env.tree / ".config.rejected").read_text().splitlines()
    assert msg.splitlines()[-1] == f"  (the rejected configuration is kept as {env.tree / '.config'}.rejected)"


def test_rule_broken_by_a_default_without_any_request(env):
    # A SWAP whose prompt is hidden and a common fragment that forgets it: the Kconfig default (y) breaks the
    # rule, and the audit says so.
    init = env.tree / "init" / "Kconfig"
    init.write_text(init.read_text().replace('bool "Support for paging of anonymous memory (swap)"',
                                             'bool "Support for paging of anonymous memory (swap)" if EMBEDDED'))
    write(env.configs / "minik-common.config", MINIK_COMMON.replace("# CONFIG_SWAP is not set\n", ""))
    msg = env.error()
    rules = env.configs / "rules.toml"
    assert "  CONFIG_SWAP: actual y, but must be n: README step 2" in msg
    swap_line = line_of(rules, 'symbol = "SWAP"')
    assert f"(rule at {rules}:{swap_line})" in msg
    assert defined(env, "init/Kconfig", "SWAP") + "; its prompt is hidden (needs EMBEDDED (=n)), so its " \
        "default applies" in msg


# ------------------------------------------------------------------------------------------------ checked before make

def test_unknown_symbol_is_an_error_with_file_and_line_before_make_runs(env):
    msg = env.error(user="CONFIG_PCI=y\n\nCONFIG_NO_SUCH_THING=y\n")
    user = env.tree.parent / "user.config"
    assert f"  CONFIG_NO_SUCH_THING: unknown symbol, requested at {user}:3;" in msg
    assert msg.startswith("the mini kernel configuration for testarch cannot be made as asked: 1 problem")
    assert not (env.tree / "make-calls").exists()
    assert not (env.tree / ".config").exists()


def test_dump_driver_as_module_is_refused(env):
    msg = env.error(user="CONFIG_BLK_DEV_PIIX=m\n")
    user = env.tree.parent / "user.config"
    assert f"  CONFIG_BLK_DEV_PIIX: requested m at {user}:1, but the dump driver (dump_driver=ide) must be built " \
           "in (=y), never a module" in msg
    assert "1 problem" in msg


def test_forbidden_requests_all_reported_one_line_each(env):
    msg = env.error(user="CONFIG_SMP=y\nCONFIG_NET=y\nCONFIG_EXT2_FS=m\nCONFIG_MODULES=y\n")
    user = env.tree.parent / "user.config"
    lines = msg.splitlines()
    assert "4 problems" in lines[0]
    assert f"  CONFIG_SMP: requested y at {user}:1, but must be n: README step 2: the mini kernel must not be SMP" \
        in msg
    assert f"  CONFIG_NET: requested y at {user}:2, but must be n:" in msg
    assert f"  CONFIG_EXT2_FS: requested m at {user}:3, but the mini kernel must have no filesystem" in msg
    assert f"  CONFIG_MODULES: requested y at {user}:4, but must be n:" in msg
    assert len([line for line in lines if line.startswith("  CONFIG_")]) == 4
    assert not (env.tree / "make-calls").exists()


def test_conflict_between_our_fragments_is_an_error_naming_both_lines(env):
    second = write(env.tree.parent / "second.config", "# other\n# CONFIG_SERIAL is not set\n")
    frags = env.fragments()
    frags.insert(2, str(second))
    msg = env.error(fragments=frags)
    arch_frag = env.configs / f"minik-{ARCH}.config"
    assert (f"  CONFIG_SERIAL: {second}:2 asks for n but {arch_frag}:2 asks for y; our fragments must agree"
            in msg)


def test_user_fragment_overrides_are_logged_and_summarised(env):
    summary = env.configure(user="# CONFIG_SERIAL_CONSOLE is not set\n")
    user = env.tree.parent / "user.config"
    arch_frag = env.configs / f"minik-{ARCH}.config"
    assert summary["overrides"] == [{"symbol": "SERIAL_CONSOLE", "from": "y", "from_origin": f"{arch_frag}:3",
                                     "to": "n", "origin": f"{user}:1"}]
    assert summary["audited"]["SERIAL_CONSOLE"] == "n"
    assert any("CONFIG_SERIAL_CONSOLE=n" in line and "overrides y" in line for line in env.logs)


def test_missing_dump_mini_kernel_means_the_minik_patch_did_not_apply(tmp_path):
    tree = make_tree(tmp_path, standin=False)
    configs = make_configs(tmp_path)
    frags = kconfig.fragments_for(configs, arch=ARCH, kind="minik")
    with pytest.raises(kconfig.ConfigError) as info:
        kconfig.configure(tree, arch=ARCH, kind="minik", fragments=frags, log=lambda m: None, configs_dir=configs)
    msg = str(info.value)
    assert "CONFIG_DUMP_MINI_KERNEL is not defined" in msg
    assert "the minik patch did not apply or is not the expected one" in msg
    assert isinstance(info.value, MkdumpError)


def test_bad_value_type_is_an_error(env):
    msg = env.error(user="CONFIG_LOG_SHIFT=big\nCONFIG_SERIAL=m\n")
    assert "CONFIG_LOG_SHIFT: value 'big' requested at" in msg and "is not a valid int" in msg
    assert "CONFIG_SERIAL: value 'm' requested at" in msg and "is not a valid bool" in msg


# ------------------------------------------------------------------------------------------------ make runner

def stops_within(pid, seconds):
    # SIGKILL is delivered asynchronously: give the process a moment to become a zombie or disappear.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_hanging_make_is_stopped_with_what_it_started(env):
    msg = env.error(make_args=["SLOW=1"], make=functools.partial(kconfig.run_make, timeout=1))
    assert "did not finish within 1 s" in msg
    assert "allnoconfig" in msg
    # The process make started (conf, in the real tree) is stopped too, not left running.
    assert stops_within(int((env.tree / "slow.pid").read_text()), 5)


def test_a_make_repeating_a_question_forever_is_stopped_early(env):
    started = time.monotonic()
    msg = env.error(make_args=["LOOP=1"], make=functools.partial(kconfig.run_make, timeout=120, max_output=1 << 20))
    assert time.monotonic() - started < 60
    assert msg.startswith(f"'make ARCH={ARCH} allnoconfig LOOP=1' in {env.tree} printed more than 1 MB and was "
                          "stopped")
    assert msg.splitlines()[-1] == "    PCI access mode (BIOS, Direct, Any) [1-3]:"
    assert len(msg.splitlines()) == 16


def test_an_outer_makes_flags_do_not_reach_make(env, monkeypatch):
    # Under an outer `make -n`, allnoconfig and oldconfig would only print their commands and write no .config.
    monkeypatch.setenv("MAKEFLAGS", "n")
    monkeypatch.setenv("MAKELEVEL", "1")
    summary = env.configure()
    assert summary["audited"]["DUMP_MINI_KERNEL"] == "y"
    assert (env.tree / "make-calls").read_text().splitlines() == ["allnoconfig CC=cc", "oldconfig CC=cc"]


def test_a_failing_make_shows_its_output(env):
    (env.tree / "scripts" / "fakeconf.py").write_text("import sys\nprint('conf exploded')\nsys.exit(3)\n")
    msg = env.error()
    assert "failed in" in msg and "(exit 2)" in msg
    assert "conf exploded" in msg


# ------------------------------------------------------------------------------------------------ system kernel

def test_system_kernel_default_allows_smp(env):
    summary = env.configure(kind="system", user="CONFIG_SMP=y\n")
    assert summary["audited"]["SMP"] == "y"
    assert summary["audited"]["MODULES"] == "y"
    assert summary["filesystem_symbols"] == []


def test_system_kernel_from_users_config_without_modules_fails(env, tmp_path):
    base = write(tmp_path / "usual.config",
                 "CONFIG_PCI=y\n# CONFIG_MODULES is not set\nCONFIG_SMP=y\nCONFIG_PROC_FS=y\n")
    msg = env.error(kind="system", fragments=[], base_config=base)
    # What mkexec needs is one sentence naming the option and the line, before make runs.
    assert msg == (f"the system_config file {base} has CONFIG_MODULES=n (line 2), but it must be y: mkexec, which "
                   "loads the mini kernel, is a kernel module (README: insmod mkexec.ko); set CONFIG_MODULES=y in it")
    assert not (env.tree / "make-calls").exists()


def test_system_kernel_from_users_config(env, tmp_path):
    base = write(tmp_path / "usual.config", "CONFIG_PCI=y\nCONFIG_MODULES=y\nCONFIG_SMP=y\nCONFIG_SERIAL=y\n"
                 "CONFIG_PROC_FS=y\n")
    summary = env.configure(kind="system", fragments=[], base_config=base)
    assert summary["audited"] == {"MODULES": "y", "PROC_FS": "y"}
    assert summary["base_config"] == str(base)
    values = kconfig.read_config_values(env.tree / ".config")
    assert values["SMP"] == "y" and values["SERIAL"] == "y"


def test_lines_this_tree_cannot_take_are_left_out_and_listed(env, tmp_path):
    # A distribution's file: symbols vanilla 2.6.9 lacks, a value a symbol cannot take here, a stray line.
    base = write(tmp_path / "distro.config", "# Linux kernel version: 2.6.9-34.ELsmp\nCONFIG_MODULES=y\n"
                 "CONFIG_KEXEC=y\n# CONFIG_OLD_THING is not set\nCONFIG_SERIAL=m\nCONFIG_LOG_SHIFT=big\n"
                 "this is no config line\nCONFIG_PROC_FS=y\n")
    summary = env.configure(kind="system", fragments=[], base_config=base)
    user = summary["user_config"]
    assert user["release"] == "2.6.9-34.ELsmp"
    left = [(e["line"], e["setting"]) for e in user["left_out"]]
    assert left == [(None, ""), (3, "CONFIG_KEXEC=y"), (5, "CONFIG_SERIAL=m"), (7, "")]
    whys = [e["why"] for e in user["left_out"]]
    assert whys[0].startswith("the value 'big' is invalid for LOG_SHIFT")
    assert whys[1] == f"no Kconfig file of Linux 2.6.9 defines it for {ARCH}"
    assert whys[2].startswith("'m' is not a valid value for the bool symbol SERIAL")
    assert whys[3] == "ignoring malformed line 'this is no config line'"
    assert not any("OLD_THING" in e["setting"] for e in user["left_out"])
    values = kconfig.read_config_values(env.tree / ".config")
    assert "KEXEC" not in values and values["MODULES"] == "y"
    assert any(f"4 line(s) of {base} left out" in m and "CONFIG_KEXEC" in m for m in env.logs)
    report = kconfig.user_config_report(summary)
    assert "  line 3: CONFIG_KEXEC=y: no Kconfig file of Linux 2.6.9 defines it" in report
    assert report.startswith(f"system_config={base} (made for Linux 2.6.9-34.ELsmp)")


@pytest.mark.parametrize("text, words", [
    ("# Linux kernel version: 2.6.12\nCONFIG_MODULES=y\n", "is the configuration of Linux 2.6.12, not of 2.6.9"),
    ("# Linux kernel version: 2.6.90\nCONFIG_MODULES=y\n", "is the configuration of Linux 2.6.90, not of 2.6.9"),
    ("#\n# Linux/x86_64 3.10.0 Kernel Configuration\n#\nCONFIG_X86_64=y\n",
     "is the configuration of Linux 3.10.0, not of 2.6.9"),
    ("# Linux kernel version: 2.6.9\nCONFIG_X86_64=y\nCONFIG_X86=y\nCONFIG_MODULES=y\n",
     f"is an x86_64 configuration, not an {ARCH} one; pass it with arch=x86_64"),
    ("# Linux kernel version: 2.6.9-22.EL\nCONFIG_IA64=y\nCONFIG_MODULES=y\n", "is an ia64 configuration"),
    ("# Automatically generated by make menuconfig: don't edit\nCONFIG_MODULES=y\nCONFIG_X86_WP_WORKS_OK=y\n"
     "CONFIG_MTRR=y\nCONFIG_HOTPLUG_PCI_COMPAQ=m\n", "it has no 'Linux kernel version' line and 3 of its 4 settings"),
    ("this is not a config at all\n", "has no CONFIG_ line, so it is not a kernel .config"),
])
def test_a_file_for_another_series_or_arch_is_refused_in_one_sentence(env, tmp_path, text, words):
    base = write(tmp_path / "other.config", text)
    msg = env.error(kind="system", fragments=[], base_config=base)
    assert words in msg and str(base) in msg and "\n" not in msg
    assert not (env.tree / ".config").exists()
    assert not (env.tree / "make-calls").exists()


def test_the_arch_of_a_config_comes_from_the_first_marker_it_sets():
    rules = REAL_CONFIGS / "rules.toml"
    cases = {"CONFIG_X86=y\nCONFIG_X86_64=y\n": "x86_64", "CONFIG_X86=y\n# CONFIG_X86_64 is not set\n": "i386",
             "CONFIG_PPC=y\nCONFIG_PPC64=y\n": "ppc64", "CONFIG_MODULES=y\n": None}
    for text, arch in cases.items():
        path = write(Path(tempfile.mkdtemp()) / "c", text)
        assert userconfig.read_header(path, rules).arch == arch, text


def test_the_field_configs_are_identified():
    """The three real configurations users posted (test data in support.project.FIELD_CONFIGS, when present)."""
    field = FIELD_CONFIGS
    if not field.is_dir():
        pytest.skip(f"{field} is not present")
    found = {p.name: userconfig.read_header(p, REAL_CONFIGS / "rules.toml") for p in field.glob("*.config")}
    assert found["x86_64-rhel4-2.6.9-34.ELsmp.config"] == userconfig.Header("2.6.9-34.ELsmp", "x86_64")
    assert found["i386-p4-smp-2.6.9-udm1.config"] == userconfig.Header("2.6.9-udm1-hpc2n-p4-smp", "i386")
    assert found["i386-2.6.9-vanilla-up.config"] == userconfig.Header("2.6.9", "i386")


@pytest.mark.parametrize("content, text", [
    (None, "cannot read the system_config file {base}: No such file or directory; check the path"),
    (b"CONFIG_MODULES=y\nCONFIG_LOCALVERSION=\"-j\xf6rg\"\n", "the system_config file {base} is not a .config (Malformed utf-8 in"),
])
def test_unreadable_users_config_is_one_sentence(env, tmp_path, content, text):
    base = tmp_path / "usual.config"
    if content is not None:
        base.write_bytes(content)
    msg = env.error(kind="system", fragments=[], base_config=base)
    assert msg.startswith(text.format(base=base))
    assert not (env.tree / ".config").exists()


def test_users_config_values_that_kconfig_changes_are_logged(env, tmp_path):
    base = write(tmp_path / "usual.config", "CONFIG_MODULES=y\n# CONFIG_SERIAL is not set\nCONFIG_SERIAL_CONSOLE=y\n"
                 "CONFIG_PROC_FS=y\n")
    summary = env.configure(kind="system", fragments=[], base_config=base)
    assert summary["audited"] == {"MODULES": "y", "PROC_FS": "y"}
    assert f"config: system {ARCH}: 1 value(s) of {base} do not hold in this tree (Kconfig dependencies or " \
           "selects), e.g. SERIAL_CONSOLE y -> n" in env.logs
    [changed] = summary["user_config"]["changed"]
    assert changed["symbol"] == "SERIAL_CONSOLE" and changed["line"] == 3
    assert changed["why"].startswith("unmet dependencies: SERIAL")


# ------------------------------------------------------------------------------------------------ fragments

def test_fragment_syntax_errors_name_file_and_line(tmp_path):
    frag = write(tmp_path / "bad.config",
                 "# fine comment\nCONFIG_A=y\nCONFIG_B y\n#CONFIG_C is unset\nCONFIG_D=\"open\nCONFIG_A=n\n")
    with pytest.raises(kconfig.ConfigError) as info:
        kconfig.parse_fragment(frag)
    msg = str(info.value)
    assert msg.startswith(f"the config fragment {frag} has 4 bad line(s)")
    assert f"{frag}:3: 'CONFIG_B y' is neither" in msg
    assert f"{frag}:4: '#CONFIG_C is unset' is neither" in msg
    assert f"{frag}:5: CONFIG_D has an unterminated string value" in msg
    assert f"{frag}:6: CONFIG_A=n contradicts CONFIG_A=y at {frag}:2 in the same fragment" in msg


def test_fragment_values(tmp_path):
    frag = kconfig.parse_fragment(write(tmp_path / "f.config",
                                        'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="a \\"q\\""\nCONFIG_D=0x10\n'))
    assert [(r.symbol, r.value, r.origin) for r in frag.requests] == [
        ("A", "y", f"{tmp_path / 'f.config'}:1"), ("B", "n", f"{tmp_path / 'f.config'}:2"),
        ("C", 'a "q"', f"{tmp_path / 'f.config'}:3"), ("D", "0x10", f"{tmp_path / 'f.config'}:4")]
    assert not frag.overrides


def test_missing_fragment_file(tmp_path):
    with pytest.raises(kconfig.ConfigError, match="cannot read the config fragment .*nope.config"):
        kconfig.parse_fragment(tmp_path / "nope.config")


def test_dump_driver_families_of_the_repository():
    families = kconfig.dump_driver_families(REAL_CONFIGS)
    names = list(families)
    assert names[0] == "ide" and families["ide"]["default"]
    assert [n for n in names if families[n]["default"]] == ["ide"]
    assert {"ide", "sata-piix", "scsi-sd"} <= set(names)
    for fam in families.values():
        assert fam["description"] and fam["symbols"]
    # The lesson of toolchain.md: PIIX is dropped without the PCI DMA option.
    ide = families["ide"]["symbols"]
    assert ide.index("BLK_DEV_IDEDMA_PCI") < ide.index("BLK_DEV_PIIX")


def test_fragments_for_orders_ours_then_generated_then_user(tmp_path):
    user = write(tmp_path / "u.config", "CONFIG_PCI=y\n")
    frags = kconfig.fragments_for(REAL_CONFIGS, arch="i386", kind="minik", dump_driver="scsi-sd", pae=False,
                                  user_fragment=user)
    assert frags[:2] == [str(REAL_CONFIGS / "minik-common.config"), str(REAL_CONFIGS / "minik-i386.config")]
    assert frags[2].name == "dump_driver=scsi-sd"
    assert "BLK_DEV_SD" in [r.symbol for r in frags[2].requests]
    assert [(r.symbol, r.value) for r in frags[3].requests] == [("X86_PAE", "n")]
    assert frags[4].overrides and frags[4].path == str(user)
    default = kconfig.fragments_for(REAL_CONFIGS, arch="i386", kind="minik")
    assert default[2].name == "dump_driver=ide"
    assert [(r.symbol, r.value, r.origin) for r in default[3].requests] == [("X86_PAE", "y", "option pae=yes")]
    x86_64 = kconfig.fragments_for(REAL_CONFIGS, arch="x86_64", kind="minik")
    assert len(x86_64) == 3
    assert kconfig.fragments_for(REAL_CONFIGS, arch="x86_64", kind="system") == [
        str(REAL_CONFIGS / "system-x86_64.config")]


@pytest.mark.parametrize("kw, text", [
    ({"arch": "x86_64", "kind": "minik", "pae": False}, "pae= applies to i386 only"),
    ({"arch": "x86_64", "kind": "minik", "dump_driver": "floppy"}, "dump_driver=floppy is not a known dump driver"),
    ({"arch": "arm", "kind": "minik"}, "arch=arm has no minik configuration"),
    ({"arch": "x86_64", "kind": "system", "dump_driver": "ide"}, "apply to the mini kernel only"),
    ({"arch": "x86_64", "kind": "crash"}, "kernel kind 'crash' is unknown"),
])
def test_fragments_for_refuses_bad_options(kw, text):
    with pytest.raises(kconfig.ConfigError, match=text):
        kconfig.fragments_for(REAL_CONFIGS, **kw)


def test_repository_fragments_parse():
    for path in sorted(REAL_CONFIGS.glob("*.config")):
        frag = kconfig.parse_fragment(path)
        assert frag.requests, path


def test_values_hash_ignores_comments_but_not_values(env, tmp_path):
    summary = env.configure()
    config = env.tree / ".config"
    assert summary["values_sha256"] == kconfig.config_values_sha256(config)
    text = config.read_text()
    dated = write(tmp_path / "dated", "#\n# Thu Nov 26 05:16:13 2026\n#\n" + text)
    assert kconfig.config_values_sha256(dated) == summary["values_sha256"]
    changed = write(tmp_path / "changed", text.replace("CONFIG_VT=y", "# CONFIG_VT is not set"))
    assert kconfig.config_values_sha256(changed) != summary["values_sha256"]


# ------------------------------------------------------------------------------------------------ plan, apply, audit

def test_plan_holds_every_rule_as_symbols_of_the_tree_before_make_runs(env):
    planned = kconfig.plan(env.tree, arch=ARCH, kind="minik", fragments=env.fragments(), configs_dir=env.configs,
                           log=env.logs.append)
    assert not (env.tree / "make-calls").exists()
    by_symbol = {c.symbol: c for c in planned.checks}
    assert list(by_symbol) == ["DUMP_MINI_KERNEL", "SMP", "SWAP", "NET", "MODULES", "EXT2_FS", "IDE",
                               "BLK_DEV_IDEDMA_PCI", "BLK_DEV_PIIX"]
    rules = env.configs / "rules.toml"
    smp_line = line_of(rules, 'symbol = "SMP"')
    assert by_symbol["SMP"].must == ("must be n: README step 2: the mini kernel must not be SMP (it runs on one CPU "
                                     f"of a crashed machine) (rule at {rules}:{smp_line})")
    assert by_symbol["BLK_DEV_PIIX"].must.startswith("the dump driver (dump_driver=ide) must be built in (=y)")
    assert by_symbol["EXT2_FS"].value == "n" and by_symbol["BLK_DEV_PIIX"].value == "y"
    assert planned.requested["BLK_DEV_PIIX"].value == "y"


def test_check_rules_is_one_text_before_and_after_oldconfig(env):
    planned = kconfig.plan(env.tree, arch=ARCH, kind="minik", fragments=env.fragments(), configs_dir=env.configs,
                           log=env.logs.append)
    kconf = planned.kconf
    before = kconfig.check_rules(planned.checks, kconf, {"EXT2_FS": "m", "PCI": "y"}, {"EXT2_FS": "mine:7"})
    assert list(before) == ["EXT2_FS"]
    must = ("but the mini kernel must have no filesystem (README step 2: 'no filesystem need'; pseudo filesystems "
            "such as PROC_FS, SYSFS, TMPFS, RAMFS are allowed)")
    where = defined(env, "fs/Kconfig", "EXT2_FS")
    assert before["EXT2_FS"] == f"  CONFIG_EXT2_FS: requested m at mine:7, {must}\n      {where}"
    after = kconfig.check_rules(planned.checks, kconf, {c.symbol: c.value for c in planned.checks} | {"EXT2_FS": "y"})
    assert list(after) == ["EXT2_FS"]
    assert after["EXT2_FS"].startswith(f"  CONFIG_EXT2_FS: actual y, {must}\n      {where}; ")
    assert kconfig.check_rules(planned.checks, kconf, {c.symbol: c.value for c in planned.checks}) == {}


def test_apply_writes_the_requests_and_runs_oldconfig_then_audit_reads_the_result(env):
    planned = kconfig.plan(env.tree, arch=ARCH, kind="minik", fragments=env.fragments(), configs_dir=env.configs,
                           log=env.logs.append)
    calls = []

    def make(argv, cwd):
        calls.append(argv)
        return kconfig.run_make(argv, cwd)

    written, user_config = kconfig.apply(planned, make_args=["CC=x"], make=make, log=env.logs.append)
    assert calls == [["make", f"ARCH={ARCH}", "allnoconfig", "CC=x"], ["make", f"ARCH={ARCH}", "oldconfig", "CC=x"]]
    assert user_config is None
    assert written["BLK_DEV_PIIX"] == "y" and written["SMP"] == "n"
    final = kconfig.audit(planned)
    assert final == kconfig.read_config_values(env.tree / ".config")
    assert kconfig.oldconfig_changes(planned.kconf, written, final) == {}


def test_apply_with_an_object_directory_writes_the_config_there_and_never_in_the_tree(env, tmp_path):
    obj = tmp_path / "obj" / "minik"
    planned = kconfig.plan(env.tree, arch=ARCH, kind="minik", fragments=env.fragments(), configs_dir=env.configs,
                           log=env.logs.append, obj=obj)
    obj.mkdir(parents=True)
    calls = []

    def make(argv, cwd):
        calls.append((argv, cwd))
        if "allnoconfig" in argv:
            (obj / ".config").write_text("")    # what allnoconfig leaves for the requests to start from
        return ""

    written, _ = kconfig.apply(planned, make_args=["CC=x"], make=make, log=env.logs.append)
    on_tree = ["-f", str(env.tree / "Makefile"), f"KBUILD_SRC={env.tree}"]
    assert calls == [(["make", f"ARCH={ARCH}", "allnoconfig", "CC=x", *on_tree], str(obj)),
                     (["make", f"ARCH={ARCH}", "oldconfig", "CC=x", *on_tree], str(obj))]
    assert planned.config == str(obj / ".config")
    assert kconfig.read_config_values(obj / ".config") == written and written["BLK_DEV_PIIX"] == "y"
    assert not (env.tree / ".config").exists()


def test_a_filesystem_switched_on_behind_the_audit_is_caught_after_oldconfig(env):
    msg = env.error(make_args=["FORCE=EXT2_FS=y"])
    assert msg.startswith("the mini kernel configuration for testarch does not hold after make oldconfig: 1 problem")
    assert ("  CONFIG_EXT2_FS: actual y, but the mini kernel must have no filesystem (README step 2: 'no filesystem "
            "need'; pseudo filesystems such as PROC_FS, SYSFS, TMPFS, RAMFS are allowed)") in msg.splitlines()
    assert (env.tree / ".config.rejected").exists()


def test_a_dump_driver_dropped_by_oldconfig_is_one_problem_not_two(env):
    msg = env.error(make_args=["FORCE=BLK_DEV_PIIX=n"])
    assert "1 problem," in msg
    assert "  CONFIG_BLK_DEV_PIIX: requested y at" in msg and "actual n" in msg


def test_summary_records_every_rule_and_no_options(env):
    summary = env.configure()
    assert "options" not in summary
    covers = [r for r in summary["rules"] if "covers" in r]
    assert [(r["covers"], r["value"]) for r in covers] == [("filesystems", "n"), ("dump_driver", "y")]
    assert {"symbol": "SMP", "value": "n"}.items() <= next(r for r in summary["rules"]
                                                           if r.get("symbol") == "SMP").items()


@pytest.mark.parametrize("rule, words", [
    ('[[minik.rule]]\ncovers = "sockets"\nvalue = "n"\nmust = "x"\n', "rule 1 of [minik] needs a value and either"),
    ('[[minik.rule]]\nsymbol = "SMP"\nvalue = "n"\n', "rule 1 of [minik] needs a value and either"),
    ('[[minik.rule]]\nsymbol = "SMP"\nvalue = "n"\nwhy = "x"\nmust = "y"\n', "rule 1 of [minik] needs"),
    ('[[minik.rule]]\nsymbol = "SMP"\nvalue = "n"\nwhy = "x"\nreason = "y"\n', "rule 1 of [minik] needs"),
])
def test_a_malformed_rule_is_refused_naming_the_file(env, rule, words):
    (env.configs / "rules.toml").write_text(rule)
    msg = env.error()
    assert msg.startswith(f"{env.configs / 'rules.toml'}: {words}")
    assert not (env.tree / "make-calls").exists()


def test_a_rule_on_a_symbol_the_tree_lacks_names_the_rule(env):
    rules = env.configs / "rules.toml"
    rules.write_text(rules.read_text().replace('symbol = "NET"', 'symbol = "NETWORK"'))
    msg = env.error()
    assert msg == (f"CONFIG_NETWORK, named by the rule at {rules}:{line_of(rules, 'NETWORK')}, is not defined for "
                   f"arch={ARCH} in {env.tree}; this tree is not the expected Linux 2.6.9")
