import multiprocessing
import re
import tomllib
from pathlib import Path

import pytest

from mkdump.errors import MkdumpError
from mkdump.sources import LockFile, Source, glob_candidates, load_sources

ROOT = Path(__file__).resolve().parent.parent
PIN_HEX = "02573e89056d5b89b65ae3b62808b3758dbe0943896dd683665491fca8dc36c3"
SHA_A = "a" * 64
SHA_B = "b" * 64


def test_the_project_manifest():
    sources = load_sources(ROOT / "patches" / "sources.toml")
    linux = sources["linux"]
    assert linux.file == "linux-2.6.9.tar.bz2"
    assert linux.tree_sha256 == PIN_HEX
    assert linux.sha256 is None
    assert linux.names[0] == "linux-2.6.9.tar.bz2" and "linux-2.6.9.tar.gz" in linux.names
    assert all(u.startswith("https://") for u in linux.urls)
    for name in ("minik", "mkexec"):
        assert sources[name].sha256 is None and sources[name].tree_sha256 is None
        assert sources[name].names == (sources[name].file,)
        assert sources[name].sources_glob is None
        assert sources[name].max_bytes <= 10_000_000, "a cap of a few MB for the mkdump files"
    assert 50_000_000 <= linux.max_bytes <= 200_000_000
    assert (sources["minik"].kind, sources["mkexec"].kind) == ("patch", "mkexec-archive")


def test_the_project_lists_sourceforges_forms_of_each_mkdump_file():
    sources = load_sources(ROOT / "patches" / "sources.toml")
    for name in ("minik", "mkexec"):
        path = "mkdump/mkdump/Version%201.0/" + sources[name].file
        urls = sources[name].urls
        assert urls[0] == "https://downloads.sourceforge.net/project/" + path
        assert f"https://sourceforge.net/projects/mkdump/files/{path.partition('/')[2]}/download" in urls
        assert "https://master.dl.sourceforge.net/project/" + path in urls
        mirrors = [u for u in urls if re.fullmatch(r"https://[a-z0-9-]+\.dl\.sourceforge\.net/project/" + re.escape(path),
                                                   u) and "//master." not in u]
        assert len(mirrors) >= 2, urls


def test_the_project_glob_finds_distro_names_of_2_6_9_only():
    linux = load_sources(ROOT / "patches" / "sources.toml")["linux"]
    listing = ["linux_2.6.9.orig.tar.gz", "linux-source-2.6.9.tar.bz2", "linux-2.6.9-repack.tar.xz",
               "linux-2.6.9.tgz", "linux-2.6.9.tar.bz2", "linux-2.6.9.tar.xz",   # the last two are listed names
               "linux-2.6.90.tar.gz", "linux-2.6.8.tar.gz", "linux_2.6.9-1.dsc", "linux-2.6.9.tar.bz2.sign",
               "patch-2.6.9.bz2", "minik-2.6.9-1.0-update1.patch", "Linux-2.6.9.tar.gz", "linux-2.6.9\n.tar.gz"]
    assert glob_candidates(linux, listing) == [
        "linux-2.6.9-repack.tar.xz", "linux-2.6.9.tgz", "linux-source-2.6.9.tar.bz2", "linux_2.6.9.orig.tar.gz"]


def test_glob_needs_a_tree_pin_to_offer_anything():
    unpinned = Source(name="k", file="k.tar.gz", urls=("https://example.org/k.tar.gz",), sources_glob="k*")
    assert glob_candidates(unpinned, ["k-1.tar.gz"]) == []
    pinned = Source(name="k", file="k.tar.gz", urls=("https://example.org/k.tar.gz",), tree_sha256=PIN_HEX,
                    sources_glob="k*")
    assert glob_candidates(pinned, ["k-1.tar.gz", "k.tar.gz", "k-1.patch"]) == ["k-1.tar.gz"]


def write(tmp_path, text):
    path = tmp_path / "sources.toml"
    path.write_text(text)
    return path


def test_pins_in_any_spelling_become_hex(tmp_path):
    path = write(tmp_path, """
[k]
file = "k.tar.gz"
urls = ["https://example.org/k.tar.gz"]
tree_sha256 = "1hrnvjlgr4alcs1xcvc98c4vx3bmnc42idp3bav8jnvd0n4kwmq2"
sha256 = "sha256-Alc+iQVtW4m2WuO2KAizdY2+CUOJbdaDZlSR/KjcNsM="
""")
    assert load_sources(path) == {"k": Source(name="k", file="k.tar.gz", urls=("https://example.org/k.tar.gz",),
                                              sha256=PIN_HEX, tree_sha256=PIN_HEX, alternatives=())}


GOOD = 'file = "x.patch"\nurls = ["https://example.org/x.patch"]\n'


@pytest.mark.parametrize("text, words", [
    ("[x\n", ["not valid TOML"]),
    ("x = 1\n", ["[x]", "not a table"]),
    ("[x]\n" + GOOD + "sha265 = 'aa'\n", ["[x]", "sha265"]),
    ("[x]\nurls = ['https://example.org/x']\n", ["[x]", "'file'"]),
    ("[x]\nfile = 'x'\nurls = 'https://example.org/x'\n", ["[x]", "urls"]),
    ("[x]\nfile = 'x'\nurls = []\n", ["[x]", "urls"]),
    ("[x]\nfile = 'x'\nurls = ['ftp://example.org/x']\n", ["[x]", "urls"]),
    ("[x]\nfile = 'dir/x'\nurls = ['https://example.org/x']\n", ["[x]", "plain file name"]),
    ("[x]\nfile = '..'\nurls = ['https://example.org/x']\n", ["[x]", "plain file name"]),
    ("[x]\n" + GOOD + "sha256 = 'abc'\n", ["[x]", "sha256", "not a SHA-256"]),
    ("[x]\n" + GOOD + "alternatives = ['x.gz']\n", ["[x]", "tree_sha256"]),
    ("[x]\n" + GOOD + f"tree_sha256 = '{PIN_HEX}'\nalternatives = 'x.gz'\n", ["[x]", "alternatives"]),
    ("[x]\n" + GOOD + "[y]\n" + GOOD, ["[y]", "x.patch", "[x]"]),
    ("[x]\n" + GOOD + "sources_glob = 'x*'\n", ["[x]", "sources_glob", "tree_sha256"]),
    ("[x]\n" + GOOD + f"tree_sha256 = '{PIN_HEX}'\nsources_glob = 'dl/x*'\n", ["[x]", "sources_glob",
                                                                                "without any directory"]),
    ("[x]\n" + GOOD + f"tree_sha256 = '{PIN_HEX}'\nsources_glob = ['x*']\n", ["[x]", "sources_glob"]),
    ("[x]\n" + GOOD + "max_bytes = '4 MB'\n", ["[x]", "max_bytes"]),
    ("[x]\n" + GOOD + "max_bytes = 0\n", ["[x]", "max_bytes"]),
    ("[x]\n" + GOOD + "max_bytes = true\n", ["[x]", "max_bytes"]),
    ("[x]\n" + GOOD + "kind = 'diff'\n", ["[x]", "kind", "'patch'", "'mkexec-archive'"]),
])
def test_malformed_manifests_name_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(MkdumpError) as err:
        load_sources(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_manifest(tmp_path):
    with pytest.raises(MkdumpError, match="cannot read"):
        load_sources(tmp_path / "nope.toml")


def test_lock_records_sorted_and_stable(tmp_path):
    one, two = LockFile(tmp_path / "a" / "sources.lock"), LockFile(tmp_path / "b" / "sources.lock")
    assert one.get("m.taz") is None
    one.record("m.taz", SHA_A)
    one.record('we"ird.patch', SHA_B)
    two.record('we"ird.patch', SHA_B)
    two.record("m.taz", SHA_A.upper())
    assert Path(one.path).read_bytes() == Path(two.path).read_bytes()
    assert one.get("m.taz") == SHA_A and one.get('we"ird.patch') == SHA_B
    assert tomllib.loads(Path(one.path).read_text()) == {"m.taz": SHA_A, 'we"ird.patch': SHA_B}
    text = Path(one.path).read_text()
    assert text.index('"m.taz"') < text.index('"we\\"ird.patch"')
    one.record("m.taz", SHA_A)          # the same again changes nothing
    assert Path(one.path).read_text() == text
    assert sorted(p.name for p in Path(one.path).parent.iterdir()) == ["sources.lock"]


def test_lock_refuses_a_different_hash(tmp_path):
    lock = LockFile(tmp_path / "sources.lock")
    lock.record("m.taz", SHA_A)
    with pytest.raises(MkdumpError, match=f"already records SHA-256 {SHA_A} for m.taz"):
        lock.record("m.taz", SHA_B)
    assert lock.get("m.taz") == SHA_A


@pytest.mark.parametrize("text", ["this is not toml\n", '"m.taz" = "nope"\n'])
def test_malformed_lock_file(tmp_path, text):
    path = tmp_path / "sources.lock"
    path.write_text(text)
    with pytest.raises(MkdumpError, match=str(path)):
        LockFile(path).get("m.taz")


def _record_many(path, worker):
    lock = LockFile(path)
    for i in range(20):
        lock.record(f"w{worker}-{i:02}.patch", f"{worker:x}{i:02x}".ljust(64, "0"))


def test_lock_concurrent_recorders_all_land(tmp_path):
    path = tmp_path / "sources.lock"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    entries = tomllib.loads(path.read_text())
    assert len(entries) == 80
    assert entries["w3-19.patch"] == "313".ljust(64, "0")
