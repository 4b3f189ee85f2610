"""scons menuconfig's pure parts: what of a saved configuration is the user's choice; nothing saved, nothing
written. The whole menu in a terminal is tested in test_integration.py."""
import sys

import kconfiglib
import pytest

from mkdump import menuconfig
from mkdump.errors import MkdumpError

KCONFIG = """
config SMP
\tbool "Symmetric multi-processing support"

config NR_CPUS
\tint "Maximum number of CPUs"
\tdepends on SMP
\tdefault 8

config PREEMPT
\tbool "Preemptible Kernel"
"""


def _kconf(tmp_path):
    (tmp_path / "Kconfig").write_text(KCONFIG)
    return kconfiglib.Kconfig(str(tmp_path / "Kconfig"), warn_to_stderr=False)


def _config(path, text):
    path.write_text(text)
    return str(path)


def test_a_value_that_follows_from_a_choice_is_not_the_users(tmp_path):
    kconf = _kconf(tmp_path)
    before = _config(tmp_path / "before", "# CONFIG_SMP is not set\n# CONFIG_PREEMPT is not set\n")
    after = _config(tmp_path / "after", "CONFIG_SMP=y\nCONFIG_NR_CPUS=8\n# CONFIG_PREEMPT is not set\n")
    assert menuconfig.fragment_text(kconf, before, after) == ["CONFIG_SMP=y"]
    # a value the user changed from its default is theirs too
    after = _config(tmp_path / "after", "CONFIG_SMP=y\nCONFIG_NR_CPUS=4\nCONFIG_PREEMPT=y\n")
    assert menuconfig.fragment_text(kconf, before, after) == ["CONFIG_SMP=y", "CONFIG_NR_CPUS=4",
                                                              "CONFIG_PREEMPT=y"]


def test_switching_off_is_written_as_not_set(tmp_path):
    kconf = _kconf(tmp_path)
    before = _config(tmp_path / "before", "CONFIG_SMP=y\nCONFIG_NR_CPUS=8\nCONFIG_PREEMPT=y\n")
    after = _config(tmp_path / "after", "CONFIG_SMP=y\nCONFIG_NR_CPUS=8\n# CONFIG_PREEMPT is not set\n")
    assert menuconfig.fragment_text(kconf, before, after) == ["# CONFIG_PREEMPT is not set"]


def test_quitting_without_saving_writes_nothing(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".config").write_text("CONFIG_SMP=y\n")
    said = []
    save = tmp_path / "mine.config"
    problems = menuconfig.menuconfig(str(tree), arch="x86_64", kind="minik", save=str(save), fragments=[],
                                     configs_dir=None, log=said.append, interface=[sys.executable, "-c", "pass"])
    assert problems == [] and not save.exists()
    assert said == [f"menuconfig: nothing was saved, so {save} was not written."]
    assert (tree / ".config").read_text() == "CONFIG_SMP=y\n"


def test_a_menu_that_fails_saves_nothing(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".config").write_text("CONFIG_SMP=y\n")
    save = tmp_path / "mine.config"
    with pytest.raises(MkdumpError) as e:
        menuconfig.menuconfig(str(tree), arch="x86_64", kind="minik", save=str(save), fragments=[],
                              configs_dir=None, log=print,
                              interface=[sys.executable, "-c", "raise SystemExit(3)"])
    assert str(e.value) == f"the configuration menu ended with status 3; nothing was saved to {save}."
    assert not save.exists()
