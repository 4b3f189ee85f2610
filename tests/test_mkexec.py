"""mkexec archive handling: the stand-in archive in each compression, the README layout check, and build_module()
driving make against a fake kernel tree whose Makefile records what it was given."""
import dataclasses
import os
import signal

import pytest

from mkdump import mkexec, runner, toolchain, unpack
from mkdump.errors import Interrupted, MkdumpError
from support import standin_mkexec

# What build() hands build_module: a detected toolchain as its stamp records it.
TOOLCHAIN = toolchain.Toolchain(
    arch="x86_64", cc=("gcc",), cross_compile="", gcc_version="12.2", gcc_version_line="gcc 12.2.0",
    binutils_version="2.40", target="x86_64-linux-gnu", flags=("-fno-pie", "-fgnu89-inline"), rejected_flags=(),
    hostcc="gcc", makevars=(("ARCH", "x86_64"),), prefix_map=("-ffile-prefix-map",))


def quiet(_msg):
    pass


@pytest.fixture
def patch_text(tmp_path):
    return standin_mkexec.kernel_patch(standin_mkexec.tiny_tree(tmp_path / "tiny"))


@pytest.fixture
def src(tmp_path, patch_text):
    return standin_mkexec.write_tree(tmp_path / "unpacked", patch_text=patch_text)


# --- the stand-in itself ---------------------------------------------------------------------------------------

def test_standin_patch_applies_to_tiny_tree(tmp_path, patch_text):
    tree = tmp_path / "tiny"
    standin_mkexec.apply_patch(tree, patch_text)
    assert (tree / "kernel" / "Makefile").read_text().endswith(standin_mkexec.MAKEFILE_LINE)
    assert "EXPORT_SYMBOL(mkexec_stub_version)" in (tree / "kernel" / "mkexec_stub.c").read_text()


def test_standin_archive_is_deterministic(tmp_path, patch_text):
    a = standin_mkexec.make_taz(tmp_path / "a.taz", patch_text=patch_text).read_bytes()
    b = standin_mkexec.make_taz(tmp_path / "b.taz", patch_text=patch_text).read_bytes()
    assert a == b


# --- find_layout -----------------------------------------------------------------------------------------------

def test_find_layout_complete(src):
    layout = mkexec.find_layout(src)
    assert layout["root"] == str(src)
    assert layout["patch"] == str(src / "PATCH" / "mkexec-v1.patch")
    assert layout["makefile_base"] == str(src / "kernel" / "Makefile.base")
    assert layout["kernel_makefile"] == str(src / "kernel" / "Makefile")
    assert layout["top_makefile"] == str(src / "Makefile")
    assert layout["asm"] == {"i386": str(src / "include" / "asm-i386"),
                             "x86_64": str(src / "include" / "asm-x86_64")}


@pytest.mark.parametrize("omit, named", [
    ("PATCH/mkexec-v1.patch", "PATCH/mkexec-v1.patch"),
    ("PATCH", "PATCH/mkexec-v1.patch"),
    ("kernel/Makefile.base", "kernel/Makefile.base"),
    ("kernel/Makefile", "kernel/Makefile"),
    ("Makefile", "lacks Makefile"),
    ("include/asm-i386", "include/asm-i386/"),
    ("include/asm-x86_64", "include/asm-x86_64/"),
])
def test_find_layout_names_each_missing_piece(tmp_path, patch_text, omit, named):
    root = standin_mkexec.write_tree(tmp_path / "u", patch_text=patch_text, omit=[omit])
    with pytest.raises(MkdumpError) as e:
        mkexec.find_layout(root)
    msg = str(e.value)
    assert named in msg
    assert "README.mkdump" in msg and "expects" in msg
    assert str(root) in msg


def test_find_layout_lists_everything_missing_at_once(tmp_path, patch_text):
    root = standin_mkexec.write_tree(tmp_path / "u", patch_text=patch_text, omit=["kernel", "include"])
    with pytest.raises(MkdumpError, match=r"lacks kernel/Makefile.base, kernel/Makefile, include/asm-i386/, "
                                          r"include/asm-x86_64/;"):
        mkexec.find_layout(root)


def test_find_layout_with_arch_needs_only_that_asm_dir(tmp_path, patch_text):
    root = standin_mkexec.write_tree(tmp_path / "u", patch_text=patch_text, omit=["include/asm-i386"])
    assert mkexec.find_layout(root, arch="x86_64")["asm"] == {"x86_64": str(root / "include" / "asm-x86_64")}
    with pytest.raises(MkdumpError, match="include/asm-i386/"):
        mkexec.find_layout(root, arch="i386")


def test_find_layout_points_at_nested_top_directory(src):
    with pytest.raises(MkdumpError, match=r"holds only mkexec/, which looks like the archive's top directory"):
        mkexec.find_layout(src.parent)


def test_find_layout_refuses_unknown_arch_and_missing_dir(src, tmp_path):
    with pytest.raises(MkdumpError, match="'arm' is not one mkexec supports"):
        mkexec.find_layout(src, arch="arm")
    with pytest.raises(MkdumpError, match="does not exist"):
        mkexec.find_layout(tmp_path / "nope")


# --- the archive through the unpack stage ------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["gzip", "bzip2", "compress", "none"])
def test_standin_archive_unpacks_in_each_compression(tmp_path, patch_text, compression):
    if compression == "compress" and not standin_mkexec.compress_available():
        pytest.skip("the `compress` program (Debian package ncompress) is not installed, so no .Z archive "
                    "can be made")
    taz = standin_mkexec.make_taz(tmp_path / "mkexec.taz", patch_text=patch_text, compression=compression)
    assert unpack.detect_compression(taz) == compression
    dest = tmp_path / "src" / "mkexec"
    tree_hash = unpack.unpack(taz, dest, log=quiet)
    layout = mkexec.find_layout(dest)
    assert layout["root"] == str(dest)
    assert (dest / "PATCH" / "mkexec-v1.patch").read_text() == patch_text
    # The same tree whatever the compression.
    plain = standin_mkexec.make_taz(tmp_path / "plain.tar", patch_text=patch_text, compression="none")
    assert unpack.unpack(plain, tmp_path / "plain", log=quiet) == tree_hash


# --- build_module against a recording fake kernel tree ----------------------------------------------------------

RECORDER = """\
modules:
\t@printf '%s\\n' 'CURDIR=$(CURDIR)' 'ARCH=$(ARCH)' 'CC=$(CC)' 'KVER=$(KVER)' 'KDIR=$(KDIR)' \\
\t\t'KMODDIR=$(KMODDIR)' 'SUBDIRS=$(SUBDIRS)' 'JOBS=$(filter -j%,$(MAKEFLAGS))' \\
\t\t'JOBSERVER=$(findstring --jobserver-auth=,$(MAKEFLAGS))' > $(SUBDIRS)/received.txt
\t@grep -h MKEXEC_ARCH_NAME $(SUBDIRS)/../include/asm/mkexec_arch.h >> $(SUBDIRS)/received.txt
{extra}\t@printf 'not really a module' > $(SUBDIRS)/mkexec.ko
"""


def fake_kdir(path, extra=""):
    path.mkdir(parents=True, exist_ok=True)
    (path / "Makefile").write_text(RECORDER.format(extra=extra))
    return path


def received(build_dir):
    lines = (build_dir / "kernel" / "received.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")), lines


def build(src, tmp_path, kdir, **kw):
    args = dict(arch="x86_64", kdir=kdir, kver="2.6.9", kmoddir="/lib/modules/2.6.9/extra", toolchain=TOOLCHAIN,
                log_path=tmp_path / "logs" / "mkexec.log", log=quiet)
    args.update(kw)
    args["toolchain"] = dataclasses.replace(args["toolchain"], arch=args["arch"], makevars=(("ARCH", args["arch"]),))
    return mkexec.build_module(src, tmp_path / "build" / "mkexec", **args)


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_build_passes_settings_on_command_line(src, tmp_path, arch):
    kdir = fake_kdir(tmp_path / "kdir")
    ko = build(src, tmp_path, kdir, arch=arch)
    out = tmp_path / "build" / "mkexec"
    assert ko == str(out / "kernel" / "mkexec.ko")
    got, lines = received(out)
    assert got["CURDIR"] == str(kdir)
    assert got["KDIR"] == str(kdir)
    assert got["ARCH"] == arch
    assert got["KVER"] == "2.6.9"
    assert got["KMODDIR"] == "/lib/modules/2.6.9/extra"
    # kbuild was pointed at the build copy's kernel/ (a staging directory at the time, renamed since).
    assert os.path.basename(got["SUBDIRS"]) == "kernel"
    staging = os.path.dirname(got["SUBDIRS"])
    assert os.path.basename(staging).startswith(".mkexec.tmp-")
    # The toolchain's CC, with the kernel tree and the staging copy recorded under stable names (staging last:
    # gcc uses the last map that matches).
    assert got["CC"] == (f"gcc -fno-pie -fgnu89-inline -ffile-prefix-map={kdir}=kdir "
                         f"-ffile-prefix-map={staging}=mkexec")
    # <asm/mkexec_arch.h> resolved through the include/asm link to this arch's header.
    assert f'#define MKEXEC_ARCH_NAME "{arch}"' in lines
    assert os.readlink(out / "include" / "asm") == f"asm-{arch}"
    # Plain `=` assignments lose to the command line: the copy's Makefile.base is upstream's, unedited.
    assert (out / "kernel" / "Makefile.base").read_text() == (src / "kernel" / "Makefile.base").read_text()
    assert not (src / "include" / "asm").exists()
    assert os.listdir(tmp_path / "build") == ["mkexec"]


def test_build_generates_makefile_base_when_upstream_overrides(tmp_path, patch_text):
    src = standin_mkexec.write_tree(tmp_path / "u", patch_text=patch_text, override_settings=True)
    original = (src / "kernel" / "Makefile.base").read_text()
    assert "override KDIR = /usr/src/linux-$(KVER)" in original
    kdir = fake_kdir(tmp_path / "kdir")
    messages = []
    build(src, tmp_path, kdir, log=messages.append)
    out = tmp_path / "build" / "mkexec"
    got, _ = received(out)
    assert (got["KDIR"], got["KVER"], got["KMODDIR"]) == (str(kdir), "2.6.9", "/lib/modules/2.6.9/extra")
    generated = (out / "kernel" / "Makefile.base").read_text()
    assert generated.endswith(f"override KVER := 2.6.9\noverride KDIR := {kdir}\n"
                              "override KMODDIR := /lib/modules/2.6.9/extra\n")
    assert (src / "kernel" / "Makefile.base").read_text() == original
    assert any("uses `override`" in m for m in messages)


def test_build_without_generation_would_have_missed_kdir(tmp_path, patch_text):
    """The probe is what tells the two cases apart: with `override`, make -C goes to upstream's default KDIR."""
    src = standin_mkexec.write_tree(tmp_path / "u", patch_text=patch_text, override_settings=True)
    settings = {"KVER": "2.6.9", "KDIR": str(tmp_path), "KMODDIR": "/x"}
    seen = mkexec._probe_settings(str(src / "kernel"), settings)
    assert seen["KDIR"] == "/usr/src/linux-2.6.9-mkexec"
    assert os.listdir(src / "kernel") == ["Makefile", "Makefile.base", "mkexec.c"]


def test_build_failure_keeps_previous_build_and_reports(src, tmp_path):
    kdir = fake_kdir(tmp_path / "kdir")
    build(src, tmp_path, kdir)
    out = tmp_path / "build" / "mkexec"
    before = (out / "kernel" / "received.txt").read_text()
    fake_kdir(kdir, extra="\t@echo 'mkexec.c:42: error: frobnicate undeclared' >&2; exit 1\n")
    with pytest.raises(MkdumpError) as e:
        build(src, tmp_path, kdir, arch="i386")
    msg = str(e.value)
    assert "`make ARCH=i386 KVER=2.6.9" in msg
    assert "'CC=gcc -fno-pie -fgnu89-inline -ffile-prefix-map=" in msg
    assert "mkexec.c:42: error: frobnicate undeclared" in msg
    assert str(tmp_path / "logs" / "mkexec.log") in msg
    assert "frobnicate" in (tmp_path / "logs" / "mkexec.log").read_text()
    assert (out / "kernel" / "received.txt").read_text() == before
    assert os.listdir(tmp_path / "build") == ["mkexec"]


def test_build_stopped_by_ctrl_c_says_interrupted_and_keeps_previous_build(src, tmp_path, monkeypatch):
    """make dies by SIGINT (tests/test_runner.py shows Ctrl-C to scons stopping it)."""
    kdir = fake_kdir(tmp_path / "kdir")
    build(src, tmp_path, kdir)
    out = tmp_path / "build" / "mkexec"
    before = (out / "kernel" / "received.txt").read_text()
    real_run = runner.run

    def run(argv, **kw):
        if "mkdump-probe" in argv:
            return real_run(argv, **kw)
        return runner.Result(argv, -signal.SIGINT, ["make: *** Interrupt\n"], 20)
    monkeypatch.setattr(runner, "run", run)
    with pytest.raises(Interrupted, match=r"^building mkexec.ko was interrupted \(make was stopped by SIGINT\)"):
        build(src, tmp_path, kdir)
    assert (out / "kernel" / "received.txt").read_text() == before
    assert os.listdir(tmp_path / "build") == ["mkexec"]


def test_build_refuses_module_with_symbols_kernel_lacks(src, tmp_path):
    warn = "\t@echo '*** Warning: \"mkexec_stub_version\" [$(SUBDIRS)/mkexec.ko] undefined!'\n"
    kdir = fake_kdir(tmp_path / "kdir", extra=warn)
    with pytest.raises(MkdumpError, match=r"uses mkexec_stub_version, which the system kernel .* does not export; "
                                          r"apply PATCH/mkexec-v1.patch"):
        build(src, tmp_path, kdir)
    assert os.listdir(tmp_path / "build") == []


def test_build_refuses_when_no_module_appears(src, tmp_path):
    kdir = tmp_path / "kdir"
    kdir.mkdir()
    (kdir / "Makefile").write_text("modules:\n\t@true\n")
    with pytest.raises(MkdumpError, match="succeeded but left no kernel/mkexec.ko"):
        build(src, tmp_path, kdir)
    assert os.listdir(tmp_path / "build") == []


def test_build_verbose_streams_make_output(src, tmp_path):
    kdir = fake_kdir(tmp_path / "kdir", extra="\t@echo compiling-for-real\n")
    messages = []
    build(src, tmp_path, kdir, verbose=True, log=messages.append)
    assert "compiling-for-real" in messages


@pytest.mark.parametrize("kw, match", [
    (dict(kver="2.6.9 smp"), "KVER='2.6.9 smp' cannot be passed to make"),
    (dict(kmoddir="/lib/$(evil)"), "KMODDIR='/lib/\\$\\(evil\\)' cannot be passed"),
    (dict(kver=""), "KVER='' cannot be passed"),
    (dict(arch="ppc64"), "'ppc64' is not one mkexec supports"),
])
def test_build_refuses_bad_settings(src, tmp_path, kw, match):
    with pytest.raises(MkdumpError, match=match):
        build(src, tmp_path, fake_kdir(tmp_path / "kdir"), **kw)


def test_build_refuses_kdir_that_is_not_a_tree(src, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MkdumpError, match="is not a kernel tree .*build the system kernel first"):
        build(src, tmp_path, tmp_path / "empty")


def test_build_ignores_outer_make_flags(src, tmp_path, monkeypatch):
    """MAKEFLAGS from an outer make or the user's shell (here -n) must not change what mkexec's make does, as
    for the kernel builds (mkdump.kbuild)."""
    monkeypatch.setenv("MAKEFLAGS", "n")
    kdir = fake_kdir(tmp_path / "kdir")
    ko = build(src, tmp_path, kdir)
    assert open(ko).read() == "not really a module"
    assert received(tmp_path / "build" / "mkexec")[0]["JOBS"] == ""


@pytest.mark.parametrize("jobs, flags", [(1, "-j1"), (2, "-j2")])
def test_build_takes_its_jobs_from_the_runs_jobserver(src, tmp_path, jobs, flags):
    kdir = fake_kdir(tmp_path / "kdir")
    build(src, tmp_path, kdir, jobs=jobs)
    got = received(tmp_path / "build" / "mkexec")[0]
    assert got["JOBS"] == flags
    assert got["JOBSERVER"] == ("--jobserver-auth=" if jobs > 1 else "")
    assert (tmp_path / "logs" / "mkexec.log").read_text().startswith(f"$ make {flags} ARCH=x86_64 ")


# --- build paths must not reach mkexec.ko ----------------------------------------------------------------------

# An external module is compiled as `$(CC) ... -c -o <abs dir>/mkexec.o <abs dir>/mkexec.c` from inside KDIR, so
# __FILE__ (which BUG() and friends put into the module) is the absolute path of the build copy.
FILE_USE = '\nconst char mkexec_built_from[] = __FILE__;\n'


@pytest.fixture(scope="module")
def fixture_system_kernel(tmp_path_factory):
    """The fixture kernel with the stand-in's kernel patch, configured with modules and built (vmlinux)."""
    import subprocess
    from support import fixture_kernel
    tree = fixture_kernel.make_fixture_tree(tmp_path_factory.mktemp("system"))
    patch_text = standin_mkexec.kernel_patch(tree)
    standin_mkexec.apply_patch(tree, patch_text)
    run = dict(cwd=tree, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    subprocess.run(["make", "ARCH=x86_64", "allnoconfig"], **run)
    with open(tree / ".config", "a") as f:
        f.write("CONFIG_MODULES=y\nCONFIG_PROC_FS=y\n")
    subprocess.run(["make", "ARCH=x86_64", "oldconfig"], **run)
    subprocess.run(["make", "ARCH=x86_64", "CC=gcc -fno-pie", "vmlinux"], **run)
    return tree, patch_text


def test_module_bytes_do_not_depend_on_the_build_directory(fixture_system_kernel, tmp_path):
    kdir, patch_text = fixture_system_kernel
    src = standin_mkexec.write_tree(tmp_path / "unpacked", patch_text=patch_text)
    with open(src / "kernel" / "mkexec.c", "a") as f:
        f.write(FILE_USE)
    built = []
    for where in (tmp_path / "one", tmp_path / "second" / "two"):
        ko = mkexec.build_module(src, where / "mkexec", arch="x86_64", kdir=kdir, kver="2.6.9",
                                 kmoddir="/lib/modules/2.6.9/extra", toolchain=toolchain.detect("x86_64"),
                                 log_path=where / "mkexec.log", log=quiet)
        built.append(open(ko, "rb").read())
    assert b"\0mkexec/kernel/mkexec.c\0" in built[0]
    assert str(tmp_path).encode() not in built[0]
    assert built[0] == built[1]
