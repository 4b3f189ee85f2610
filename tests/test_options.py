import pytest

from mkdump import options as O
from mkdump.errors import MkdumpError

DRIVERS = ["ide", "sata-piix"]


def raw(**kw):
    r = {s.name: s.default for s in O.specs(DRIVERS, "ide", environ={})}
    r.update(kw)
    return r


def test_defaults_parse(tmp_path):
    o = O.parse(raw(), dump_drivers=DRIVERS, base_dir=str(tmp_path))
    assert o.arches == ("x86_64",)
    assert o.build == str(tmp_path / "build")
    assert o.minik_mem == 8 and o.pae and not o.offline and o.fuzz == 0
    assert o.source_date_epoch == O.DEFAULT_EPOCH
    assert o.dump_driver == "ide"


def test_all_arches_and_mirrors():
    o = O.parse(raw(arch="all", mirror="http://a/x/, https://b"), dump_drivers=DRIVERS)
    assert o.arches == ("x86_64", "i386")
    assert o.mirrors == ("http://a/x", "https://b")


@pytest.mark.parametrize("kw, words", [
    ({"arch": "arm64"}, "arch"),
    ({"minik_mem": "6"}, "multiple of 4"),
    ({"minik_mem": "eight"}, "minik_mem"),
    ({"offline": "maybe"}, "offline"),
    ({"pae": "perhaps"}, "pae"),
    ({"dump_driver": "floppy"}, "ide, sata-piix"),
    ({"mirror": "ftp://x"}, "mirror"),
    ({"sources": "/nonexistent/dir"}, "sources="),
    ({"minik_fragment": "/nonexistent/frag"}, "minik_fragment="),
    ({"PREFIX": "usr"}, "PREFIX"),
    ({"jobs": "0"}, "jobs"),
    ({"dump_dev": "/dev/floppy"}, "floppy"),
    ({"dump_dev": "0x1000000000"}, "0x1000000000"),
])
def test_invalid_values_name_the_option(kw, words):
    with pytest.raises(MkdumpError) as e:
        O.parse(raw(**kw), dump_drivers=DRIVERS)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_dump_dev_forms_are_accepted():
    for dev in ("/dev/sdb2", "8:18", "0x800012"):
        assert O.parse(raw(dump_dev=dev), dump_drivers=DRIVERS).dump_dev == dev


def test_cache_default_follows_xdg():
    assert O.default_cache({"XDG_CACHE_HOME": "/x/c"}) == "/x/c/mkdump-build"


def test_unknown_message():
    assert "arhc" in O.unknown_message(["arhc"]) and "scons -h" in O.unknown_message(["arhc"])
