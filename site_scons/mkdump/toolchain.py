"""Find a compiler that builds Linux 2.6.9 for an arch, and the flags today's gcc needs for it.

The per-arch knowledge (compiler candidates, flags and why) lives in kernel/toolchain.toml; this module only
runs the compiler to learn what it is and what it accepts. Each candidate flag is probed the way kbuild's
cc-option does (compile an empty file with it), so an old gcc given with cc= or cross_compile= is not handed a
flag it does not know.
"""
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from mkdump import tomlfile
from mkdump.errors import MkdumpError

DATA_FILE = Path(__file__).resolve().parents[2] / "kernel" / "toolchain.toml"

# A freestanding translation unit: it compiles without any libc headers, as kernel code does.
_PROBE_SOURCE = "int mkdump_probe(int x) { return x + 1; }\n"
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.\d+)*")


class ToolchainError(MkdumpError):
    """The compiler or binutils cannot build the kernel for the requested arch."""


@dataclasses.dataclass(frozen=True)
class Toolchain:
    arch: str
    cc: tuple            # compiler command without the probed flags, e.g. ("gcc", "-m32")
    cross_compile: str   # CROSS_COMPILE prefix, "" for the host's binutils
    gcc_version: str     # "12.2": what 2.6.9 puts into vermagic as gcc-X.Y
    gcc_version_line: str
    binutils_version: str
    target: str          # e.g. "i386-linux-gnu"
    flags: tuple         # accepted compatibility flags, in toolchain.toml order
    rejected_flags: tuple
    hostcc: str
    makevars: tuple      # ((name, value), ...) from toolchain.toml
    prefix_map: tuple    # the prefix-map options this compiler accepts (toolchain.toml's first working choice)

    def cc_command(self):
        return list(self.cc) + list(self.flags)

    def prefix_map_args(self, maps):
        """`<option>=<dir>=<name>` for each (dir, name) in maps: the compiler records dir as name."""
        return [f"{option}={old}={new}" for old, new in maps for option in self.prefix_map]

    def make_args(self, *, launcher=None, prefix_maps=()):
        """make's command-line variables: ARCH, CC with the flags, HOSTCC, CROSS_COMPILE when used.

        launcher (ccache, distcc, a path, ...) goes in front of the kernel compiler only: host programs are few
        and built with HOSTCC. prefix_maps are (directory, stable name) pairs. Neither is part of the recorded
        toolchain (to_dict): both depend on the machine and the build directory, not on what is built.
        """
        args = [f"{name}={value}" for name, value in self.makevars]
        if self.cross_compile:
            args.append(f"CROSS_COMPILE={self.cross_compile}")
        cc = ([launcher] if launcher else []) + self.cc_command() + self.prefix_map_args(prefix_maps)
        # kbuild expands $(CC) inside shell commands, so quote each word for the shell.
        args.append("CC=" + shlex.join(cc))
        args.append(f"HOSTCC={self.hostcc}")
        return args

    def to_dict(self):
        return {
            "arch": self.arch,
            "cc": list(self.cc),
            "cross_compile": self.cross_compile,
            "gcc_version": self.gcc_version,
            "gcc_version_line": self.gcc_version_line,
            "binutils_version": self.binutils_version,
            "target": self.target,
            "flags": list(self.flags),
            "rejected_flags": list(self.rejected_flags),
            "hostcc": self.hostcc,
            "makevars": [list(kv) for kv in self.makevars],
            "prefix_map": list(self.prefix_map),
            "make_args": self.make_args(),
        }

    @classmethod
    def from_dict(cls, data):
        """The inverse of to_dict: later stages rebuild the toolchain the detection stage recorded."""
        return cls(arch=data["arch"], cc=tuple(data["cc"]), cross_compile=data["cross_compile"],
                   gcc_version=data["gcc_version"], gcc_version_line=data["gcc_version_line"],
                   binutils_version=data["binutils_version"], target=data["target"], flags=tuple(data["flags"]),
                   rejected_flags=tuple(data["rejected_flags"]), hostcc=data["hostcc"],
                   makevars=tuple(tuple(kv) for kv in data["makevars"]),
                   prefix_map=tuple(data["prefix_map"]))


def load_arch_data(arch, data_file=DATA_FILE):
    data = tomlfile.load(data_file, "the toolchain data", error=ToolchainError, fix="restore kernel/toolchain.toml")
    if arch not in data:
        raise ToolchainError(f"arch {arch!r} is not described in {data_file}; choose one of: "
                             f"{', '.join(sorted(data))}.")
    return data[arch]


def parse_version(text):
    """'X.Y' from the first line of `gcc --version` / `ld --version` (the last dotted number on it)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    # Whole words only: "12.2.0-14+deb12u1)" is a package revision, "2.15.92.0.2" an old binutils version.
    for word in reversed(first.split()):
        m = _VERSION_RE.fullmatch(word)
        if m:
            return f"{m.group(1)}.{m.group(2)}"
    return None


def _run(argv, env, cwd=None):
    try:
        return subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace")
    except OSError as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


def _elf_machine(path):
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


class _Prober:
    """Compiles the probe source with a given command in one scratch directory."""

    def __init__(self, env, workdir):
        self.env = env
        self.src = os.path.join(workdir, "probe.c")
        self.obj = os.path.join(workdir, "probe.o")
        with open(self.src, "w") as f:
            f.write(_PROBE_SOURCE)

    def compile(self, cc):
        if os.path.exists(self.obj):
            os.unlink(self.obj)
        proc = _run(list(cc) + ["-c", "-o", self.obj, self.src], self.env)
        return proc, (_elf_machine(self.obj) if proc.returncode == 0 else None)

    def accepts(self, cc, flag):
        # kbuild's cc-option: the flag is kept if the compiler builds an empty-ish file with it. -Werror makes
        # a compiler that only warns about an unknown option count as rejecting it.
        proc, _ = self.compile(list(cc) + ["-Werror", flag])
        return proc.returncode == 0


def _which(cmd, env):
    return shutil.which(cmd, path=env.get("PATH", os.defpath))


def _candidates(data, cc, cross_compile):
    """(cc list, cross prefix, package) to try, in order."""
    if cc is not None:
        words = shlex.split(cc) if isinstance(cc, str) else list(cc)
        if not words:
            raise ToolchainError("cc= is empty; name a compiler command such as cc=gcc-12, or leave it unset.")
        return [(words, cross_compile or "", None)]
    if cross_compile is not None:
        return [([cross_compile + "gcc"], cross_compile, None)]
    out = []
    for c in data["compilers"]:
        prefix = c.get("cross_compile", "")
        out.append((list(c["cc"]) if "cc" in c else [prefix + "gcc"], prefix, c["package"]))
    return out


def _try_compiler(prober, words, data, env):
    """The working command for this compiler (adding the arch's -m32/-m64 if needed), or a reason."""
    if _which(words[0], env) is None:
        return None, f"{words[0]} is not on PATH"
    proc, machine = prober.compile(words)
    if machine == data["elf_machine"]:
        return words, None
    if proc.returncode == 0:
        # A native compiler given for the other x86 arch: the arch switch may fix it.
        with_arch = words + [f for f in data.get("arch_cflags", []) if f not in words]
        proc, machine = prober.compile(with_arch)
        if machine == data["elf_machine"]:
            return with_arch, None
    err = (proc.stderr or proc.stdout).strip().splitlines()
    detail = err[-1] if err else f"it produced objects for ELF machine {machine}"
    return None, f"{shlex.join(words)} cannot build objects for this arch ({detail})"


def detect(arch, *, cc=None, cross_compile=None, env=None, data_file=DATA_FILE):
    """Find and describe the toolchain for `arch` ("x86_64" or "i386").

    cc: a compiler command (string or list), e.g. "gcc-4.9"; cross_compile: a CROSS_COMPILE prefix such as
    "i686-linux-gnu-". Without either, the compilers listed in toolchain.toml are tried in order.
    Raises ToolchainError (a MkdumpError) naming the Debian package to install when nothing works.
    """
    env = dict(os.environ if env is None else env)
    data = load_arch_data(arch, data_file)
    with tempfile.TemporaryDirectory(prefix="mkdump-cc-") as tmp:
        prober = _Prober(env, tmp)
        reasons, packages = [], []
        for words, prefix, package in _candidates(data, cc, cross_compile):
            command, reason = _try_compiler(prober, words, data, env)
            if command is not None:
                break
            reasons.append(reason)
            if package:
                packages.append(package)
        else:
            if packages:
                advice = "install the Debian package " + " or ".join(packages)
            else:
                advice = "check the cc=/cross_compile= setting or leave it unset to use the default compiler"
            raise ToolchainError(f"no compiler can build the {arch} kernel ({'; '.join(reasons)}): {advice}.")
        flags, rejected = [], []
        for entry in data["flags"]:
            (flags if prober.accepts(command, entry["flag"]) else rejected).append(entry["flag"])
        # These options are meaningless without a value (gcc refuses the bare name): probe a real mapping.
        prefix_map = next((tuple(choice) for choice in data["prefix_maps"]
                           if all(prober.accepts(command, f"{option}={tmp}=.") for option in choice)), ())

    version_proc = _run(command[:1] + ["--version"], env)
    gcc_version_line = version_proc.stdout.strip().splitlines()[0] if version_proc.stdout.strip() else ""
    gcc_version = parse_version(version_proc.stdout)
    if gcc_version is None:
        raise ToolchainError(f"{command[0]} --version printed no version number; cc= must name a gcc.")

    ld = prefix + "ld"
    ld_proc = _run([ld, "--version"], env)
    binutils_version = parse_version(ld_proc.stdout) if ld_proc.returncode == 0 else None
    if binutils_version is None:
        raise ToolchainError(f"the linker {ld} was not found or printed no version; install binutils"
                             + (f" for {prefix.rstrip('-')}" if prefix else "") + ".")

    hostcc = data["hostcc"]
    if _which(hostcc, env) is None:
        raise ToolchainError(f"the host compiler {hostcc} is not on PATH; install the Debian package gcc.")

    target_proc = _run(command + ["-print-multiarch"], env)
    target = target_proc.stdout.strip()
    if target_proc.returncode != 0 or not target:
        target = _run(command + ["-dumpmachine"], env).stdout.strip()

    return Toolchain(
        arch=arch, cc=tuple(command), cross_compile=prefix, gcc_version=gcc_version,
        gcc_version_line=gcc_version_line, binutils_version=binutils_version, target=target,
        flags=tuple(flags), rejected_flags=tuple(rejected), hostcc=hostcc,
        makevars=tuple(sorted(data.get("makevars", {}).items())), prefix_map=prefix_map,
    )
