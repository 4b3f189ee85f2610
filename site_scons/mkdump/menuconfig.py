"""`scons menuconfig`: README step 2 ("make menuconfig") on a patched, configured tree, without changing it.

The menu is kconfiglib's menuconfig on our view of 2.6.9's Kconfig (the one the config stage audits with), run in
a terminal on a copy of the tree's .config; the tree and its stamps are left as the build made them. What the user
saves is written where they say: for the mini kernel a fragment of what they changed (for minik_fragment=), for
the system kernel the whole .config (for system_config=). The rules the build would enforce are checked on save
and every broken one printed, as the build would print it.
"""
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile

from .fsutil import write_atomic
from .kconfig import read_config_values

# kconfiglib writes this header; 2.6.9's own starts the same way, so a saved .config is known as a 2.6.9 one.
HEADER = ("#\n# Automatically generated make config: don't edit\n# Linux kernel version: 2.6.9\n"
          "# Saved by mkdump-build's scons menuconfig\n#\n")

_UI = """
import os, sys
sys.path.insert(0, sys.argv[1])
import menuconfig
from mkdump.kconfig import load_kconfig
kconf = load_kconfig(sys.argv[2], sys.argv[3])
menuconfig.menuconfig(kconf)
"""

_LINE = re.compile(r"^(?:CONFIG_(\w+)=.*|# CONFIG_(\w+) is not set)$")


def fragment_text(kconf, before_path, after_path):
    """The lines of the saved .config (`after_path`) that the user chose, as a fragment in the saved file's order:
    of the symbols whose value differs from `before_path` (a symbol absent there counts as n), those that the
    others do not already give that value (switching SMP on makes NR_CPUS appear with its default: only SMP is the
    user's). `kconf` is the tree's Kconfig."""
    before, after = read_config_values(before_path), read_config_values(after_path)
    lines = {}
    with open(after_path, encoding="latin-1") as f:
        for line in f.read().splitlines():
            m = _LINE.match(line)
            symbol = m and (m.group(1) or m.group(2))
            if symbol and after[symbol] != before.get(symbol, "n"):
                lines[symbol] = line
    chosen = list(lines)
    for symbol in list(lines):
        others = [s for s in chosen if s != symbol]
        if _value_from(kconf, before_path, {s: after[s] for s in others}, symbol) == after[symbol]:
            chosen = others
    return [lines[s] for s in chosen]


def _value_from(kconf, base_path, assignments, symbol):
    """`symbol`'s value with the configuration at `base_path` and `assignments` made in order."""
    kconf.load_config(base_path)
    for name, value in assignments.items():
        if name in kconf.syms:
            kconf.syms[name].set_value(value)
    return kconf.syms[symbol].str_value if symbol in kconf.syms else None


def run_menu(tree, arch, config_path, *, interface=None):
    """Run the menu in this terminal on `config_path` (a copy); returns when the user quits. `interface` replaces
    the command (tests)."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KCONFIG_CONFIG=config_path, KCONFIG_CONFIG_HEADER=HEADER)
    argv = interface or [sys.executable, "-c", _UI, site, tree, arch]
    # The terminal is the user's: stdin, stdout and stderr are passed on as they are.
    return subprocess.run(argv, env=env).returncode


def menuconfig(tree, *, arch, kind, save, fragments, configs_dir, log, interface=None, obj=None):
    """Open the menu on a copy of the .config in `obj` (the tree's object directory; default: the tree) and write
    what the user saved to `save`. Returns the rule problems of the saved configuration (printed through `log`
    too); nothing is written if the user saved nothing."""
    from .errors import MkdumpError
    from .kconfig import audit_saved
    with tempfile.TemporaryDirectory(prefix="mkdump-menuconfig-") as tmp:
        work = os.path.join(tmp, ".config")
        shutil.copyfile(os.path.join(obj or tree, ".config"), work)
        before = os.path.join(tmp, "before.config")
        shutil.copyfile(work, before)
        mtime = os.stat(work).st_mtime_ns
        status = run_menu(tree, arch, work, interface=interface)
        if status:
            raise MkdumpError(f"the configuration menu ended with status {status}; nothing was saved to {save}.")
        if os.stat(work).st_mtime_ns == mtime and filecmp.cmp(work, before, shallow=False):
            log(f"menuconfig: nothing was saved, so {save} was not written.")
            return []
        problems, kconf = audit_saved(tree, arch=arch, kind=kind, fragments=fragments, config_path=work,
                                      configs_dir=configs_dir)
        if kind == "minik":
            lines = fragment_text(kconf, before, work)
            text = (f"# The mini kernel ({arch}) changes made with scons menuconfig; use it with "
                    f"minik_fragment={save}\n" + "".join(line + "\n" for line in lines))
            what = f"{len(lines)} changed option(s) as a fragment"
        else:
            with open(work, encoding="latin-1") as f:
                text = f.read()
            what = "the whole .config"
        write_atomic(save, text)
    use = "minik_fragment" if kind == "minik" else "system_config"
    log(f"menuconfig: saved {what} to {save}; build with {use}={save}")
    if problems:
        log(f"menuconfig: the {kind} kernel's rules are broken by what was saved; the build will refuse it "
            f"until these are fixed:\n" + "\n".join(problems))
    return problems
