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


def init_lines(ret=0, token="abc", module_printed=True):
    text = ("Freeing unused kernel memory: 112k freed\r\n"
            "mkdump-init: started\r\n"
            f"mkdump-init: loading /module.ko (4008 bytes) with \"token={token}\"\r\n")
    if module_printed:
        text += f"mkdump-boot-test-module: init ran token={token} length={len(token)}\r\n"
    if ret == -8:
        text += "module mkdump_boot_test: Unknown rela relocation: 4\r\n"
    text += (f"mkdump-init: init_module returned {ret}\r\n"
             "mkdump-init: powering off\r\n"
             "Power down.\r\n"
             "Kernel panic - not syncing: Attempted to kill init!\r\n")
    return text


def system(ret=0, token="abc", module_printed=True, total_kb=65408):
    return (FIRMWARE.format(append="panic=1") + banner() + memory(62328, total_kb) + MIDDLE
            + init_lines(ret, token, module_printed))
