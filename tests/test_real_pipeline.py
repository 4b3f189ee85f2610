"""The whole product on the real Linux 2.6.9 tree: `scons arch=<arch>` then `scons boot-test`, for both arches.

The mini kernel is built with every dump driver family whose controller QEMU emulates, so the boot test proves
that each finds its disk (the default family alone is built by test_boot_real.py and test_repro_real.py).

The mkdump upstream files are unreachable, so stand-ins generated from the real tree take their place. Minutes per
arch: marked slow; skipped with the reason when the real archive is absent.
"""
import json
import subprocess
import time

import pytest

from support import project as P
from support.real_sources import make_real_sources

pytestmark = [pytest.mark.realkernel, pytest.mark.slow]

# The families configs/dump-drivers.toml says QEMU emulates (tests/test_dumpdisk.py checks each has its disk).
EMULATED = ("ide", "scsi-sd", "tmscsim", "usb-storage")


@pytest.fixture(scope="module")
def real_sources(real_linux_tarball, tmp_path_factory):
    return make_real_sources(real_linux_tarball, tmp_path_factory.mktemp("real-sources"))


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_build_check_and_boot(arch, real_sources, tmp_path):
    proj = P.copy_project(tmp_path / "proj")
    args = [f"arch={arch}", f"sources={real_sources}", "offline=1", f"cache={tmp_path / 'cache'}",
            f"dump_driver={','.join(EMULATED)}"]
    start = time.monotonic()
    r = P.scons(proj, *args, timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]
    build_seconds = time.monotonic() - start

    arch_dir = proj / "build" / arch
    manifest = json.loads((arch_dir / "out" / "manifest.json").read_text())
    assert manifest["inputs"]["sources"]["linux"]["tree_sha256"] == \
        "02573e89056d5b89b65ae3b62808b3758dbe0943896dd683665491fca8dc36c3"
    assert len(manifest["checks"]) >= 10 and all(c["ok"] for c in manifest["checks"])
    minik_patch = manifest["inputs"]["patches"]["minik"]["report"]
    tolerated = [h for p in minik_patch["patches"] for f in p["files"] for h in f["hunks"]
                 if h["status"].startswith("keyword-")]
    assert len(tolerated) == 4, "exactly the four CVS $Id$ hunks of the stand-in are tolerated"
    assert manifest["inputs"]["configs"]["minik"]["audited"]["DUMP_MINI_KERNEL"] == "y"

    # the whole system kernel installed: its modules, and kmod's dependency data in module-init-tools 3.1's form
    dest = tmp_path / "stage"
    r = P.scons(proj, "install", f"DESTDIR={dest}", *args, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]
    moddir = dest / "lib" / "modules" / "2.6.9"
    # the default system configuration builds its drivers in: its modules are the ones .config makes `m`
    built_m = (arch_dir / "obj" / "system" / ".config").read_text().count("=m\n")
    kos = sorted(str(p.relative_to(moddir)) for p in moddir.rglob("*.ko"))
    assert "extra/mkexec.ko" in kos and (len(kos) > 1) == (built_m > 0)
    assert (dest / "boot" / "System.map-2.6.9").is_file() and (dest / "boot" / "config-2.6.9").is_file()
    from mkdump.modules import check_dep_format
    assert check_dep_format(str(moddir / "modules.dep"), "2.6.9") == []
    deps = (moddir / "modules.dep").read_text().splitlines()
    assert sorted(line.split(":")[0] for line in deps) == sorted("/lib/modules/2.6.9/" + k for k in kos)
    assert not (moddir / "build").exists() and not (moddir / "source").exists()
    # every symbol the modules use is the kernel's (System.map) or another module's: kmod reads 2.6.9's modules
    check = subprocess.run(["depmod", "-n", "-e", "-b", str(dest), "-F", str(dest / "boot" / "System.map-2.6.9"),
                            "2.6.9"], capture_output=True, text=True)
    assert check.returncode == 0 and "unknown symbol" not in check.stderr, check.stderr

    r = P.scons(proj, "boot-test", *args, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]
    boot = json.loads((arch_dir / "reports" / "boot-test.json").read_text())
    minik = boot["minik"]["checks"]
    assert any(c.startswith("memory: ") for c in minik)
    assert any(c.startswith("late point: ") and "Unable to mount root fs" in c for c in minik)
    # each emulated controller's driver finds a partitioned disk, in the mini kernel's own memory, and dump_dev
    # names one of its partitions; a USB disk appears only after the boot has ended, which the report says
    disks = {d["disk"]: d for d in boot["minik"]["dump_disks"]}
    assert set(disks) == {"ide-piix", "scsi-sym53c8xx", "scsi-tmscsim", "usb-storage-uhci"}
    for name, device, value in (("ide-piix", "hda", "0x300002"), ("scsi-sym53c8xx", "sda", "0x800002"),
                                ("scsi-tmscsim", "sda", "0x800002")):
        disk = disks[name]
        assert disk["proved"] and disk["partitions"] == [f"{device}1", f"{device}2"], name
        assert disk["dump_dev"] == {"name": f"{device}2", "value": value} and 0 < disk["memory_kb"] <= 8192
        assert (arch_dir / "reports" / f"boot-minik-disk-{name}.log").is_file()
    assert not disks["usb-storage-uhci"]["proved"] and "hub thread" in disks["usb-storage-uhci"]["reason"]
    assert any("init_module returned 0" in c for c in boot["system"]["checks"])
    assert boot["system"]["mkexec"]["init_module_returned"] == 0, "the system kernel loaded our mkexec.ko"
    assert len(boot["system"]["mkexec"]["proc_mkexec_present"]) == 5, "mem, dumpdev, parameter, path, stats"

    start = time.monotonic()
    r = P.scons(proj, "-q", *args)
    noop = time.monotonic() - start
    assert r.returncode == 0, "a no-op run found work to do: " + r.stdout + r.stderr
    print(f"{arch}: full build {build_seconds:.0f} s, no-op {noop:.2f} s")
