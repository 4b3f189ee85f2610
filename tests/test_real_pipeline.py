"""The whole product on the real Linux 2.6.9 tree: `scons arch=<arch>` then `scons boot-test`, for both arches.

The mkdump upstream files are unreachable, so stand-ins generated from the real tree take their place. Minutes per
arch: marked slow; skipped with the reason when the real archive is absent.
"""
import json
import time

import pytest

from support import project as P
from support.real_sources import make_real_sources

pytestmark = [pytest.mark.realkernel, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_sources(real_linux_tarball, tmp_path_factory):
    return make_real_sources(real_linux_tarball, tmp_path_factory.mktemp("real-sources"))


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_build_check_and_boot(arch, real_sources, tmp_path):
    proj = P.copy_project(tmp_path / "proj")
    args = [f"arch={arch}", f"sources={real_sources}", "offline=1", f"cache={tmp_path / 'cache'}"]
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

    r = P.scons(proj, "boot-test", *args, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr[-6000:]
    boot = json.loads((arch_dir / "reports" / "boot-test.json").read_text())
    minik = boot["minik"]["checks"]
    assert any(c.startswith("memory: ") for c in minik)
    assert any(c.startswith("late point: ") and "Unable to mount root fs" in c for c in minik)
    # the default dump driver (IDE PIIX) finds a partitioned disk on the board's IDE controller, in the mini
    # kernel's own memory, and dump_dev names one of its partitions
    [disk] = boot["minik"]["dump_disks"]
    assert disk["disk"] == "ide-piix" and disk["partitions"] == ["hda1", "hda2"]
    assert disk["dump_dev"] == {"name": "hda2", "value": "0x300002"} and 0 < disk["memory_kb"] <= 8192
    assert (arch_dir / "reports" / "boot-minik-disk-ide-piix.log").is_file()
    assert any("init_module returned 0" in c for c in boot["system"]["checks"])
    assert boot["system"]["mkexec"]["init_module_returned"] == 0, "the system kernel loaded our mkexec.ko"
    assert len(boot["system"]["mkexec"]["proc_mkexec_present"]) == 5, "mem, dumpdev, parameter, path, stats"

    start = time.monotonic()
    r = P.scons(proj, "-q", *args)
    noop = time.monotonic() - start
    assert r.returncode == 0, "a no-op run found work to do: " + r.stdout + r.stderr
    print(f"{arch}: full build {build_seconds:.0f} s, no-op {noop:.2f} s")
