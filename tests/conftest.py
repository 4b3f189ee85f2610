import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "site_scons"))
sys.path.insert(0, str(ROOT / "tests"))

LINUX_NAMES = ("linux-2.6.9.tar.bz2", "linux-2.6.9.tar.gz", "linux-2.6.9.tar.xz")


@pytest.fixture(autouse=True)
def _ctrl_c_is_a_keyboard_interrupt():
    """pytest started in the background by a non-interactive shell inherits SIGINT ignored, and Python then leaves
    it ignored: the tests of Ctrl-C need what a terminal's run has, Python's own handler."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mkdump-build"


def find_real_linux_tarball():
    """The real linux-2.6.9 archive, from $MKDUMP_TEST_SOURCES or the default download cache, or None."""
    dirs = []
    if os.environ.get("MKDUMP_TEST_SOURCES"):
        dirs.append(Path(os.environ["MKDUMP_TEST_SOURCES"]))
    dirs.append(_default_cache() / "files")
    for d in dirs:
        for name in LINUX_NAMES:
            if (d / name).is_file():
                return d / name
    return None


@pytest.fixture(scope="session")
def real_linux_tarball():
    path = find_real_linux_tarball()
    if path is None:
        pytest.skip("the real linux-2.6.9 archive is not present: put linux-2.6.9.tar.bz2 in a directory named "
                    "by MKDUMP_TEST_SOURCES (or in the download cache) to run this test")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The fixture kernel's upstream files (support.project.make_fixture_sources), made once per test module."""
    from support import project as P
    return P.make_fixture_sources(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="module")
def served(sources):
    """`sources` served over loopback under /mirror/."""
    from support.httpserver import serve
    with serve() as server:
        for name, data in sources.files.items():
            server.add("/mirror/" + name, data)
        yield server
