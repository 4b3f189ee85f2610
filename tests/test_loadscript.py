"""The load script: value encoding and refusals in Python, and the generated sh script run against a fake
/proc/mkexec (MKDUMP_PROC) to see what it writes and what it refuses."""
import os
import shutil
import stat
import subprocess

import pytest

from mkdump import loadscript
from mkdump.errors import MkdumpError

ENTRIES = ("mem", "dumpdev", "parameter", "path", "stats")
SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)]


# --- Python side -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, major, minor", [
    ("/dev/hda", 3, 0), ("/dev/hda8", 3, 8), ("hdb", 3, 64), ("/dev/hdc1", 22, 1), ("/dev/hdd63", 22, 127),
    ("/dev/hde", 33, 0), ("/dev/hdt2", 91, 66),
    ("/dev/sda", 8, 0), ("/dev/sdb2", 8, 18), ("sdp15", 8, 255), ("/dev/sdq", 65, 0), ("/dev/sdz1", 65, 145),
    ("/dev/sdaa", 65, 160), ("/dev/sdiv15", 135, 255),
    ("3:8", 3, 8), ("8:18", 8, 18), ("4095:1048575", 4095, 1048575), ("1:0", 1, 0),
    ("0x300008", 3, 8), ("0X800012", 8, 18), ("0x00000000800012", 8, 18), ("0xffffffff", 4095, 1048575),
])
def test_encode_dump_dev_forms(value, major, minor):
    assert loadscript.encode_dump_dev(value) == major << 20 | minor


def test_encode_matches_sources_md_examples():
    assert loadscript.format_dump_dev(loadscript.encode_dump_dev("/dev/hda8")) == "0x300008"
    assert loadscript.format_dump_dev(loadscript.encode_dump_dev("/dev/sdb2")) == "0x800012"


@pytest.mark.parametrize("value, match", [
    ("", "not a device name known here"),
    ("0x", "not a device name known here"),
    ("0xg1", "not a device name known here"),
    ("0x100000000", "more than 32 bits"),
    ("0x5", "major 0"),
    ("0:5", "major 0"),
    ("4096:0", "major 4096 does not fit in 12 bits"),
    ("3:1048576", "minor 1048576 does not fit in 20 bits"),
    ("03:8", "without leading zeros"),
    ("3:08", "without leading zeros"),
    ("3:-1", "without leading zeros"),
    ("3:", "without leading zeros"),
    ("/dev/hdu", "not a device name known here"),
    ("/dev/hda64", "partitions 1-63"),
    ("/dev/sda16", "partitions 1-15"),
    ("/dev/sdiw", "sda to sdiv only"),
    ("/dev/sdb02", "not a device name known here"),
    ("/dev/sda0", "not a device name known here"),
    ("/dev/md0", "not a device name known here"),
    ("/dev/cciss/c0d0p1", "not a device name known here"),
    (0x800012, "must be a string"),
])
def test_encode_dump_dev_refusals(value, match):
    with pytest.raises(MkdumpError, match=match):
        loadscript.encode_dump_dev(value)


@pytest.mark.parametrize("arch, mb, written", [("i386", 4, 4), ("i386", 8, 8), ("x86_64", 4, 3), ("x86_64", 8, 7),
                                               ("x86_64", 64, 63)])
def test_mem_value(arch, mb, written):
    assert loadscript.mem_value(arch, mb) == written


@pytest.mark.parametrize("mb, match", [(0, "multiple of 4"), (2, "multiple of 4"), (6, "multiple of 4"),
                                       (-4, "multiple of 4"), (True, "whole number"), (8.0, "whole number"),
                                       ("8", "whole number"), (1 << 20, "more than 1 TiB")])
def test_mem_value_refusals(mb, match):
    with pytest.raises(MkdumpError, match=match):
        loadscript.mem_value("x86_64", mb)


def test_unknown_arch_refused():
    with pytest.raises(MkdumpError, match="'ia64' has no mkexec load procedure"):
        loadscript.mem_value("ia64", 8)
    with pytest.raises(MkdumpError, match="'ia64'"):
        loadscript.script_name("ia64")


def render(**kw):
    args = dict(arch="x86_64", mem_mb=8, dump_dev="/dev/sdb2", parameters="console=ttyS0,115200",
                vmlinux_bin_path="/usr/share/mkdump/x86_64/vmlinux.bin",
                module_path="/lib/modules/2.6.9/extra/mkexec.ko")
    args.update(kw)
    return loadscript.render_load_script(**args)


def test_render_is_deterministic_and_bakes_validated_values():
    text = render()
    assert text == render()
    assert text.startswith("#!/bin/sh\n# mkdump-load-x86_64:")
    assert "\nMEM=8\nDUMP_DEV='0x800012'\nPARAM='console=ttyS0,115200'\n" in text
    assert "\nMEM_BIAS=1\n" in text and "\nMEM_BIAS=0\n" in render(arch="i386")


def test_render_joins_parameter_lists():
    assert "\nPARAM='console=ttyS0 panic=1'\n" in render(parameters=["console=ttyS0", "panic=1"])
    assert "\nPARAM=''\n" in render(parameters=None)


@pytest.mark.parametrize("kw, match", [
    (dict(mem_mb=6), "multiple of 4"),
    (dict(dump_dev="/dev/md0"), "not a device name known here"),
    (dict(parameters="a\nb"), "newline"),
    (dict(parameters="x" * 256), "256 bytes; 2.6.9's command line holds at most 255"),
    (dict(parameters=["a", 1]), "must be strings"),
    (dict(vmlinux_bin_path="share/vmlinux.bin"), "vmlinux.bin path 'share/vmlinux.bin' must be an absolute path"),
    (dict(module_path="/lib/x\n.ko"), "mkexec.ko path"),
    (dict(arch="arm"), "'arm' has no mkexec load procedure"),
])
def test_render_refusals(kw, match):
    with pytest.raises(MkdumpError, match=match):
        render(**kw)


# --- the generated script, run ----------------------------------------------------------------------------------

@pytest.fixture
def target(tmp_path):
    """A fake target: /proc root with a loaded mkexec, an image and a module file."""
    proc = tmp_path / "proc"
    (proc / "mkexec").mkdir(parents=True)
    for entry in ENTRIES:
        (proc / "mkexec" / entry).write_text("")
    image = tmp_path / "vmlinux.bin"
    image.write_bytes(b"\0" * 16)
    module = tmp_path / "mkexec.ko"
    module.write_bytes(b"\x7fELF")
    return tmp_path


def script(target, **kw):
    kw.setdefault("vmlinux_bin_path", str(target / "vmlinux.bin"))
    kw.setdefault("module_path", str(target / "mkexec.ko"))
    path = target / "mkdump-load"
    path.write_text(render(**kw))
    return path


def run(shell, path, *args, target, path_prepend=None):
    env = dict(os.environ, MKDUMP_PROC=str(target / "proc"))
    if path_prepend:
        env["PATH"] = f"{path_prepend}:{env['PATH']}"
    argv = [shell, "sh", str(path), *args] if shell == "busybox" else [shell, str(path), *args]
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def written(target):
    return {e: (target / "proc" / "mkexec" / e).read_text() for e in ENTRIES
            if (target / "proc" / "mkexec" / e).is_file()}


@pytest.mark.parametrize("shell", SHELLS)
def test_script_writes_defaults(shell, target):
    done = run(shell, script(target), target=target)
    assert done.returncode == 0, done.stderr
    assert written(target) == {"mem": "7\n", "dumpdev": "0x800012\n", "parameter": "console=ttyS0,115200\n",
                               "path": f"{target / 'vmlinux.bin'}\n", "stats": "1\n"}
    assert "mkexec is loaded already" in done.stdout
    assert "loaded (8 MB, dump device 0x800012)" in done.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_script_i386_writes_mem_as_is_and_skips_empty_parameter(shell, target):
    done = run(shell, script(target, arch="i386", parameters=""), target=target)
    assert done.returncode == 0, done.stderr
    got = written(target)
    assert got["mem"] == "8\n"
    assert got["parameter"] == ""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("args, entry, value", [
    (["--mem", "12"], "mem", "11\n"),
    (["--mem=4"], "mem", "3\n"),
    (["--dump-dev", "3:8"], "dumpdev", "0x300008\n"),
    (["--dump-dev=0X800012"], "dumpdev", "0x800012\n"),
    (["--dump-dev", "0x0000000300008"], "dumpdev", "0x300008\n"),
    (["--dump-dev", "4095:1048575"], "dumpdev", "0xffffffff\n"),
    (["--param", "root=/dev/hda1 it's"], "parameter", "root=/dev/hda1 it's\n"),
    (["--param="], "parameter", ""),
])
def test_script_overrides(shell, target, args, entry, value):
    done = run(shell, script(target), *args, target=target)
    assert done.returncode == 0, done.stderr
    assert written(target)[entry] == value


@pytest.mark.parametrize("shell", SHELLS)
def test_script_path_override(shell, target):
    other = target / "other.bin"
    other.write_bytes(b"x")
    done = run(shell, script(target), "--path", str(other), target=target)
    assert done.returncode == 0, done.stderr
    assert written(target)["path"] == f"{other}\n"


@pytest.fixture
def block_node(tmp_path):
    node = tmp_path / "sdb2"
    try:
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(8, 18))
    except OSError as e:
        pytest.skip(f"cannot make a block device node here to stand for /dev/sdb2 ({e})")
    return node


@pytest.mark.parametrize("shell", SHELLS)
def test_script_reads_device_numbers_of_a_node(shell, target, block_node):
    done = run(shell, script(target, dump_dev="3:8"), "--dump-dev", str(block_node), target=target)
    assert done.returncode == 0, done.stderr
    assert written(target)["dumpdev"] == "0x800012\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("args, message", [
    (["--mem", "6"], "--mem 6: the mini kernel memory must be a multiple of 4 MB and at least 4"),
    (["--mem", "0"], "--mem 0: the mini kernel memory must be a multiple of 4"),
    (["--mem", "08"], "--mem '08' is not a number of MB"),
    (["--mem", "8M"], "--mem '8M' is not a number of MB"),
    (["--mem", ""], "--mem '' is not a number of MB"),
    (["--mem", "1048576"], "more than 1 TiB"),
    (["--mem"], "--mem needs a value"),
    (["--dump-dev", "0:1"], "major 0"),
    (["--dump-dev", "0x5"], "major 0"),
    (["--dump-dev", "4096:0"], "major 4096 does not fit in 12 bits"),
    (["--dump-dev", "3:1048576"], "minor 1048576 does not fit in 20 bits"),
    (["--dump-dev", "0x100000000"], "more than 32 bits"),
    (["--dump-dev", "0xzz"], "not a hexadecimal number"),
    (["--dump-dev", "03:8"], "without leading zeros"),
    (["--dump-dev", "3:x"], "without leading zeros"),
    (["--dump-dev", "/nonexistent/sdz9"], "/nonexistent/sdz9 is not a block device here"),
    (["--dump-dev", "/dev/null"], "/dev/null is not a block device here"),
    (["--param", "a\nb"], "--param holds a newline"),
    (["--param", "x" * 256], "longer than 255 bytes"),
    (["--path", "vmlinux.bin"], "must be an absolute path"),
    (["--path", "/nonexistent/vmlinux.bin"], "no readable mini kernel image there"),
    (["--bogus"], "unknown argument '--bogus'"),
])
def test_script_refusals_write_nothing(shell, target, args, message):
    done = run(shell, script(target), *args, target=target)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert all(v == "" for v in written(target).values())


@pytest.mark.parametrize("shell", SHELLS)
def test_script_and_python_agree(shell, target):
    """Every numeric form: the script accepts exactly what Python accepts and writes the same number."""
    values = ["0x300008", "0x1", "0x100000", "0xFFFFF", "0xfffff00000", "0x0fffffffff", "1:1048575", "4095:0",
              "4096:1", "0:0", "10:010", "65:160", "0x", "7:", ":7"]
    path = script(target)
    for value in values:
        try:
            expected = loadscript.format_dump_dev(loadscript.encode_dump_dev(value))
        except MkdumpError:
            expected = None
        done = run(shell, path, "--dry-run", "--dump-dev", value, target=target)
        if expected is None:
            assert done.returncode == 2, (value, done.stdout)
        else:
            assert done.returncode == 0, (value, done.stderr)
            assert f'echo "{expected}" > {target / "proc" / "mkexec" / "dumpdev"}' in done.stdout, value


@pytest.mark.parametrize("shell", SHELLS)
def test_script_dry_run_prints_and_writes_nothing(shell, target):
    shutil.rmtree(target / "proc" / "mkexec")
    done = run(shell, script(target), "--dry-run", "--mem", "16", target=target)
    assert done.returncode == 0, done.stderr
    proc = target / "proc" / "mkexec"
    assert done.stdout.splitlines() == [
        f"insmod {target / 'mkexec.ko'}",
        f'echo "15" > {proc}/mem',
        f'echo "0x800012" > {proc}/dumpdev',
        f'echo "console=ttyS0,115200" > {proc}/parameter',
        f'echo "{target / "vmlinux.bin"}" > {proc}/path',
        f'echo "1" > {proc}/stats',
    ]
    assert not proc.exists()


FAKE_INSMOD = """#!/bin/sh
printf '%s\\n' "$*" > "$MKDUMP_PROC/insmod-args"
{body}
"""
MAKES_ENTRIES = 'mkdir "$MKDUMP_PROC/mkexec" && for e in mem dumpdev parameter path stats; do : > ' \
                '"$MKDUMP_PROC/mkexec/$e"; done'


def fake_insmod(target, body):
    bindir = target / "bin"
    bindir.mkdir()
    insmod = bindir / "insmod"
    insmod.write_text(FAKE_INSMOD.format(body=body))
    insmod.chmod(0o755)
    return bindir


@pytest.mark.parametrize("shell", SHELLS)
def test_script_runs_insmod_when_not_loaded(shell, target):
    shutil.rmtree(target / "proc" / "mkexec")
    done = run(shell, script(target), target=target, path_prepend=fake_insmod(target, MAKES_ENTRIES))
    assert done.returncode == 0, done.stderr
    assert (target / "proc" / "insmod-args").read_text() == f"{target / 'mkexec.ko'}\n"
    assert written(target)["stats"] == "1\n"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("body, message", [
    ("exit 1", "failed"),
    ("exit 0", "succeeded but"),
])
def test_script_insmod_failures(shell, target, body, message):
    shutil.rmtree(target / "proc" / "mkexec")
    done = run(shell, script(target), target=target, path_prepend=fake_insmod(target, body))
    assert done.returncode == 2
    assert message in done.stderr and "insmod" in done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_script_refuses_missing_module_file(shell, target):
    shutil.rmtree(target / "proc" / "mkexec")
    done = run(shell, script(target), "--module", str(target / "nope.ko"), target=target)
    assert done.returncode == 2
    assert f"--module {target / 'nope.ko'}: no such file" in done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_script_reports_missing_or_failing_entries(shell, target):
    (target / "proc" / "mkexec" / "path").unlink()
    done = run(shell, script(target), target=target)
    assert done.returncode == 2
    assert f"{target / 'proc' / 'mkexec' / 'path'} is missing" in done.stderr
    (target / "proc" / "mkexec" / "path").write_text("")
    (target / "proc" / "mkexec" / "stats").unlink()
    (target / "proc" / "mkexec" / "stats").mkdir()
    done = run(shell, script(target), target=target)
    assert done.returncode == 2
    assert f"writing '1' to {target / 'proc' / 'mkexec' / 'stats'} failed" in done.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_script_without_baked_dump_dev_needs_the_option(shell, target):
    path = script(target, dump_dev=None)
    assert "\nDUMP_DEV=''\n" in path.read_text()
    done = run(shell, path, target=target)
    assert done.returncode == 2
    assert "no dump device was set when this script was built; give --dump-dev" in done.stderr
    assert all(v == "" for v in written(target).values())
    done = run(shell, path, "--dump-dev", "22:1", target=target)
    assert done.returncode == 0, done.stderr
    assert written(target)["dumpdev"] == "0x1600001\n"
