"""`scons repro` on the real Linux 2.6.9 tree, per arch: two complete builds under different conditions give
byte-identical outputs. The mkdump upstream files are stand-ins generated from the real tree (as in
test_real_pipeline.py). Minutes per arch: marked slow; skipped with the reason when the real archive is absent."""
import shutil
import tempfile
from pathlib import Path

import pytest

from support import project as P
from support.real_sources import make_real_sources

pytestmark = [pytest.mark.realkernel, pytest.mark.slow]

OUTPUTS = ("vmlinux.bin", "minik-bzImage", "minik-System.map", "system-bzImage", "system-System.map", "system-config",
           "system-modules.tar", "mkexec.ko", "mkdutils.tar",
           "manifest.json")


@pytest.fixture(scope="module")
def real_sources(real_linux_tarball, tmp_path_factory):
    return make_real_sources(real_linux_tarball, tmp_path_factory.mktemp("real-sources"))


@pytest.fixture
def open_dir():
    """Traversable by every user (pytest's directories are not), so that as root build b can run as another
    user; removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="mkdump-repro-real-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_repro_real_tree(arch, real_sources, open_dir):
    proj = P.copy_project(open_dir / "proj")
    r = P.scons(proj, "repro", f"arch={arch}", f"sources={real_sources}", "offline=1", f"cache={open_dir / 'cache'}",
                timeout=3 * 3600)
    report = proj / "build" / "repro" / "report.txt"
    assert r.returncode == 0, r.stderr[-6000:] + (report.read_text() if report.exists() else "")
    assert "repro: All 11 published files are identical in both builds." in r.stderr
    for name in OUTPUTS + (f"mkdump-load-{arch}",):
        rows = [l for l in r.stderr.splitlines() if l.startswith(f"repro: {arch}/{name} ")]
        assert len(rows) == 1 and rows[0].split()[-1] == "identical", name
    varied = [l.split()[2].rstrip(":") for l in r.stderr.splitlines() if l.startswith("repro:   varied ")]
    assert {"build", "environment", "umask", "jobs"} <= set(varied)
    print("\n" + "\n".join(l for l in r.stderr.splitlines() if l.startswith("repro:") and " diffoscope " not in l))
    assert not (proj / "build" / arch).exists(), "repro built nothing in the outer build directory"
