"""Hostile archives reaching the real scons from a sources= directory and from a mirror: refused, and nothing
outside the build and cache directories is written (issue 13)."""
import shutil

import pytest

from support import hostile
from support import project as P


def hostile_sources(sources, dest, name, victim, variant):
    """A copy of the fixture sources whose `name` is replaced by a hostile archive (bzip2, as Linux ships)."""
    dest.mkdir()
    for other in sources.files:
        shutil.copy(sources.dir / other, dest / other)
    # A genuine-looking start, then the escape.
    members = [hostile.member("linux-2.6.9/Makefile", data=b"VERSION = 2\n")] + hostile.escape_variants(victim)[variant]
    hostile.write_archive(dest / name, members, mode="w:bz2")
    return dest


def check_refused(r, victim):
    assert r.returncode != 0, r.stdout + r.stderr
    assert "unsafe" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert victim.read_bytes() == b"precious" and victim.stat().st_nlink == 1


@pytest.mark.parametrize("name", [P.LINUX, P.MKEXEC])
@pytest.mark.parametrize("variant", hostile.VARIANTS)
def test_hostile_archive_from_sources_dir(sources, tmp_path, name, variant):
    victim = tmp_path / "sentinel"
    victim.write_bytes(b"precious")
    srcdir = hostile_sources(sources, tmp_path / "srcs", name, victim, variant)
    proj = P.fixture_project(tmp_path / "proj", sources)
    r = P.scons(proj, "unpack", "arch=x86_64", "offline=1", f"sources={srcdir}", f"cache={tmp_path / 'cache'}")
    check_refused(r, victim)


@pytest.mark.parametrize("name", [P.LINUX, P.MKEXEC])
def test_hostile_archive_from_a_mirror(sources, tmp_path, name):
    from support.httpserver import serve
    victim = tmp_path / "sentinel"
    victim.write_bytes(b"precious")
    srcdir = hostile_sources(sources, tmp_path / "srcs", name, victim,
                             "hard link through the chain, then a duplicate name")
    proj = P.fixture_project(tmp_path / "proj", sources)
    with serve() as server:
        for f in srcdir.iterdir():
            server.add("/mirror/" + f.name, f.read_bytes())
        r = P.scons(proj, "unpack", "arch=x86_64", f"mirror={server.url}/mirror", f"cache={tmp_path / 'cache'}")
    check_refused(r, victim)
