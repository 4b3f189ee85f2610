import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile

import pytest

import mkdump.unpack
from mkdump.errors import MkdumpError
from mkdump.narhash import nar_sha256
from mkdump.unpack import detect_compression, tree_sha256_of_archive, unpack
from support import hostile as hostile_archives
from support.hostile import member


def make_tree(root):
    """A small package tree with what matters to the tree hash: an executable, a symlink, nesting."""
    (root / "src").mkdir(parents=True)
    (root / "README").write_text("read me\n")
    (root / "configure").write_text("#!/bin/sh\necho configured\n")
    (root / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    os.symlink("../README", root / "src" / "README")
    os.chmod(root / "README", 0o644)
    os.chmod(root / "src" / "main.c", 0o644)
    os.chmod(root / "configure", 0o755)
    return root


def tar_of(directory, arcname):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(directory, arcname=arcname)
    return buf.getvalue()


def unix_compress(data):
    if not shutil.which("compress"):
        pytest.skip("the `compress` program (Debian package ncompress) is not installed, so no .Z can be made")
    return subprocess.run(["compress", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "compress": unix_compress,
    "none": lambda data: data,
}


@pytest.fixture
def package(tmp_path):
    tree = make_tree(tmp_path / "pkg-1.0")
    return tree, nar_sha256(tree), tar_of(tree, "pkg-1.0")


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_every_compression_by_magic(tmp_path, package, kind):
    tree, expected, tar = package
    # A misleading name: the magic bytes decide.
    archive = tmp_path / "pkg.taz"
    archive.write_bytes(COMPRESSORS[kind](tar))
    assert detect_compression(archive) == kind
    out = tmp_path / "out"
    out.mkdir()
    assert unpack(archive, out / "pkg", expect_tree_sha256=expected, log=lambda m: None) == expected
    assert nar_sha256(out / "pkg") == expected
    assert (out / "pkg" / "configure").stat().st_mode & 0o100
    assert os.readlink(out / "pkg" / "src" / "README") == "../README"
    assert leftovers(out) == ["pkg"]


def test_unknown_format(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(MkdumpError, match="504b0304"):
        detect_compression(junk)
    with pytest.raises(MkdumpError, match="junk.tar.gz"):
        unpack(junk, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "compress"])
def test_damaged_archive(tmp_path, package, kind):
    _, _, tar = package
    data = COMPRESSORS[kind](tar)
    archive = tmp_path / "pkg.bin"
    archive.write_bytes(data[:len(data) // 2])
    with pytest.raises(MkdumpError, match="damaged"):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    assert leftovers(tmp_path / "out") == []


def test_several_top_level_entries_stay(tmp_path, package):
    tree, _, _ = package
    archive = tmp_path / "flat.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree / "README", arcname="README")
        tar.add(tree / "src", arcname="src")
    h = unpack(archive, tmp_path / "out", log=lambda m: None)
    assert leftovers(tmp_path / "out") == ["README", "src"]
    assert h == nar_sha256(tmp_path / "out")


def test_a_single_top_level_file_is_not_stripped(tmp_path, package):
    tree, _, _ = package
    archive = tmp_path / "one.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "README", arcname="README")
    unpack(archive, tmp_path / "out", log=lambda m: None)
    assert (tmp_path / "out" / "README").read_text() == "read me\n"


def test_dot_slash_names(tmp_path, package):
    tree, expected, _ = package
    archive = tmp_path / "dot.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname="./pkg-1.0")
    assert unpack(archive, tmp_path / "out", log=lambda m: None) == expected


def test_wrong_tree_is_refused_and_old_dest_survives(tmp_path, package):
    _, expected, tar = package
    archive = tmp_path / "pkg.tar.gz"
    archive.write_bytes(gzip.compress(tar))
    dest = tmp_path / "out" / "pkg"
    dest.mkdir(parents=True)
    (dest / "old").write_text("previous tree")
    wrong = "0" * 64
    with pytest.raises(MkdumpError) as err:
        unpack(archive, dest, expect_tree_sha256=wrong, log=lambda m: None)
    assert expected in str(err.value) and wrong in str(err.value)
    assert leftovers(dest) == ["old"]
    assert leftovers(tmp_path / "out") == ["pkg"]
    unpack(archive, dest, expect_tree_sha256=expected, log=lambda m: None)
    assert "old" not in leftovers(dest)
    assert leftovers(tmp_path / "out") == ["pkg"]


def test_interrupted_while_hashing_leaves_nothing(tmp_path, package, monkeypatch):
    _, _, tar = package
    archive = tmp_path / "pkg.tar"
    archive.write_bytes(tar)

    def interrupt(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(mkdump.unpack, "nar_sha256", interrupt)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    assert leftovers(tmp_path / "out") == []


def test_interrupted_while_extracting_leaves_nothing(tmp_path, package, monkeypatch):
    _, _, tar = package
    archive = tmp_path / "pkg.tar.Z"
    archive.write_bytes(unix_compress(tar))
    seen = []
    real_extract = mkdump.unpack._Extractor.extract

    def interrupt_third(self, tar, member):
        seen.append(member.name)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real_extract(self, tar, member)

    monkeypatch.setattr(mkdump.unpack._Extractor, "extract", interrupt_third)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    assert len(seen) == 3
    assert leftovers(tmp_path / "out") == []


def test_tree_hash_of_archive_cleans_up(tmp_path, package):
    _, expected, tar = package
    archive = tmp_path / "pkg.tar.xz"
    archive.write_bytes(lzma.compress(tar))
    scratch = tmp_path / "scratch"
    assert tree_sha256_of_archive(archive, scratch) == expected
    assert leftovers(scratch) == []


# -- hostile archives ------------------------------------------------------------------------------------------

def hostile(tmp_path, members):
    return hostile_archives.write_archive(tmp_path / "hostile.tar.gz", members)


OUTSIDE = "outside-target"   # created next to the destination by no correct extraction


@pytest.mark.parametrize("members, culprit, why", [
    ([member("pkg/ok", data=b"ok"), member("{abs}", data=b"evil")], "{abs}", "absolute path"),
    ([member("../" + OUTSIDE, data=b"evil")], "../" + OUTSIDE, "'..'"),
    ([member("pkg/a/../../../" + OUTSIDE, data=b"evil")], "pkg/a/../../../" + OUTSIDE, "'..'"),
    ([member("pkg/l", tarfile.SYMTYPE, linkname="/etc/passwd")], "pkg/l", "absolute path '/etc/passwd'"),
    ([member("pkg/d/l", tarfile.SYMTYPE, linkname="../../../" + OUTSIDE)], "pkg/d/l", "outside the tree"),
    ([member("pkg/h", tarfile.LNKTYPE, linkname="../" + OUTSIDE)], "pkg/h", "hard link"),
    ([member("pkg/h", tarfile.LNKTYPE, linkname="/etc/passwd")], "pkg/h", "hard link"),
    ([member("pkg/null", tarfile.CHRTYPE)], "pkg/null", "device file"),
    ([member("pkg/sda", tarfile.BLKTYPE)], "pkg/sda", "device file"),
    ([member("pkg/fifo", tarfile.FIFOTYPE)], "pkg/fifo", "FIFO"),
    # Inside the tree, but writing through a link is how the escapes below start: refused outright.
    ([member("pkg/sub", tarfile.DIRTYPE), member("pkg/l", tarfile.SYMTYPE, linkname="sub"),
      member("pkg/l/x", data=b"x")], "pkg/l/x", "through the symlink 'pkg/l'"),
    ([member("pkg/l", tarfile.SYMTYPE, linkname="."), member("pkg/l", data=b"x")], "pkg/l", "through the symlink"),
    # Each link looks harmless alone; together q leads out of the tree once p exists.
    ([member("q", tarfile.SYMTYPE, linkname="p/.."), member("p", tarfile.SYMTYPE, linkname=".")], "q",
     "leads outside"),
    # Fine inside the archive, but outside the tree once the single top directory becomes the destination.
    ([member("pkg", tarfile.DIRTYPE), member("pkg/x", tarfile.SYMTYPE, linkname="../" + OUTSIDE)], "pkg/x",
     "leads outside"),
])
def test_hostile_members_are_refused(tmp_path, members, culprit, why):
    absolute = str(tmp_path / "out" / OUTSIDE)
    for info, _ in members:
        info.name = info.name.replace("{abs}", absolute)
    culprit = culprit.replace("{abs}", absolute)
    archive = hostile(tmp_path, members)
    (tmp_path / "out").mkdir()
    with pytest.raises(MkdumpError) as err:
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    message = str(err.value)
    assert repr(culprit) in message and why in message and str(archive) in message
    assert leftovers(tmp_path / "out") == []
    assert not os.path.lexists(tmp_path / OUTSIDE)


def test_hard_link_to_a_name_now_a_symlink_is_refused(tmp_path):
    # During extraction the chain p, q, r, s already leads out of the tree (only the finished tree is judged),
    # and a hard link follows the symlink it names: linking to `a` once `a` is a symlink would put the outside
    # file into the tree, and the next member would write into it. The second `a` is where it stops.
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    archive = hostile(tmp_path, [
        member("p", tarfile.SYMTYPE, linkname="."),
        member("q", tarfile.SYMTYPE, linkname="p/.."),
        member("r", tarfile.SYMTYPE, linkname="q/.."),
        member("s", tarfile.SYMTYPE, linkname="r/.."),
        member("a", data=b"a"),
        member("a", tarfile.SYMTYPE, linkname="s/victim"),
        member("h", tarfile.LNKTYPE, linkname="a"),
        member("h", data=b"overwritten"),
    ])
    (tmp_path / "out").mkdir()
    with pytest.raises(MkdumpError) as err:
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    assert "'a'" in str(err.value) and "appears twice" in str(err.value)
    assert victim.read_bytes() == b"precious"
    assert leftovers(tmp_path / "out") == []


# -- escapes through chains of symlinks that look harmless as text (issue 13) ------------------------------------

@pytest.mark.parametrize("variant", hostile_archives.VARIANTS)
def test_nothing_outside_the_destination_is_ever_written(tmp_path, variant):
    victim = tmp_path / "sentinel"
    victim.write_bytes(b"precious")
    archive = hostile(tmp_path, hostile_archives.escape_variants(victim)[variant])
    (tmp_path / "out").mkdir()
    with pytest.raises(MkdumpError, match="unsafe"):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    assert victim.read_bytes() == b"precious"
    assert victim.stat().st_nlink == 1
    assert leftovers(tmp_path / "out") == []


def test_a_duplicate_member_name_is_refused(tmp_path):
    archive = hostile(tmp_path, [member("pkg/a", data=b"one"), member("pkg/a", data=b"two")])
    (tmp_path / "out").mkdir()
    with pytest.raises(MkdumpError, match="'pkg/a'.*appears twice"):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)


def test_a_hard_link_target_with_dot_dot_is_refused(tmp_path):
    archive = hostile(tmp_path, [member("pkg/a", data=b"one"), member("pkg/h", tarfile.LNKTYPE,
                                                                      linkname="pkg/x/../a")])
    (tmp_path / "out").mkdir()
    with pytest.raises(MkdumpError, match="'pkg/h'.*'..'"):
        unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)


def test_a_repeated_directory_and_hard_links_inside_are_fine(tmp_path):
    archive = hostile(tmp_path, [member("pkg", tarfile.DIRTYPE), member("pkg/d", tarfile.DIRTYPE),
                                 member("pkg/d/a", data=b"one"), member("pkg/d", tarfile.DIRTYPE),
                                 member("pkg/h", tarfile.LNKTYPE, linkname="pkg/d/a"),
                                 member("pkg/l", tarfile.SYMTYPE, linkname="d/a")])
    (tmp_path / "out").mkdir()
    unpack(archive, tmp_path / "out" / "pkg", log=lambda m: None)
    out = tmp_path / "out" / "pkg"
    assert (out / "h").read_bytes() == b"one" and (out / "h").stat().st_ino == (out / "d" / "a").stat().st_ino
    assert (out / "l").read_bytes() == b"one"
