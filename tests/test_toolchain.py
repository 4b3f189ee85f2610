"""mkdump.toolchain against fake compilers the tests write, plus one look at the machine's real gcc."""
import json
import os
import re
import shutil
import stat
import textwrap

import pytest

from mkdump import toolchain
from mkdump.errors import MkdumpError

EM_386, EM_X86_64 = 3, 62

# A fake gcc in Python: writes a minimal ELF header for the machine chosen by -m32/-m64 (or its default),
# rejects the flags named in $FAKE_REJECT (by their name before any `=`), fails -m32 when $FAKE_NO_M32 is set,
# logs its argv.
FAKE_GCC = textwrap.dedent("""\
    #!{python}
    import os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(" ".join([os.path.basename(sys.argv[0])] + args) + "\\n")
    if "--version" in args:
        print(os.environ.get("FAKE_VERSION", "gcc (Debian 12.2.0-14) 12.2.0"))
        print("Copyright (C) 2022 Free Software Foundation, Inc.")
        sys.exit(0)
    if "-print-multiarch" in args:
        print("i386-linux-gnu" if "-m32" in args else "x86_64-linux-gnu")
        sys.exit(0)
    for a in args:
        if a.split("=")[0] in os.environ.get("FAKE_REJECT", "").split():
            sys.stderr.write("gcc: error: unrecognized command-line option '%s'\\n" % a)
            sys.exit(1)
    machine = int(os.environ.get("FAKE_DEFAULT_MACHINE", "62"))
    if "-m32" in args:
        if os.environ.get("FAKE_NO_M32"):
            sys.stderr.write("cc1: sorry, unimplemented: 32-bit mode not compiled in\\n")
            sys.exit(1)
        machine = 3
    if "-m64" in args:
        machine = 62
    out = args[args.index("-o") + 1]
    with open(out, "wb") as f:
        f.write(b"\\x7fELF" + bytes([2, 1, 1]) + bytes(11) + machine.to_bytes(2, "little") + bytes(44))
""")

FAKE_LD = textwrap.dedent("""\
    #!/bin/sh
    echo "GNU ld (GNU Binutils for Debian) ${FAKE_LD_VERSION:-2.40}"
""")


def _write_exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fakebin(tmp_path):
    """A PATH holding only a fake gcc and ld, and an env that uses it."""
    import sys
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _write_exe(bindir / "gcc", FAKE_GCC.format(python=sys.executable))
    _write_exe(bindir / "ld", FAKE_LD)
    env = {"PATH": str(bindir), "FAKE_LOG": str(tmp_path / "cc.log")}
    return bindir, env


def _calls(env):
    with open(env["FAKE_LOG"]) as f:
        return f.read().splitlines()


def test_all_flags_accepted_by_a_modern_gcc(fakebin):
    bindir, env = fakebin
    tc = toolchain.detect("x86_64", env=env)
    assert tc.flags == ("-fno-pie", "-fgnu89-inline", "-fno-stack-protector",
                        "-mno-sse", "-mno-mmx", "-mno-sse2", "-mno-3dnow")
    assert tc.rejected_flags == ()
    assert tc.gcc_version == "12.2"
    assert tc.binutils_version == "2.40"
    assert tc.target == "x86_64-linux-gnu"
    assert tc.prefix_map == ("-ffile-prefix-map",)
    assert tc.make_args() == ["ARCH=x86_64", "CC=gcc " + " ".join(tc.flags), "HOSTCC=gcc"]


def test_launcher_and_prefix_maps_go_into_cc_only(fakebin):
    bindir, env = fakebin
    tc = toolchain.detect("x86_64", env=env)
    args = tc.make_args(launcher="/opt/my tools/ccache", prefix_maps=[("/b/x86_64/minik", "minik"), ("/r/m", "m")])
    assert args == ["ARCH=x86_64",
                    "CC='/opt/my tools/ccache' gcc " + " ".join(tc.flags)
                    + " -ffile-prefix-map=/b/x86_64/minik=minik -ffile-prefix-map=/r/m=m",
                    "HOSTCC=gcc"]
    # What the toolchain stamp (and so the manifest) records has neither: both depend on the machine and the
    # build directory, not on what is built.
    recorded = json.dumps(tc.to_dict())
    assert "ccache" not in recorded and "/b/x86_64" not in recorded
    assert tc.to_dict()["prefix_map"] == ["-ffile-prefix-map"]


def test_flags_an_old_gcc_rejects_are_left_out(fakebin):
    bindir, env = fakebin
    env = dict(env, FAKE_REJECT="-fno-pie -fgnu89-inline -fno-stack-protector",
               FAKE_VERSION="gcc (GCC) 3.4.6")
    tc = toolchain.detect("x86_64", env=env)
    assert tc.flags == ("-mno-sse", "-mno-mmx", "-mno-sse2", "-mno-3dnow")
    assert tc.rejected_flags == ("-fno-pie", "-fgnu89-inline", "-fno-stack-protector")
    assert tc.gcc_version == "3.4"
    cc_arg = [a for a in tc.make_args() if a.startswith("CC=")][0]
    assert "-fno-pie" not in cc_arg and "-mno-sse" in cc_arg
    # Each flag is probed on its own, as cc-option does, with -Werror so a mere warning also rejects.
    probes = [c for c in _calls(env) if "-Werror" in c and "prefix-map" not in c]
    assert len(probes) == 7
    assert all(c.count("-f") + c.count("-mno-") == 1 for c in probes)


@pytest.mark.parametrize("rejects, chosen", [
    ("-ffile-prefix-map", ("-fdebug-prefix-map",)),              # gcc 4.3 to 7
    ("-ffile-prefix-map -fdebug-prefix-map", ()),                # older: builds without a map
])
def test_prefix_map_falls_back_for_an_old_gcc(fakebin, rejects, chosen):
    bindir, env = fakebin
    tc = toolchain.detect("x86_64", env=dict(env, FAKE_REJECT=rejects))
    assert tc.prefix_map == chosen
    cc_arg = tc.make_args(prefix_maps=[("/b/minik", "minik")])[1]
    assert cc_arg.endswith("-mno-3dnow" + "".join(f" {o}=/b/minik=minik" for o in chosen))
    # Probed with a mapping, as gcc refuses these options without one.
    assert [c for c in _calls(env) if re.search(r" -Werror -ffile-prefix-map=/\S+=\. -c ", c)]


def test_i386_uses_m32_multilib_first(fakebin):
    bindir, env = fakebin
    tc = toolchain.detect("i386", env=env)
    assert tc.cc == ("gcc", "-m32")
    assert tc.cross_compile == ""
    assert tc.target == "i386-linux-gnu"
    assert tc.make_args()[0] == "ARCH=i386"
    assert tc.make_args()[1].startswith("CC=gcc -m32 -fno-pie ")


def test_i386_without_multilib_names_the_packages(fakebin):
    bindir, env = fakebin
    env = dict(env, FAKE_NO_M32="1")
    with pytest.raises(toolchain.ToolchainError) as e:
        toolchain.detect("i386", env=env)
    msg = str(e.value)
    assert isinstance(e.value, MkdumpError)
    assert "gcc-multilib" in msg and "gcc-i686-linux-gnu" in msg
    assert "32-bit mode not compiled in" in msg
    assert "i686-linux-gnu-gcc is not on PATH" in msg


def test_i386_falls_back_to_the_cross_compiler(fakebin):
    bindir, env = fakebin
    # The cross compiler builds i386 objects by default; the native one has no 32-bit support.
    cross = bindir / "i686-linux-gnu-gcc"
    _write_exe(cross, "#!/bin/sh\nFAKE_NO_M32= FAKE_DEFAULT_MACHINE=3 exec gcc \"$@\"\n")
    _write_exe(bindir / "i686-linux-gnu-ld", FAKE_LD)
    env = dict(env, FAKE_NO_M32="1")
    tc = toolchain.detect("i386", env=env)
    assert tc.cc == ("i686-linux-gnu-gcc",)
    assert tc.cross_compile == "i686-linux-gnu-"
    assert "CROSS_COMPILE=i686-linux-gnu-" in tc.make_args()
    assert tc.make_args()[2].startswith("CC=i686-linux-gnu-gcc -fno-pie")


def test_user_cc_gets_the_arch_switch_only_when_needed(fakebin):
    bindir, env = fakebin
    tc = toolchain.detect("i386", cc="gcc", env=env)
    assert tc.cc == ("gcc", "-m32")
    tc = toolchain.detect("x86_64", cc=["gcc"], env=env)
    assert tc.cc == ("gcc",)


def test_missing_compiler(fakebin):
    bindir, env = fakebin
    with pytest.raises(MkdumpError, match=r"gcc-4\.9 is not on PATH.*cc=/cross_compile="):
        toolchain.detect("x86_64", cc="gcc-4.9", env=env)
    os.unlink(bindir / "gcc")
    with pytest.raises(MkdumpError, match=r"install the Debian package gcc or gcc-x86-64-linux-gnu"):
        toolchain.detect("x86_64", env=env)


def test_missing_linker_names_binutils(fakebin):
    bindir, env = fakebin
    os.unlink(bindir / "ld")
    with pytest.raises(MkdumpError, match=r"the linker ld was not found.*install binutils"):
        toolchain.detect("x86_64", env=env)


def test_unknown_arch():
    with pytest.raises(MkdumpError, match=r"arch 'arm64' is not described.*i386, x86_64"):
        toolchain.detect("arm64")


@pytest.mark.parametrize("text,expected", [
    ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0\nCopyright", "12.2"),
    ("gcc (GCC) 3.4.6\n", "3.4"),
    ("i686-linux-gnu-gcc-4.9 (Debian 4.9.2-10) 4.9.2", "4.9"),
    ("GNU ld (GNU Binutils for Debian) 2.40\n", "2.40"),
    ("GNU ld version 2.15.92.0.2 20040927\n", "2.15"),
    ("no digits here", None),
    ("", None),
])
def test_parse_version(text, expected):
    assert toolchain.parse_version(text) == expected


def test_to_dict_is_json(fakebin):
    bindir, env = fakebin
    d = toolchain.detect("i386", env=env).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["gcc_version"] == "12.2" and d["cc"] == ["gcc", "-m32"]
    assert d["make_args"][0] == "ARCH=i386"


def test_from_dict_round_trips_through_json(fakebin):
    bindir, env = fakebin
    tc = toolchain.detect("x86_64", env=env)
    again = toolchain.Toolchain.from_dict(json.loads(json.dumps(tc.to_dict())))
    assert again == tc
    assert again.make_args() == tc.make_args()


def test_make_args_quote_words_for_the_shell(fakebin, tmp_path):
    bindir, env = fakebin
    spaced = tmp_path / "my tools"
    spaced.mkdir()
    shutil.copy(bindir / "gcc", spaced / "gcc")
    tc = toolchain.detect("x86_64", cc=[str(spaced / "gcc")], env=env)
    assert f"CC='{spaced / 'gcc'}' -fno-pie" in " ".join(tc.make_args())


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")
@pytest.mark.parametrize("arch,machine_target", [("x86_64", "x86_64-linux-gnu"), ("i386", "i386-linux-gnu")])
def test_real_gcc(arch, machine_target):
    # No skip on ToolchainError: gcc-multilib is in packages.debian, so a failure here is a detection bug.
    tc = toolchain.detect(arch)
    assert tc.target == machine_target or tc.cross_compile
    assert "-fno-pie" in tc.flags or int(tc.gcc_version.split(".")[0]) < 6
    assert all(f in tc.flags + tc.rejected_flags for f in ("-mno-sse", "-fgnu89-inline"))
