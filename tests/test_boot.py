"""Boot proofs without a real kernel: QEMU settings and command line, console parsing and the checks on recorded
consoles, and the run/timeout machinery against a fake QEMU."""
import gzip
import hashlib

import pytest

from mkdump import arch as arches
from mkdump import boot, initramfs
from mkdump.errors import MkdumpError
from support import boot_consoles as consoles
from support import boot_fakeqemu as fakeqemu
from support.boot_newc import parse_newc


def result(text, reason="exited", stderr=""):
    return boot.BootResult(console=boot.normalise_console(text), exit_reason=reason, seconds=1.0,
                           qemu_stderr=stderr)


# --- the arch files' [qemu] ---------------------------------------------------------------------------------

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
    assert boot.load_qemu_config("x86_64", arch_dir=toml)["memory_mb"] == 64
    assert boot.load_qemu_config("x86_64", "minik", arch_dir=toml)["memory_mb"] == 8
    assert boot.load_qemu_config("i386", "minik", arch_dir=toml)["memory_mb"] == 64


def test_qemu_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "x86_64.toml"
    bad.write_text("[x86_64\n")
    with pytest.raises(MkdumpError, match="not valid TOML"):
        boot.load_qemu_config("x86_64", arch_dir=tmp_path)
    real = (arches.ARCH_DIR / "x86_64.toml").read_text()
    bad.write_text(real[:real.index("\n[qemu]\n") + 1] + '[qemu]\nbinary = "q"\n')
    with pytest.raises(MkdumpError, match="lacks machine, accel"):
        boot.load_qemu_config("x86_64", arch_dir=tmp_path)
    # The QEMU settings are an arch file's tables now: an arch without a file has none.
    with pytest.raises(MkdumpError, match=r"no arm\.toml"):
        boot.load_qemu_config("arm", arch_dir=tmp_path)
    with pytest.raises(MkdumpError, match="cannot read"):
        boot.load_qemu_config("x86_64", arch_dir=tmp_path / "absent")


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


# --- the /mkexec.ko part of a system boot ---------------------------------------------------------------------

def test_system_console_with_mkexec_passes():
    checks = boot.expect_boot(result(consoles.system(token="f00d", mkexec=consoles.mkexec_lines())), kind="system",
                              module_token="f00d", expect_mkexec=True)
    assert checks[-3:] == ["module init: mkdump-boot-test-module: init ran token=f00d length=4",
                           "mkexec init_module returned 0",
                           "mkexec proc entries: /proc/mkexec/mem /proc/mkexec/dumpdev /proc/mkexec/parameter "
                           "/proc/mkexec/path /proc/mkexec/stats present"]


def test_mkexec_facts_read_from_the_console():
    lines = result(consoles.system(mkexec=consoles.mkexec_lines(missing=("stats",)))).lines()
    facts = boot.mkexec_facts(lines)
    assert facts["init_module_returned"] == 0 and facts["proc_mount_returned"] == 0
    assert facts["proc_mkexec"] == {"/proc/mkexec/mem": 0, "/proc/mkexec/dumpdev": 0, "/proc/mkexec/parameter": 0,
                                    "/proc/mkexec/path": 0, "/proc/mkexec/stats": -2}
    assert lines[facts["end"] - 1] == "mkdump-init: /proc/mkexec/stats missing: error -2"
    assert not facts["absent"] and facts["read_error"] is None
    assert boot.mkexec_facts(result(consoles.system()).lines())["init_module_returned"] is None


def test_mkexec_unknown_symbol_names_errno_kernel_words_and_the_patch():
    text = consoles.system(mkexec=consoles.mkexec_lines(
        ret=-2, kernel_says="mkexec: Unknown symbol mkexec_stub_version\r\n"))
    with pytest.raises(boot.BootError, match=r"/mkexec.ko init_module returned -2 ENOENT.*kernel said: mkexec: "
                                             r"Unknown symbol mkexec_stub_version.*apply PATCH/mkexec-v1.patch"):
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)


def test_mkexec_version_magic_asks_for_a_rebuild():
    text = consoles.system(mkexec=consoles.mkexec_lines(
        ret=-8, kernel_says="mkexec: version magic '2.6.9 gcc-3.4' should be '2.6.9 gcc-12.2'\r\n"))
    with pytest.raises(boot.BootError, match="returned -8 ENOEXEC.*version magic.*rebuild it against this system"):
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)


def test_mkexec_refused_silently_points_at_the_check_stage():
    with pytest.raises(boot.BootError, match=r"returned -8 ENOEXEC, so the system kernel refused mkexec.ko; run "
                                             r"the check stage"):
        boot.expect_boot(result(consoles.system(mkexec=consoles.mkexec_lines(ret=-8))), kind="system",
                         expect_mkexec=True)


def test_proc_mkexec_missing_names_the_entries():
    text = consoles.system(mkexec=consoles.mkexec_lines(missing=("mem", "path")))
    with pytest.raises(boot.BootError, match=r"mkexec.ko loaded but /proc/mkexec/mem \(-2 ENOENT\), "
                                             r"/proc/mkexec/path \(-2 ENOENT\) did not appear") as e:
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)
    assert "mkdump-init: /proc/mkexec/mem missing: error -2" in e.value.tail


def test_proc_mkexec_entry_not_reported_counts_as_missing():
    text = consoles.system(mkexec=consoles.mkexec_lines()).replace("mkdump-init: /proc/mkexec/stats present\r\n", "")
    with pytest.raises(boot.BootError, match=r"/proc/mkexec/stats \(not checked\) did not appear"):
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)


def test_proc_mount_failure_names_proc_fs():
    with pytest.raises(boot.BootError, match="mounting proc on /proc returned -19 ENODEV.*CONFIG_PROC_FS=y"):
        boot.expect_boot(result(consoles.system(mkexec=consoles.mkexec_lines(mount=-19))), kind="system",
                         expect_mkexec=True)


def test_oops_in_mkexec_init_fails_the_boot():
    mkexec = ("mkdump-init: loading /mkexec.ko (6112 bytes)\r\n"
              "Unable to handle kernel NULL pointer dereference at 0000000000000000 RIP:\r\n"
              "Oops: 0002 [1]\r\n")
    text = consoles.system(mkexec=mkexec, power_off="Kernel panic - not syncing: Attempted to kill init!\r\n")
    with pytest.raises(boot.BootError, match="failed at line .* while loading mkexec.ko: 'Unable to handle kernel "
                                             "NULL pointer"):
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)


def test_mkexec_never_reported():
    with pytest.raises(boot.BootError, match="never reported /mkexec.ko's init_module result"):
        boot.expect_boot(result(consoles.system()), kind="system", expect_mkexec=True)
    hung = consoles.system(mkexec="mkdump-init: loading /mkexec.ko (6112 bytes)\r\n", power_off="")
    with pytest.raises(boot.BootError, match="never reported /mkexec.ko's init_module result"):
        boot.expect_boot(result(hung, reason="timeout"), kind="system", expect_mkexec=True)


def test_mkexec_absent_from_the_initramfs():
    text = consoles.system(mkexec="mkdump-init: no /mkexec.ko in the initramfs\r\n")
    with pytest.raises(boot.BootError, match="found no /mkexec.ko in the initramfs"):
        boot.expect_boot(result(text), kind="system", expect_mkexec=True)
    # Without mkexec expected, its lines are not judged.
    boot.expect_boot(result(text), kind="system")
    boot.expect_boot(result(consoles.system(mkexec=consoles.mkexec_lines(ret=-2))), kind="system")


def test_mkexec_is_a_system_boot_check_only():
    with pytest.raises(ValueError, match="only a system boot"):
        boot.expect_boot(result(consoles.minik()), kind="minik", expect_mkexec=True)


def test_init_binary_prints_what_boot_py_reads(tmp_path):
    """init.c and boot.py name the same /proc/mkexec entries and console phrases; read them from the binary."""
    data = initramfs.build_init("x86_64", toolchain_cc=["gcc"], out_path=tmp_path / "init").read_bytes()
    for path in boot.MKEXEC_PROC_ENTRIES:
        assert path.encode() + b"\0" in data
    for phrase in (b"/mkexec.ko\0", b"mkdump-init: /mkexec.ko init_module returned ",
                   b"mkdump-init: mount proc on /proc returned ", b"mkdump-init: no /mkexec.ko in the initramfs\n",
                   b" missing: error ", b" present\n"):
        assert phrase in data


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
    res = boot.boot("x86_64", kernel_image, append="panic=1", kind="minik", arch_dir=toml, log=log.append,
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
    res = boot.boot("x86_64", kernel_image, append="", timeout=1.5, arch_dir=toml, log=lambda m: None)
    assert res.exit_reason == "timeout"
    assert 1.5 <= res.seconds < 10
    assert res.returncode is not None
    assert res.lines()[-1] == "CPU: half a li"


def test_boot_stops_qemu_soon_after_the_final_words(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.minik())], hang=True)
    res = boot.boot("x86_64", kernel_image, append="", timeout=15, arch_dir=toml, log=lambda m: None)
    assert res.exit_reason == "stopped"
    assert res.seconds < 8
    boot.expect_boot(res, kind="minik")


@pytest.mark.parametrize("split", ["Kernel pa", "\r", "\r\nPower do"])
def test_final_words_split_across_console_chunks_still_stop_qemu(tmp_path, kernel_image, split):
    text = "Linux version 2.6.9 (x)\r\nSome line\r\nPower down.\r\n" if "Power" in split else consoles.minik()
    cut = text.index(split) + len(split)
    toml, _ = fakeqemu.make(tmp_path, [(0, text[:cut]), (0.3, text[cut:])], hang=True)
    res = boot.boot("x86_64", kernel_image, append="", timeout=15, arch_dir=toml, log=lambda m: None)
    assert res.exit_reason == "stopped"
    assert res.console == boot.normalise_console(text)


def test_boot_uses_fallback_machine_on_an_older_qemu(tmp_path, kernel_image):
    boot._machine_cache.clear()
    toml, argv_file = fakeqemu.make(tmp_path, [(0, "x")], machines=("pc", "pc-i440fx-2.0"))
    boot.boot("i386", kernel_image, append="", arch_dir=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-machine") + 1] == "pc,accel=tcg"


def test_boot_missing_inputs(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [])
    with pytest.raises(MkdumpError, match="does not exist: build the kernel first"):
        boot.boot("x86_64", tmp_path / "nope", append="", arch_dir=toml)
    with pytest.raises(MkdumpError, match="initrd .* does not exist"):
        boot.boot("x86_64", kernel_image, append="", initrd=tmp_path / "nope", arch_dir=toml)
    arch_file = toml / "x86_64.toml"
    arch_file.write_text(arch_file.read_text().replace(str(tmp_path / "fake-qemu"), str(tmp_path / "no-qemu"), 1))
    with pytest.raises(MkdumpError, match="no-qemu .* was not found: install"):
        boot.boot("x86_64", kernel_image, append="", arch_dir=toml)


def test_prove_minik_on_a_fake_console(tmp_path, kernel_image):
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=8064))])
    report = boot.prove_minik("x86_64", kernel_image, arch_dir=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-m") + 1] == "8"
    assert "mem=7M dump_dev=0x300000" in argv[argv.index("-append") + 1]
    assert report["kind"] == "minik" and report["exit_reason"] == "exited"
    assert report["checks"][1] == "memory: 6000k/8064k available, given 8192k"


def test_prove_minik_fails_when_memory_exceeds_mem(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=65408))])
    with pytest.raises(boot.BootError, match="reports 65408k"):
        boot.prove_minik("x86_64", kernel_image, arch_dir=toml, log=lambda m: None)


def test_silent_boot_is_rerun_with_earlyprintk(tmp_path, kernel_image):
    early = (consoles.banner() + " BIOS-e820: 000000fd00000000 - 0000010000000000 (reserved)\r\n"
             "Kernel panic - not syncing: Cannot find space for the kernel page tables\r\n")
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.FIRMWARE.format(append="x"))], early_chunks=[(0, early)])
    with pytest.raises(boot.BootError, match="Booted again with earlyprintk") as e:
        boot.prove_minik("x86_64", kernel_image, arch_dir=toml, log=lambda m: None)
    assert "Cannot find space for the kernel page tables" in e.value.tail
    assert "earlyprintk=serial,ttyS0,115200" in e.value.result.append


def test_silent_boot_stays_silent_with_earlyprintk(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [], early_chunks=[])
    with pytest.raises(boot.BootError, match="printed nothing") as e:
        boot.prove_minik("x86_64", kernel_image, arch_dir=toml, log=lambda m: None)
    assert "earlyprintk" not in e.value.result.append


def test_prove_system_on_a_fake_console(tmp_path, kernel_image):
    module = tmp_path / "m.ko"
    module.write_bytes(b"module bytes")
    token = boot.module_token(module.read_bytes())
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.system(token=token))])
    report = boot.prove_system("i386", kernel_image, module, toolchain_cc=["gcc"], arch_dir=toml,
                               log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-initrd") + 1].endswith("initramfs.cpio.gz")
    assert report["module_token"] == token and report["initramfs_bytes"] > 0
    assert report["checks"][-1].endswith(f"token={token} length=16")


def test_prove_system_with_mkexec_on_a_fake_console(tmp_path, kernel_image):
    module = tmp_path / "m.ko"
    module.write_bytes(b"module bytes")
    mkexec_ko = tmp_path / "mkexec.ko"
    mkexec_ko.write_bytes(b"mkexec module bytes")
    token = boot.module_token(module.read_bytes())
    kept = []
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
        kept.append(tmp_path / run / "initrd.gz")
        toml, _ = fakeqemu.make(tmp_path / run, [(0, consoles.system(token=token, mkexec=consoles.mkexec_lines()))],
                                keep_initrd=kept[-1])
        report = boot.prove_system("x86_64", kernel_image, module, toolchain_cc=["gcc"], extra_module=mkexec_ko,
                                   arch_dir=toml, log=lambda m: None)
    assert kept[0].read_bytes() == kept[1].read_bytes()
    members = {m["name"]: m["data"] for m in parse_newc(gzip.decompress(kept[0].read_bytes()))}
    assert members["mkexec.ko"] == b"mkexec module bytes" and members["module.ko"] == b"module bytes"
    assert report["checks"][-2] == "mkexec init_module returned 0"
    assert report["mkexec"] == {
        "module": str(mkexec_ko), "bytes": 19, "sha256": hashlib.sha256(b"mkexec module bytes").hexdigest(),
        "init_module_returned": 0, "proc_mount_returned": 0, "proc_mkexec_present": list(boot.MKEXEC_PROC_ENTRIES)}


def test_prove_system_fails_when_mkexec_entries_are_missing(tmp_path, kernel_image):
    module = tmp_path / "m.ko"
    module.write_bytes(b"module bytes")
    token = boot.module_token(module.read_bytes())
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.system(token=token, mkexec=consoles.mkexec_lines(
        missing=("mem",))))])
    with pytest.raises(boot.BootError, match="/proc/mkexec/mem .* did not appear"):
        boot.prove_system("x86_64", kernel_image, module, toolchain_cc=["gcc"], extra_module=module,
                          arch_dir=toml, log=lambda m: None)
    with pytest.raises(MkdumpError, match="cannot read the mkexec module .*absent.ko"):
        boot.prove_system("x86_64", kernel_image, module, toolchain_cc=["gcc"], extra_module=tmp_path / "absent.ko",
                          arch_dir=toml, log=lambda m: None)


def test_prove_system_without_mkexec_has_no_mkexec_member(tmp_path, kernel_image):
    module = tmp_path / "m.ko"
    module.write_bytes(b"module bytes")
    token = boot.module_token(module.read_bytes())
    toml, _ = fakeqemu.make(tmp_path, [(0, consoles.system(token=token))], keep_initrd=tmp_path / "initrd.gz")
    report = boot.prove_system("x86_64", kernel_image, module, toolchain_cc=["gcc"], arch_dir=toml,
                               log=lambda m: None)
    assert "mkexec" not in report
    names = {m["name"] for m in parse_newc(gzip.decompress((tmp_path / "initrd.gz").read_bytes()))}
    assert "mkexec.ko" not in names and "module.ko" in names


def test_boot_keeps_qemus_own_exit_status(tmp_path, kernel_image):
    toml, _ = fakeqemu.make(tmp_path, [(0, "qemu: bad option\n")], exit_code=1, stderr="qemu: no such machine\n")
    res = boot.boot("x86_64", kernel_image, append="", arch_dir=toml, log=lambda m: None)
    assert (res.exit_reason, res.returncode) == ("exited", 1)
    assert res.qemu_stderr == "qemu: no such machine\n"


def test_prove_minik_checks_reported_memory_against_mem_not_the_machine(tmp_path, kernel_image):
    # A 64 MiB machine whose kernel ignored mem=8M reports about 64 MiB: that must fail.
    toml, argv_file = fakeqemu.make(tmp_path, [(0, consoles.minik(total_kb=65408))])
    with pytest.raises(boot.BootError, match="reports 65408k of memory, but it was given 8192k"):
        boot.prove_minik("i386", kernel_image, memory_mb=64, arch_dir=toml, log=lambda m: None)
    argv = fakeqemu.argv(argv_file)
    assert argv[argv.index("-m") + 1] == "64"
    assert "mem=8M" in argv[argv.index("-append") + 1]


def test_build_test_module_makes_it_kbuild_style(tmp_path, monkeypatch):
    # An outer make's flags (here -n) must not reach the module build, as for the kernel builds.
    monkeypatch.setenv("MAKEFLAGS", "n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(
        "modules:\n\t@printf '%s\\n' '$(ARCH)' '$(SUBDIRS)' '$(filter -j%,$(MAKEFLAGS))' "
        "'$(findstring --jobserver-auth=,$(MAKEFLAGS))' > $(SUBDIRS)/mkdump_boot_test.ko\n")
    out = tmp_path / "out"
    ko = boot.build_test_module(tree, out, make_args=["ARCH=i386"], jobs=2, log=lambda m: None)
    assert ko == out / "mkdump_boot_test.ko"
    # Its two jobs are slots of the jobserver every make of the run shares.
    assert ko.read_text().splitlines() == ["i386", str(out), "-j2", "--jobserver-auth="]
    assert sorted(p.name for p in boot.MODULE_SOURCE.iterdir()) == sorted(
        p.name for p in out.iterdir() if p.name != "mkdump_boot_test.ko")


def test_build_test_module_failure_names_the_command(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("modules:\n\t@echo 'mkdump_boot_test.c:3: error: oops'; exit 1\n")
    with pytest.raises(MkdumpError, match=r"(?s)failed with `make -j1 -C .* modules`.*mkdump_boot_test.c:3: error: oops"):
        boot.build_test_module(tree, tmp_path / "out", make_args=[], log=lambda m: None)


def test_a_timer_check_defeated_by_emulation_timing_is_booted_again():
    panic = result("..MP-BIOS bug: 8254 timer not connected to IO-APIC\nKernel panic - not syncing: IO-APIC + "
                   "timer doesn't work!  Boot with apic=debug\n")
    good = result(consoles.minik())
    runs, said = iter([panic, good]), []
    got, retried = boot._boot_steadily(lambda: next(runs), said.append)
    assert got is good and retried == 1 and "timer check failed under emulation" in said[0]
    # At most BOOT_ATTEMPTS boots: then the last console is judged as it is, and fails with its panic.
    runs = iter([panic] * boot.BOOT_ATTEMPTS)
    got, retried = boot._boot_steadily(lambda: next(runs), said.append)
    assert got is panic and retried == boot.BOOT_ATTEMPTS - 1
    with pytest.raises(boot.BootError, match="IO-APIC \\+ timer doesn't work"):
        boot.expect_boot(got, kind="minik")
    # Any other failure is judged at once.
    other = result("Kernel panic - not syncing: Attempted to kill init!\n")
    assert boot._boot_steadily(lambda: other, said.append) == (other, 0)
