"""mkdump.kbuild: run_make against tiny Makefiles the tests write, and one real 2.6.9 mini kernel build (the tree
prepared by support.kernel_tree, as benchmarks/bench_build.py prepares it)."""
import os
import re
import subprocess
import textwrap

import pytest

from mkdump import kbuild, toolchain
from mkdump.errors import MkdumpError, NoSpace
from support.kernel_tree import COMPAT_DIR, MINI_FRAGMENT, apply_compat_patches, compat_patches, configure, unpack


def fake_toolchain(arch="x86_64"):
    return toolchain.Toolchain(
        arch=arch, cc=("cc",), cross_compile="", gcc_version="12.2", gcc_version_line="cc 12.2.0",
        binutils_version="2.40", target=f"{arch}-linux-gnu", flags=("-fno-pie",), rejected_flags=(),
        hostcc="cc", makevars=(("ARCH", arch),), prefix_map=("-ffile-prefix-map",))


def write_makefile(tree, text):
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "Makefile").write_text(textwrap.dedent(text).replace("        ", "\t"))


def run(tree, targets, tmp_path, **kw):
    messages = []
    kw.setdefault("log_path", tmp_path / "logs" / "build.log")
    kbuild.run_make(tree, targets, toolchain=fake_toolchain(), log=messages.append, **kw)
    return messages


SIMPLE = """\
all:
        @echo "  CC      init/main.o"
        @echo "CC=$(CC) ARCH=$(ARCH) V=$(V)"
        @echo "env: $$KBUILD_BUILD_TIMESTAMP|$$KBUILD_BUILD_USER|$$KBUILD_BUILD_HOST|$$KBUILD_BUILD_VERSION|$$LC_ALL|$$TZ|$$SOURCE_DATE_EPOCH|$$KCONFIG_NOTIMESTAMP"
        @echo "makeflags: $(MAKEFLAGS)"
"""


def test_success_quiet_prints_one_line_and_logs_everything(tmp_path):
    tree = tmp_path / "tree"
    write_makefile(tree, SIMPLE)
    messages = run(tree, ["all"], tmp_path, jobs=2)
    assert len(messages) == 1
    assert "make all" in messages[0] and "-j2" in messages[0] and str(tmp_path / "logs" / "build.log") in messages[0]
    text = (tmp_path / "logs" / "build.log").read_text()
    # The tree is recorded in the outputs under its base name, whatever directory holds it.
    cc = f"cc -fno-pie -ffile-prefix-map={tree}=tree"
    assert text.startswith(f"# cd {tree} && make -j2 ARCH=x86_64 'CC={cc}' HOSTCC=cc V=1 all  # -j2: the slots of a "
                           "jobserver all of this run's makes share\n")
    assert f"CC={cc} ARCH=x86_64 V=1" in text
    # make gets its two slots from the process's jobserver, not from -j2 on its command line.
    assert re.search(r"^makeflags: +-j2 --jobserver-auth=\d+,\d+", text, re.MULTILINE), text
    assert "  CC      init/main.o" in text


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeTerminal:
    def __init__(self, tty=True):
        self.text, self.tty = "", tty

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


COMPILE = "  gcc -Wp,-MD,drivers/x/.a.o.d -nostdinc -O2 -c -o drivers/x/a.o drivers/x/a.c\n"


def test_progress_without_a_terminal_logs_a_line_every_interval():
    clock, lines = FakeClock(), []
    p = kbuild.Progress("make bzImage modules", 200, log=lines.append, stream=FakeTerminal(tty=False), clock=clock)
    for i in range(50):
        clock.now += 1
        p.output(COMPILE)
        p.output("  ld -r -o drivers/x/built-in.o drivers/x/a.o\n")
    # 50 s: one line at 30 s, the next is due at 60 s.
    assert lines == ["make bzImage modules: 30/200 objects (15%), 0:30 elapsed, about 2:50 left"]
    clock.now += 100
    p.output("something\n")
    assert lines[-1] == "make bzImage modules: 50/200 objects (25%), 2:30 elapsed, about 7:30 left"
    p.finish()
    assert len(lines) == 2


def test_progress_on_a_terminal_redraws_one_line_and_clears_it():
    clock, lines, term = FakeClock(), [], FakeTerminal()
    p = kbuild.Progress("make bzImage", None, log=lines.append, stream=term, clock=clock)
    for i in range(3):
        clock.now += 1
        p.output(COMPILE)
    assert lines == []
    assert term.text.count("\r") == 3 and "\n" not in term.text
    assert term.text.endswith("\rmake bzImage: 3 objects, 0:03 elapsed\x1b[K")
    p.finish()
    assert term.text.endswith("\r\x1b[K")


def test_makes_running_at_once_share_one_status_line():
    clock, term = FakeClock(), FakeTerminal()
    minik = kbuild.Progress("minik", None, log=[].append, stream=term, clock=clock)
    system = kbuild.Progress("system", None, log=[].append, stream=term, clock=clock)
    clock.now += 1
    minik.output(COMPILE)
    assert term.text.endswith("\rminik: 1 objects, 0:01 elapsed | system: 0 objects, 0:01 elapsed\x1b[K")
    minik.finish()
    assert term.text.endswith("\rsystem: 0 objects, 0:01 elapsed\x1b[K")
    system.finish()
    assert term.text.endswith("\r\x1b[K") and "\n" not in term.text


def test_progress_total_grows_when_a_build_compiles_more_than_the_last_one():
    clock = FakeClock()
    p = kbuild.Progress("make", 2, log=[].append, clock=clock)
    for _ in range(3):
        p.output(COMPILE)
    assert p.line().startswith("make: 3/3 objects (100%)")


def test_run_make_counts_the_objects_it_compiled(tmp_path):
    tree = tmp_path / "tree"
    write_makefile(tree, """\
    all:
            @echo "  gcc -O2 -c -o a.o a.c "
            @echo "  gcc -D__ASSEMBLY__ -c -o b.o b.S "
            @echo "  ld -r -o built-in.o a.o b.o"
    """)
    assert kbuild.run_make(tree, ["all"], toolchain=fake_toolchain(), log=[].append,
                           log_path=tmp_path / "build.log") == 2


def test_verbose_streams_the_output(tmp_path):
    tree = tmp_path / "tree"
    write_makefile(tree, SIMPLE)
    messages = run(tree, ["all"], tmp_path, verbose=True)
    assert len(messages) > 3
    assert "  CC      init/main.o" in messages


def test_environment_is_pinned(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEFLAGS", "-k")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = tmp_path / "tree"
    write_makefile(tree, SIMPLE)
    run(tree, ["all"], tmp_path)
    text = (tmp_path / "logs" / "build.log").read_text()
    stamp = kbuild.build_timestamp(kbuild.DEFAULT_SOURCE_DATE_EPOCH)
    assert stamp == "Thu Oct 14 23:00:00 UTC 2004"
    assert f"env: {stamp}|mkdump|mkdump|1|C|UTC|{kbuild.DEFAULT_SOURCE_DATE_EPOCH}|1" in text
    # The inherited -k must not reach this make.
    assert not re.search(r"^makeflags: .*k", text, re.MULTILINE)


def test_source_date_epoch_and_env_extra_are_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    tree = tmp_path / "tree"
    write_makefile(tree, SIMPLE)
    run(tree, ["all"], tmp_path, env_extra={"KBUILD_BUILD_USER": "alice"})
    text = (tmp_path / "logs" / "build.log").read_text()
    assert "env: Fri Jan  2 00:00:00 UTC 1970|alice|mkdump|1|C|UTC|86400" in text


def test_source_date_epoch_from_the_caller_sets_the_build_date(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    env = kbuild.build_env({"SOURCE_DATE_EPOCH": "172800"})
    assert env["SOURCE_DATE_EPOCH"] == "172800"
    assert env["KBUILD_BUILD_TIMESTAMP"] == "Sat Jan  3 00:00:00 UTC 1970"


FAILING = """\
all: init/main.o drivers/ok.o
init/main.o:
        @echo "  CC      $@"
        true cc -Wall -c -o $@ init/main.c
        @echo "init/main.c: In function 'start_kernel':"
        @echo "init/main.c:42:9: error: 'foo' undeclared (first use in this function)"
        @echo "init/main.c:42:9: note: each undeclared identifier is reported only once"
        @exit 1
drivers/ok.o:
        @echo "  CC      $@"
"""


def test_failure_names_command_errors_and_log(tmp_path):
    tree = tmp_path / "tree"
    write_makefile(tree, FAILING)
    with pytest.raises(kbuild.KbuildError) as e:
        run(tree, ["all"], tmp_path)
    err = e.value
    msg = str(err)
    assert isinstance(err, MkdumpError)
    assert "make all failed in" in msg and "building init/main.o" in msg
    assert "Failing command: true cc -Wall -c -o init/main.o init/main.c" in msg
    assert "init/main.c:42:9: error: 'foo' undeclared" in msg
    assert "In function 'start_kernel'" in msg  # context before the error line
    assert str(tmp_path / "logs" / "build.log") in msg
    assert err.returncode == 2
    assert err.log_path == tmp_path / "logs" / "build.log"
    assert any("error:" in line for line in err.errors)


def test_a_full_disk_is_no_compile_error(tmp_path):
    tree = tmp_path / "tree"
    write_makefile(tree, """\
        all:
                @echo "init/main.o: fatal error: error writing to /tmp/ccX.s: No space left on device" >&2; exit 1
        """)
    with pytest.raises(NoSpace) as e:
        run(tree, ["all"], tmp_path)
    assert e.value.path == str(tree) and e.value.reason == "No space left on device"
    assert str(e.value) == (f"make all in {tree} (log: {tmp_path / 'logs' / 'build.log'}) failed (No space left on "
                            f"device); free some space in {tmp_path} and run again.")


def test_runaway_output_is_stopped(tmp_path, monkeypatch):
    # What 2.6.9's `make oldconfig </dev/null` does on a new choice: it asks again, forever.
    monkeypatch.setattr(kbuild, "MAX_OUTPUT_BYTES", 200_000)
    tree = tmp_path / "tree"
    write_makefile(tree, """\
    oldconfig:
            @while :; do echo '  choice[1-4?]: '; done
    """)
    with pytest.raises(kbuild.KbuildError, match=r"printed more than .* set every choice"):
        run(tree, ["oldconfig"], tmp_path)
    assert (tmp_path / "logs" / "build.log").stat().st_size < 1_000_000


def test_not_a_tree(tmp_path):
    with pytest.raises(MkdumpError, match="is not a kernel tree"):
        run(tmp_path / "missing", ["all"], tmp_path)


def test_prefix_maps_cover_a_tree_reached_through_a_symlink(tmp_path):
    real = tmp_path / "real" / "minik"
    real.mkdir(parents=True)
    assert kbuild.prefix_maps(real, "minik") == [(str(real), "minik")]
    (tmp_path / "link").symlink_to(tmp_path / "real")
    # make -C and `pwd` give the real path; a command line may still name the given one.
    assert kbuild.prefix_maps(tmp_path / "link" / "minik", "minik") == [(str(real), "minik"),
                                                                        (str(tmp_path / "link" / "minik"), "minik")]


# 2.6.9's top Makefile as a build in an object directory sees it: run there with -f and KBUILD_SRC.
OUT_OF_TREE = """\
all:
        @echo "curdir=$(CURDIR) src=$(KBUILD_SRC)"
        @echo "CC=$(CC)"
        @echo "ccache base: $$CCACHE_BASEDIR"
        echo built > built.o
"""


def test_out_of_tree_build_runs_in_the_object_directory_and_never_writes_the_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("CCACHE_BASEDIR", raising=False)
    tree, obj = tmp_path / "src" / "minik", tmp_path / "obj" / "minik"
    write_makefile(tree, OUT_OF_TREE)
    messages = run(tree, ["all"], tmp_path, jobs=2, obj=obj)
    assert str(obj) in messages[0]
    text = (tmp_path / "logs" / "build.log").read_text()
    cc = (f"cc -fno-pie -ffile-prefix-map=include2/=include/ -ffile-prefix-map=../../src/minik/= "
          f"-ffile-prefix-map={tree}/= -ffile-prefix-map={obj}=minik")
    assert text.startswith(f"# cd {obj} && make -j2 ARCH=x86_64 'CC={cc}' HOSTCC=cc V=1 -f {tree}/Makefile "
                           f"KBUILD_SRC={tree} all  # -j2: ")
    assert f"curdir={obj} src={tree}" in text
    # ccache names the sources relative to the object directory, as in any other build directory.
    assert f"ccache base: {tmp_path}\n" in text
    assert (obj / "built.o").read_text() == "built\n"
    assert sorted(p.name for p in tree.iterdir()) == ["Makefile"]
    # A base directory of the user's own is theirs.
    monkeypatch.setenv("CCACHE_BASEDIR", "/home")
    run(tree, ["all"], tmp_path, obj=obj)
    assert "ccache base: /home\n" in (tmp_path / "logs" / "build.log").read_text()


@pytest.mark.parametrize("left", [".config", "include/asm"])
def test_a_tree_built_in_place_is_not_built_out_of_tree(tmp_path, left):
    tree, obj = tmp_path / "minik", tmp_path / "obj" / "minik"
    write_makefile(tree, OUT_OF_TREE)
    (tree / "include").mkdir()
    if left == ".config":
        (tree / ".config").write_text("CONFIG_X=y\n")
    else:
        (tree / "include" / "asm").symlink_to("asm-x86_64")    # dangling, as 2.6.9 leaves it in a fresh copy
    with pytest.raises(MkdumpError, match=f"{tree} was configured or built in place .*has {left}.*scons patch"):
        run(tree, ["all"], tmp_path, obj=obj)
    assert not obj.exists()


def test_out_of_tree_prefix_maps_name_sources_as_the_tree_did(tmp_path):
    (tmp_path / "real" / "linux").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    src, obj = tmp_path / "link" / "linux", tmp_path / "obj" / "system"
    # Sources by their relative path, include2/asm as include/asm, the object directory (make's working
    # directory) by its base name; the real path of a tree reached through a symlink too.
    assert kbuild.out_of_tree_prefix_maps(src, obj) == [
        ("include2/", "include/"), ("../../real/linux/", ""), (f"{tmp_path}/real/linux/", ""), (f"{src}/", ""),
        (str(obj), "system")]


def test_kernel_release(tmp_path):
    write_makefile(tmp_path, "VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = 9\nEXTRAVERSION = -minik\nNAME=Zonked Quokka\n")
    assert kbuild.kernel_release(tmp_path) == "2.6.9-minik"
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "include" / "linux" / "version.h").write_text('#define UTS_RELEASE "2.6.9-minik-dump"\n')
    assert kbuild.kernel_release(tmp_path) == "2.6.9-minik-dump"
    write_makefile(tmp_path / "other", "all:\n")
    with pytest.raises(MkdumpError, match="does not define VERSION"):
        kbuild.kernel_release(tmp_path / "other")


# --- the real tree -------------------------------------------------------------------------------------------

def build_mini_x86_64(tarball, workdir, tc):
    tree = unpack(tarball, workdir)
    apply_compat_patches(tree, "x86_64")
    assert configure(tree, tc, MINI_FRAGMENT, workdir / "logs") == []
    kbuild.run_make(tree, ["bzImage"], toolchain=tc, jobs=min(2, os.cpu_count() or 1),
                    log_path=workdir / "logs" / "build.log", log=lambda m: None)
    return tree


@pytest.mark.realkernel
@pytest.mark.slow
def test_mini_kernel_builds_and_rebuilds_bit_identically_elsewhere(real_linux_tarball, tmp_path):
    tc = toolchain.detect("x86_64")
    tree = build_mini_x86_64(real_linux_tarball, tmp_path / "a", tc)
    products = ("vmlinux", "arch/x86_64/boot/compressed/vmlinux.bin", "arch/x86_64/boot/bzImage", "System.map")
    for product in products:
        assert (tree / product).stat().st_size > 100_000, product
    banner = (tree / "vmlinux").read_bytes()
    stamp = kbuild.build_timestamp(int(os.environ.get("SOURCE_DATE_EPOCH") or kbuild.DEFAULT_SOURCE_DATE_EPOCH))
    assert f"Linux version 2.6.9 (mkdump@mkdump) (gcc version {tc.gcc_version}".encode() in banner
    assert f"#1 {' '.join(stamp.split())}".encode() in banner
    assert kbuild.kernel_release(tree) == "2.6.9"
    # The init_task patch's point: the idle task's stack union sits on a THREAD_SIZE boundary.
    nm = subprocess.run(["nm", str(tree / "vmlinux")], capture_output=True, text=True, check=True).stdout
    addr = int(re.search(r"^([0-9a-f]+) \w init_thread_union$", nm, re.MULTILINE).group(1), 16)
    assert addr % 8192 == 0
    # Same sources and config in a directory with another name and depth: the same bytes.
    other = build_mini_x86_64(real_linux_tarball, tmp_path / "second" / "b", tc)
    differ = [p for p in products if (tree / p).read_bytes() != (other / p).read_bytes()]
    assert differ == []


@pytest.mark.realkernel
@pytest.mark.slow
def test_mini_kernel_built_out_of_tree_is_bit_identical_and_leaves_the_tree_alone(real_linux_tarball, tmp_path):
    from mkdump.pipeline import tree_state
    tc = toolchain.detect("x86_64")
    in_tree = build_mini_x86_64(real_linux_tarball, tmp_path / "a", tc)
    tree = unpack(real_linux_tarball, tmp_path / "b")
    apply_compat_patches(tree, "x86_64")
    before = tree_state(tree)
    obj = tmp_path / "obj" / in_tree.name
    obj.mkdir(parents=True)
    (obj / ".config").write_bytes((in_tree / ".config").read_bytes())
    kbuild.run_make(tree, ["bzImage"], toolchain=tc, jobs=min(2, os.cpu_count() or 1), obj=obj,
                    log_path=tmp_path / "logs" / "build-obj.log", log=lambda m: None)
    assert tree_state(tree) == before
    products = ("vmlinux", "arch/x86_64/boot/compressed/vmlinux.bin", "arch/x86_64/boot/bzImage", "System.map")
    differ = [p for p in products if (in_tree / p).read_bytes() != (obj / p).read_bytes()]
    assert differ == []


@pytest.mark.realkernel
def test_all_compat_patches_apply_cleanly(real_linux_tarball, tmp_path):
    assert compat_patches("x86_64") and compat_patches("i386")
    assert compat_patches("i386")[0][0].name.startswith("i386-")
    # Every compat patch is in the series for some arch.
    patches = sorted(set(compat_patches("x86_64") + compat_patches("i386")))
    assert [p for p, _ in patches] == sorted(COMPAT_DIR.glob("*.patch"))
    # Only the files the patches touch are needed; extract just those to keep this test short.
    names = set()
    for p, _ in patches:
        names.update(re.findall(r"^\+\+\+ b/(\S+)", p.read_text(), re.MULTILINE))
    for arch in ("x86_64", "i386"):
        (tmp_path / arch).mkdir()
        subprocess.run(["tar", "-xf", str(real_linux_tarball), "-C", str(tmp_path / arch)]
                       + sorted(f"linux-2.6.9/{n}" for n in names), check=True)
        # In the series' own order, as the pipeline applies them.
        apply_compat_patches(tmp_path / arch / "linux-2.6.9", arch)
    # Each patch's header is plain text ahead of the first diff line and says what breaks and why.
    for p in sorted(COMPAT_DIR.glob("*.patch")):
        header = p.read_text().split("\n--- a/", 1)[0]
        assert "Breaks:" in header and "Why:" in header, p.name
