"""The real linux-2.6.9 archive through the product: unpacked and proved against the pin in patches/sources.toml."""
from pathlib import Path

import pytest

import mkdump.fetch
from mkdump.fetch import Fetcher
from mkdump.sources import load_sources
from mkdump.unpack import unpack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def linux():
    return load_sources(ROOT / "patches" / "sources.toml")["linux"]


class NoNetwork:
    def get(self, *args, **kwargs):
        raise AssertionError("the network was used")


@pytest.mark.realkernel
def test_real_archive_unpacks_to_the_pinned_tree(real_linux_tarball, linux, tmp_path):
    dest = tmp_path / "src" / "linux-2.6.9"
    assert unpack(real_linux_tarball, dest, expect_tree_sha256=linux.tree_sha256, log=lambda m: None) \
        == linux.tree_sha256
    makefile = (dest / "Makefile").read_text(encoding="latin-1")
    assert "VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL = 9\n" in makefile
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["linux-2.6.9"]


@pytest.mark.realkernel
def test_real_archive_from_a_sources_dir_offline(real_linux_tarball, linux, tmp_path, monkeypatch):
    # The packager's case: `scons fetch sources=DIR offline=1`, with the tree hash checked.
    def fetcher():
        return Fetcher(tmp_path / "cache", sources_dirs=[real_linux_tarball.parent], offline=True,
                       session=NoNetwork(), log=lambda m: None)

    got = fetcher().fetch(linux)
    assert (got.origin, got.path, got.tree_sha256) == ("sources", str(real_linux_tarball), linux.tree_sha256)

    def no_unpack(archive, scratch):
        raise AssertionError("a proved archive was unpacked again")

    monkeypatch.setattr(mkdump.fetch, "tree_sha256_of_archive", no_unpack)
    assert fetcher().fetch(linux) == got
    assert sorted(p.name for p in (tmp_path / "cache" / "tmp").iterdir()) == []
