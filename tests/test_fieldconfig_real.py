"""The user's own system kernel, for real: each field configuration (../shared/field-configs) and each arch's
defconfig goes through `scons system_config=...` on the real 2.6.9 tree (bzImage, every module, mkexec.ko with
symbol versions, every check), then `scons boot-test` boots it under QEMU: both CPUs up where the config is SMP,
an ext3 disk on a controller it drives mounted after loading its modules, and mkexec.ko loaded.

Tens of minutes per configuration on two cores, so these carry their own marker and CI leaves them out:
    ./bootstrap python -m pytest -m fieldconfig            # all of them
    ./bootstrap python -m pytest -m fieldconfig -k rhel4   # one
The ids: defconfig-x86_64, defconfig-i386, rhel4-x86_64, p4-smp-i386, vanilla-up-i386.
"""
import json

import pytest

from support import project as P
from support.real_sources import make_real_sources

pytestmark = [pytest.mark.realkernel, pytest.mark.slow, pytest.mark.fieldconfig]

CONFIGS = {
    "defconfig-x86_64": ("x86_64", "defconfig"),
    "defconfig-i386": ("i386", "defconfig"),
    "rhel4-x86_64": ("x86_64", "x86_64-rhel4-2.6.9-34.ELsmp.config"),
    "p4-smp-i386": ("i386", "i386-p4-smp-2.6.9-udm1.config"),
    "vanilla-up-i386": ("i386", "i386-2.6.9-vanilla-up.config"),
}


@pytest.fixture(scope="module")
def real_sources(real_linux_tarball, tmp_path_factory):
    return make_real_sources(real_linux_tarball, tmp_path_factory.mktemp("real-sources"))


@pytest.mark.parametrize("arch, config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_the_users_system_kernel_builds_and_boots(arch, config, real_sources, tmp_path):
    system_config = config if config == "defconfig" else P.FIELD_CONFIGS / config
    if config != "defconfig" and not system_config.is_file():
        pytest.skip(f"{system_config} is not present (field configurations are test data outside the repository)")
    proj = P.copy_project(tmp_path / "proj")
    args = [f"arch={arch}", f"sources={real_sources}", "offline=1", f"cache={tmp_path / 'cache'}",
            f"system_config={system_config}"]
    r = P.scons(proj, *args, timeout=4 * 3600)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    arch_dir = proj / "build" / arch
    manifest = json.loads((arch_dir / "out" / "manifest.json").read_text())
    checks = {c["name"]: c for c in manifest["checks"]}
    assert all(c["ok"] for c in manifest["checks"]), [c for c in manifest["checks"] if not c["ok"]]
    system = kconfig_values(arch_dir / "obj" / "system" / ".config")
    versions = checks["mkexec.ko symbol versions"]["figure"]
    if system.get("MODVERSIONS") == "y":
        assert versions.endswith("CRCs, all equal to the system kernel's")
    else:
        assert versions == "the system kernel has no MODVERSIONS: none needed"
    # Every module kbuild compiled (it lists them in .tmp_versions) was linked: none was lost on the way.
    modules = {p.stem for p in (arch_dir / "obj" / "system").rglob("*.ko")}
    listed = {p.stem for p in (arch_dir / "obj" / "system" / ".tmp_versions").glob("*.mod")}
    print(f"\n{config} ({arch}): {len(modules)} modules")
    assert modules == listed and (modules or "m" not in system.values())

    r = P.scons(proj, "boot-test", *args, timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr[-8000:]
    boot = json.loads((arch_dir / "reports" / "boot-test.json").read_text())["system"]
    print(json.dumps(boot["checks"], indent=1))
    if system.get("SMP") == "y":
        assert "cpus: Brought up 2 CPUs" in boot["checks"]
    assert boot["disk"]["modules"] or system.get("EXT3_FS") == "y"
    assert any(c.startswith("file read back from the disk: 'mkdump boot proof ") for c in boot["checks"])
    assert boot["mkexec"]["init_module_returned"] == 0


def kconfig_values(path):
    from mkdump.kconfig import read_config_values
    return read_config_values(path)
