"""Boot proofs without a real kernel: QEMU settings and command line, console parsing and the checks on recorded
consoles, and the run/timeout machinery against a fake QEMU."""
import pytest

from mkdump import boot
from mkdump.errors import MkdumpError
from support import boot_consoles as consoles
from support import boot_fakeqemu as fakeqemu


def result(text, reason="exited", stderr=""):
    return boot.BootResult(console=boot.normalise_console(text), exit_reason=reason, seconds=1.0,
                           qemu_stderr=stderr)


# --- kernel/qemu.toml ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,binary", [("x86_64", "qemu-system-x86_64"), ("i386", "qemu-system-i386")])
def test_project_qemu_toml_has_both_arches_and_kinds(arch, binary):
    base = boot.load_qemu_config(arch)
    assert base["binary"] == binary
    assert base["accel"] == "tcg"
    assert "-no-reboot" in base["args"]
    minik = boot.load_qemu_config(arch, "minik")
    system = boot.load_qemu_config(arch, "system")
    assert minik["memory_mb"] < system["memory_mb"]
    assert "minik" not in minik and "system" not in system


def test_kind_table_overrides_arch_table(tmp_path):
    toml, _ = fakeqemu.make(tmp_path, [])
    assert boot.load_qemu_config("x86_64", path=toml)["memory_mb"] == 64
    assert boot.load_qemu_config("x86_64", "minik", path=toml)["memory_mb"] == 8
    assert boot.load_qemu_config("i386", "minik", path=toml)["memory_mb"] == 64


def test_qemu_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "q.toml"
    bad.write_text("[x86_64\n")
    with pytest.raises(MkdumpError, match="not valid TOML"):
        boot.load_qemu_config("x86_64", path=bad)
    bad.write_text('[x86_64]\nbinary = "q"\n')
    with pytest.raises(MkdumpError, match="lacks machine, accel"):
        boot.load_qemu_config("x86_64", path=bad)
    with pytest.raises(MkdumpError, match=r"no \[arm\] table"):
        boot.load_qemu_config("arm", path=bad)
    with pytest.raises(MkdumpError, match="cannot read"):
        boot.load_qemu_config("x86_64", path=tmp_path / "absent.toml")


def test_qemu_command_is_an_argument_list_from_the_settings():
    config = boot.load_qemu_config("x86_64", "minik")
    append = boot.kernel_append(config, "mem=7M dump_dev=0x300000 panic=1")
    cmd = boot.qemu_command(config, "/k/bzImage", append=append, initrd="/k/initrd.gz")
    assert cmd[0] == "qemu-system-x86_64"
    assert cmd[cmd.index("-machine") + 1] == f"{config['machine']},accel=tcg"
    assert cmd[cmd.index("-m") + 1] == str(config["memory_mb"])
    assert cmd[cmd.index("-kernel") + 1] == "/k/bzImage"
    assert cmd[cmd.index("-initrd") + 1] == "/k/initrd.gz"
    # the whole command line is one argument, spaces and all: nothing goes through a shell
    assert cmd[cmd.index("-append") + 1] == "console=ttyS0,115200 mem=7M dump_dev=0x300000 panic=1"
    for arg in config["args"]:
        assert arg in cmd
    assert "-initrd" not in boot.qemu_command(config, "/k/bzImage", append=append)
    assert boot.qemu_command(config, "/k/bzImage", append=append, memory_mb=32)[cmd.index("-m") + 1] == "32"


def test_machine_fallback_only_when_qemu_does_not_know_the_machine():
    config = {"machine": "pc-i440fx-7.0", "machine_fallback": "pc"}
    assert boot.choose_machine(config, {"pc", "pc-i440fx-7.0"}) == "pc-i440fx-7.0"
    assert boot.choose_machine(config, {"pc", "pc-i440fx-2.0"}) == "pc"
    assert boot.choose_machine(config, None) == "pc-i440fx-7.0"


def test_earlyprintk_goes_after_the_console():
    config = boot.load_qemu_config("i386")
    assert boot.kernel_append(config, "panic=1", earlyprintk=True) == \
        "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 panic=1"


@pytest.mark.parametrize("arch,mem", [("x86_64", "mem=7M"), ("i386", "mem=8M")])
def test_minik_command_line_follows_readme_step_4(arch, mem):
    assert boot.minik_append(arch, 8, "0x300007").split() == [mem, "dump_dev=0x300007", "panic=1"]


# --- console text ---------------------------------------------------------------------------------------------

def test_normalise_console_line_ends_escapes_and_partial_line():
    text = boot.normalise_console(b"\x1bc\x1b[2JSeaBIOS\r\nLinux version 2.6.9\r\r\nlone\rcr\nno end\x00")
    assert boot.console_lines(text) == ["SeaBIOS", "Linux version 2.6.9", "", "lone", "cr", "no end"]


def test_console_tail_skips_blank_lines():
    assert boot.console_tail("a\n\n\nb\nc\n", lines=2) == "b\nc"


# --- expect_boot on recorded consoles -------------------------------------------------------------------------

def test_minik_console_passes():
    checks = boot.expect_boot(result(consoles.minik()), kind="minik", expect_memory_kb=8192)
    assert checks[0].startswith("banner: Linux version 2.6.9 ")
    assert checks[1] == "memory: 6000k/8064k available, given 8192k"
    assert checks[2].startswith("late point: Kernel panic - not syncing: VFS: Unable to mount root fs")


def test_system_console_passes_with_token():
    checks = boot.expect_boot(result(consoles.system(token="f00d")), kind="system", module_token="f00d")
    assert "init_module returned 0" in checks
    assert checks[-1] == "module init: mkdump-boot-test-module: init ran token=f00d length=4"


def test_empty_console_suggests_earlyprintk():
    with pytest.raises(boot.BootError, match="earlyprintk") as e:
        boot.expect_boot(result("", stderr="qemu: could not load kernel"), kind="minik")
    assert "could not load kernel" in str(e.value)
    assert isinstance(e.value, MkdumpError)


def test_firmware_only_console_has_no_banner():
    with pytest.raises(boot.BootError, match="no 'Linux version' banner") as e:
        boot.expect_boot(result(consoles.FIRMWARE.format(append="x")), kind="minik")
    assert "SeaBIOS" in e.value.tail


def test_wrong_kernel_version():
    with pytest.raises(boot.BootError, match="names Linux 6.1.0"):
        boot.expect_boot(result(consoles.minik(version="6.1.0")), kind="minik")


def test_memory_line_missing():
    text = consoles.minik().replace(consoles.memory(6000, 8064), "")
    with pytest.raises(boot.BootError, match="never reported its memory"):
        boot.expect_boot(result(text), kind="minik", expect_memory_kb=8192)


@pytest.mark.parametrize("total", [8193, 16384, 7000])
def test_memory_outside_what_was_given(total):
    with pytest.raises(boot.BootError, match=f"reports {total}k of memory, but it was given 8192k"):
        boot.expect_boot(result(consoles.minik(total_kb=total)), kind="minik", expect_memory_kb=8192)


def test_timeout_without_late_point():
    text = consoles.minik(late="Freeing unused kernel memory: 112k freed\r\nSome partial li")
    with pytest.raises(boot.BootError, match="never reached its late point.*time limit") as e:
        boot.expect_boot(result(text, reason="timeout"), kind="minik")
    assert e.value.tail.endswith("Some partial li")
    assert "(timeout after 1.0 s)" in str(e.value)


def test_bug_before_late_point_fails_the_boot():
    text = consoles.minik(middle=consoles.MIDDLE + "Kernel BUG at page_alloc:206\r\ninvalid operand: 0000\r\n")
    with pytest.raises(boot.BootError, match="failed at line .*Kernel BUG at page_alloc:206"):
        boot.expect_boot(result(text), kind="minik")


def test_other_panic_is_not_the_late_point():
    text = consoles.minik(late="Kernel panic - not syncing: Attempted to kill init!\r\n")
    with pytest.raises(boot.BootError, match="Attempted to kill init"):
        boot.expect_boot(result(text), kind="minik")


def test_module_init_missing():
    with pytest.raises(boot.BootError, match="module's init did not run"):
        boot.expect_boot(result(consoles.system(module_printed=False)), kind="system")


def test_module_marker_with_another_token_does_not_count():
    with pytest.raises(boot.BootError, match="did not print 'mkdump-boot-test-module: init ran token=new'"):
        boot.expect_boot(result(consoles.system(token="old")), kind="system", module_token="new")


def test_init_module_error_names_errno_and_plt32():
    with pytest.raises(boot.BootError, match="init_module returned -8 ENOEXEC.*PLT32") as e:
        boot.expect_boot(result(consoles.system(ret=-8, module_printed=False)), kind="system")
    assert "Unknown rela relocation" in e.value.tail


def test_init_never_ran():
    text = consoles.system().split("Freeing unused")[0] + "Kernel panic - not syncing: No init found.\r\n"
    with pytest.raises(boot.BootError, match="No init found"):
        boot.expect_boot(result(text), kind="system")


# --- boot() against a fake QEMU -------------------------------------------------------------------------------

@pytest.fixture
def kernel_image(tmp_path):
    image = tmp_path / "bzImage"
    image.write_bytes(b"not really a kernel")
    return image


def test_boot_reads_console_until_qemu_exits(tmp_path, kernel_image):
    text = consoles.minik()
    toml, argv_file = fakeqemu.make(tmp_path, [(0, text[:50]), (0.2, text[50:])])
    log = []
    res = boot.boot("x86_64", kernel_image, append="panic=1", kind="minik", qemu_toml=toml, log=log.append,
                    console_log=tmp_path / "console.log")
    assert res.exit_reason == "exited" and res.returncode == 0
    assert res.console == boot.normalise_console(text)
    assert (tmp_path / "console.log").read_bytes() == text.encode()
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-m") + 1] == "8"
    assert argv[argv.index("-append") + 1] == "console=ttyS0,115200 panic=1"
    assert res.command[1:] == argv
    assert len(log) == 2


def test_boot_stops_a_hung_qemu_at_the_timeout(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, "Linux version 2.6.9 (x)\r\nCPU: half a li")], hang=True)
    res = boot.boot("x86_64", kernel_image, append="", timeout=1.5, qemu_toml=toml, log=lambda m: None)
    assert res.exit_reason == "timeout"
    assert 1.5 <= res.seconds < 10
    assert res.returncode is not None
    assert res.lines()[-1] == "CPU: half a li"


def test_boot_stops_qemu_soon_after_the_final_words(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.minik())], hang=True)
    res = boot.boot("x86_64", kernel_image, append="", timeout=15, qemu_toml=toml, log=lambda m: None)
    assert res.exit_reason == "stopped"
    assert res.seconds < 8
    boot.expect_boot(res, kind="minik")


def test_boot_uses_fallback_machine_on_an_older_qemu(tmp_path, kernel_image):
    boot._machine_cache.clear()
    toml, argv_file = fakeqemu.make(tmp_path, [(0, "x")], machines=("pc", "pc-i440fx-2.0"))
    boot.boot("i386", kernel_image, append="", qemu_toml=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-machine") + 1] == "pc,accel=tcg"


def test_boot_missing_inputs(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [])
    with pytest.raises(MkdumpError, match="does not exist: build the kernel first"):
        boot.boot("x86_64", tmp_path / "nope", append="", qemu_toml=toml)
    with pytest.raises(MkdumpError, match="initrd .* does not exist"):
        boot.boot("x86_64", kernel_image, append="", initrd=tmp_path / "nope", qemu_toml=toml)
    toml.write_text(toml.read_text().replace(str(tmp_path / "fake-qemu"), str(tmp_path / "no-qemu"), 1))
    with pytest.raises(MkdumpError, match="no-qemu .* was not found: install"):
        boot.boot("x86_64", kernel_image, append="", qemu_toml=toml)


def test_prove_minik_on_a_fake_console(tmp_path, kernel_image):
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=8064))])
    report = boot.prove_minik("x86_64", kernel_image, qemu_toml=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-m") + 1] == "8"
    assert "mem=7M dump_dev=0x300000" in argv[argv.index("-append") + 1]
    assert report["kind"] == "minik" and report["exit_reason"] == "exited"
    assert report["checks"][1] == "memory: 6000k/8064k available, given 8192k"


def test_prove_minik_fails_when_memory_exceeds_mem(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=65408))])
    with pytest.raises(boot.BootError, match="reports 65408k"):
        boot.prove_minik("x86_64", kernel_image, qemu_toml=toml, log=lambda m: None)


def test_silent_boot_is_rerun_with_earlyprintk(tmp_path, kernel_image):
    early = (consoles.banner() + " BIOS-e820: 000000fd00000000 - 0000010000000000 (reserved)\r\n"
             "Kernel panic - not syncing: Cannot find space for the kernel page tables\r\n")
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.FIRMWARE.format(append="x"))], early_chunks=[(0, early)])
    with pytest.raises(boot.BootError, match="Booted again with earlyprintk") as e:
        boot.prove_minik("x86_64", kernel_image, qemu_toml=toml, log=lambda m: None)
    assert "Cannot find space for the kernel page tables" in e.value.tail
    assert "earlyprintk=serial,ttyS0,115200" in e.value.result.append


def test_silent_boot_stays_silent_with_earlyprintk(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [], early_chunks=[])
    with pytest.raises(boot.BootError, match="printed nothing") as e:
        boot.prove_minik("x86_64", kernel_image, qemu_toml=toml, log=lambda m: None)
    assert "earlyprintk" not in e.value.result.append


def test_prove_system_on_a_fake_console(tmp_path, kernel_image):
    module = tmp_path / "m.ko"
    module.write_bytes(b"module bytes")
    token = boot.module_token(module.read_bytes())
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.system(token=token))])
    report = boot.prove_system("i386", kernel_image, module, toolchain_cc=["gcc"], qemu_toml=toml,
                               log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-initrd") + 1].endswith("initramfs.cpio.gz")
    assert report["module_token"] == token and report["initramfs_bytes"] > 0
    assert report["checks"][-1].endswith(f"token={token} length=16")


def test_boot_keeps_qemus_own_exit_status(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, "qemu: bad option\n")], exit_code=1, stderr="qemu: no such machine\n")
    res = boot.boot("x86_64", kernel_image, append="", qemu_toml=toml, log=lambda m: None)
    assert (res.exit_reason, res.returncode) == ("exited", 1)
    assert res.qemu_stderr == "qemu: no such machine\n"


def test_prove_minik_checks_reported_memory_against_mem_not_the_machine(tmp_path, kernel_image):
    # A 64 MiB machine whose kernel ignored mem=8M reports about 64 MiB: that must fail.
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=65408))])
    with pytest.raises(boot.BootError, match="reports 65408k of memory, but it was given 8192k"):
        boot.prove_minik("i386", kernel_image, memory_mb=64, qemu_toml=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-m") + 1] == "64"
    assert "mem=8M" in argv[argv.index("-append") + 1]
