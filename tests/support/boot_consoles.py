"""Console texts shaped like what 2.6.9 prints on a serial line under QEMU, built piece by piece so each test can
leave out or change exactly the line it is about. Line ends are CRLF as a serial console gives them."""

FIRMWARE = "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2)\r\nBooting from ROM..Bootdata ok (command line is {append})\r\n"


def banner(version="2.6.9"):
    return f"Linux version {version} (root@host) (gcc version 12.2.0 (Debian 12.2.0-14) ) #1 Thu Jan 1 00:00:00 UTC 1970\r\n"


def memory(free_kb, total_kb):
    return (f"Memory: {free_kb}k/{total_kb}k available (855k kernel code, 1652k reserved, 314k data, "
            "112k init)\r\n")


MIDDLE = ("Mount-cache hash table entries: 256 (order: 0, 4096 bytes)\r\n"
          "CPU: QEMU Virtual CPU version 2.5+ stepping 01\r\n"
          "BIOS bug, IO-APIC#0 ID 0 is already used!...\r\n"
          "Serial: 8250/16550 driver $Revision: 1.90 $ 8 ports, IRQ sharing disabled\r\n"
          "ttyS0 at I/O 0x3f8 (irq = 4) is a 16550A\r\n")

ROOT_PANIC = ("VFS: Cannot open root device \"<NULL>\" or unknown-block(0,0)\r\n"
              "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n"
              " <0>Rebooting in 1 seconds..")


def minik(total_kb=8064, free_kb=6000, version="2.6.9", late=ROOT_PANIC, middle=MIDDLE):
    return FIRMWARE.format(append="mem=7M") + banner(version) + memory(free_kb, total_kb) + middle + late


POWER_OFF = ("mkdump-init: powering off\r\n"
             "Power down.\r\n"
             "Kernel panic - not syncing: Attempted to kill init!\r\n")

MKEXEC_ENTRIES = ("mem", "dumpdev", "parameter", "path", "stats")


def mkexec_lines(ret=0, mount=0, missing=(), kernel_says=""):
    """What /init prints after loading /mkexec.ko: init_module's result, the proc mount, one line per
    /proc/mkexec entry (those in missing with ENOENT). kernel_says goes between the load and the result, as the
    loader's complaints do."""
    text = "mkdump-init: loading /mkexec.ko (6112 bytes)\r\n"
    if ret == 0:
        text += "mkexec: stand-in for x86_64 loaded, kernel side version 1\r\n"
    text += kernel_says
    text += (f"mkdump-init: /mkexec.ko init_module returned {ret}\r\n"
             f"mkdump-init: mount proc on /proc returned {mount}\r\n")
    for name in MKEXEC_ENTRIES:
        gone = name in missing or ret != 0 or mount != 0
        text += f"mkdump-init: /proc/mkexec/{name} " + ("missing: error -2" if gone else "present") + "\r\n"
    return text


def init_lines(ret=0, token="abc", module_printed=True, mkexec="", power_off=POWER_OFF):
    text = ("Freeing unused kernel memory: 112k freed\r\n"
            "mkdump-init: started\r\n"
            f"mkdump-init: loading /module.ko (4008 bytes) with \"token={token}\"\r\n")
    if module_printed:
        text += f"mkdump-boot-test-module: init ran token={token} length={len(token)}\r\n"
    if ret == -8:
        text += "module mkdump_boot_test: Unknown rela relocation: 4\r\n"
    text += f"mkdump-init: init_module returned {ret}\r\n" + mkexec + power_off
    return text


def system(ret=0, token="abc", module_printed=True, total_kb=65408, mkexec="", power_off=POWER_OFF):
    """A system boot's console; mkexec is what /init says about /mkexec.ko (mkexec_lines()), if anything."""
    return (FIRMWARE.format(append="panic=1") + banner() + memory(62328, total_kb) + MIDDLE
            + init_lines(ret, token, module_printed, mkexec, power_off))
