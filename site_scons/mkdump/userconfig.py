"""A user's own .config for the system kernel: which kernel series and arch it is for, told before anything uses it.

The mkdump README builds the system kernel "with the same configuration as the usual system", so the file is
usually a distribution's (RHEL4, Fedora Core 3, SUSE) or a site's, made from 2.6.9 with patches on top. Such a file
is taken; one from another kernel series or another arch would configure something the user did not ask for, so it
is refused with one sentence that says what it is.
"""
import re
from dataclasses import dataclass

from mkdump import arch as arches
from mkdump import tomlfile
from mkdump.errors import ConfigError

# 2.6's conf writes "# Linux kernel version: 2.6.9-34.ELsmp"; from 2.6.2x on it writes "# Linux/<arch> 3.10.0
# Kernel Configuration". 2.4's "make config" wrote neither.
_VERSION_RE = re.compile(r"^# Linux kernel version: (\S+)\s*$")
_NEWER_RE = re.compile(r"^# Linux/(\S+) (\S+) Kernel Configuration\s*$")
_ASSIGN_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
# 2.6.9 itself, or a distribution's 2.6.9 ("2.6.9-34.ELsmp", "2.6.9-1.667", "2.6.9-udm1-hpc2n-p4-smp").
_SERIES_RE = re.compile(r"^2\.6\.9(?![0-9])")
# A file without a version line is judged by how much of it this tree knows: a 2.6.9 distribution file leaves out a
# few percent (RHEL4: 79 of 1,212 settings), a 2.4 file far more.
MAX_UNKNOWN_SHARE = 0.25


@dataclass(frozen=True)
class Header:
    release: str | None     # the kernel release the file says it was made for
    arch: str | None        # the arch its settings say: an arch file's [config] says, else a marker of rules.toml


def _arch_of(values, rules_path):
    """The arch mkdump builds whose file's [config] says matches, else the first other arch whose marker symbol
    (rules.toml [[config_arch]]) is set to y."""
    ours = next((a.name for a in arches.load_all() if a.says_config(values)), None)
    if ours is not None:
        return ours
    markers = tomlfile.load(rules_path, "the configuration rules", error=ConfigError,
                            fix="restore it from the repository's configs/ directory").get("config_arch", [])
    return next((m["arch"] for m in markers if values.get(m["symbol"]) == "y"), None)


def read_header(path, rules_path):
    """The release and arch a .config says it is for; ConfigError when it is no .config at all."""
    try:
        with open(path, encoding="latin-1") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the system_config file {path}: {e.strerror}; check the path.") from None
    values = {m.group(1): m.group(2) for line in lines if (m := _ASSIGN_RE.match(line))}
    if not values:
        raise ConfigError(f"the system_config file {path} has no CONFIG_ line, so it is not a kernel .config; pass "
                          "the .config of your system's Linux 2.6.9 kernel (often /boot/config-<release>).")
    release = None
    for line in lines[:10]:
        m = _VERSION_RE.match(line)
        if m:
            release = m.group(1)
        m = _NEWER_RE.match(line)
        if m:
            release = m.group(2)
    return Header(release, _arch_of(values, rules_path))


def check_header(path, header, arch):
    """Refuse a file made for another kernel series or another arch, in one sentence."""
    if header.release is not None and not _SERIES_RE.match(header.release):
        raise ConfigError(f"the system_config file {path} is the configuration of Linux {header.release}, not of "
                          "2.6.9 (its header says so); mkdump patches 2.6.9 only, so pass the .config of a 2.6.9 "
                          "kernel (a distribution's 2.6.9-based one is fine).")
    if header.arch is not None and header.arch != arch:
        raise ConfigError(f"the system_config file {path} is an {header.arch} configuration, not an {arch} one; "
                          f"pass it with arch={header.arch}, or pass your {arch} system's .config.")


def check_unknown_share(path, header, unknown, assigned):
    """A file with no version line whose settings this tree mostly does not know is from another series."""
    if header.release is None and assigned and unknown / assigned > MAX_UNKNOWN_SHARE:
        raise ConfigError(f"the system_config file {path} is not a Linux 2.6.9 configuration: it has no 'Linux "
                          f"kernel version' line and {unknown} of its {assigned} settings name symbols 2.6.9 does "
                          "not define (a 2.4 file looks like this); pass the .config of a 2.6.9 kernel.")
