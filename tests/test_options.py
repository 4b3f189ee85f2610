import pytest

from mkdump import kbuild
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
    assert o.source_date_epoch == kbuild.DEFAULT_SOURCE_DATE_EPOCH
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
    ({"mirror": "file:///srv/mirror"}, "mirror='file:///srv/mirror' is not an http:// or https:// URL"),
    ({"mirror": "https://ok.example, http://"}, "mirror='http://'"),
    ({"sources": "/nonexistent/dir"}, "sources="),
    ({"minik_fragment": "/nonexistent/frag"}, "minik_fragment="),
    ({"PREFIX": "usr"}, "PREFIX"),
    ({"jobs": "0"}, "jobs"),
    ({"build": "out$x"}, "build=out$x"),
    ({"build": "a=b"}, "'='"),
    ({"build": "dir with spaces"}, "contains ' ', which make"),
    ({"build": "tab\there"}, "contains '\\t', which make"),
    ({"build": "a#b"}, "contains '#', which make"),
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


def test_deb_build_options_parallel_is_read(tmp_path):
    env = {"DEB_BUILD_OPTIONS": "nocheck parallel=3 noopt"}
    o = O.parse(raw(), dump_drivers=DRIVERS, base_dir=str(tmp_path), environ=env)
    assert o.deb_parallel == 3 and o.jobs is None
    assert O.parse(raw(), dump_drivers=DRIVERS, environ={}).deb_parallel is None
    with pytest.raises(MkdumpError, match="DEB_BUILD_OPTIONS parallel"):
        O.parse(raw(), dump_drivers=DRIVERS, environ={"DEB_BUILD_OPTIONS": "parallel=x"})


def test_cc_launcher_by_name_or_path(tmp_path):
    fake = tmp_path / "ccache"
    fake.write_text("#!/bin/sh\nexec \"$@\"\n")
    fake.chmod(0o755)
    env = {"PATH": str(tmp_path)}
    assert O.parse(raw(cc_launcher="ccache"), dump_drivers=DRIVERS, environ=env).cc_launcher == "ccache"
    o = O.parse(raw(cc_launcher="./ccache"), dump_drivers=DRIVERS, base_dir=str(tmp_path), environ=env)
    assert o.cc_launcher == str(fake)
    assert O.parse(raw(), dump_drivers=DRIVERS, environ=env).cc_launcher is None


@pytest.mark.parametrize("name", ["CC", "CROSS_COMPILE", "cc_launcher"])
def test_values_for_makes_command_line_refuse_a_dollar(tmp_path, name):
    odd = tmp_path / "odd$dir"
    odd.mkdir()
    launcher = odd / "cache"
    launcher.write_text("#!/bin/sh\nexec \"$@\"\n")
    launcher.chmod(0o755)
    value = str(launcher) if name == "cc_launcher" else "x86_64-$(ARCH)-"
    with pytest.raises(MkdumpError) as e:
        O.parse(raw(**{name: value}), dump_drivers=DRIVERS, environ={})
    assert str(e.value) == f"{name}={value}: make would expand the '$' in it; give a value without '$'."


@pytest.mark.parametrize("value, words", [
    ("distcc", "install the Debian package distcc"),
    ("/nonexistent/launcher", "no executable file at /nonexistent/launcher"),
])
def test_cc_launcher_errors_name_the_fix(tmp_path, value, words):
    with pytest.raises(MkdumpError) as e:
        O.parse(raw(cc_launcher=value), dump_drivers=DRIVERS, environ={"PATH": str(tmp_path)})
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cache_dir_is_made_absolute(tmp_path):
    o = O.parse(raw(cache_dir="team-cache"), dump_drivers=DRIVERS, base_dir=str(tmp_path))
    assert o.cache_dir == str(tmp_path / "team-cache")
    assert O.parse(raw(), dump_drivers=DRIVERS).cache_dir is None


def test_packager_variables_default_to_the_environment():
    env = {"CC": "gcc-12", "CROSS_COMPILE": "x86_64-linux-gnu-", "DESTDIR": "/stage", "PREFIX": "/opt/mk",
           "SOURCE_DATE_EPOCH": "1200000000"}
    defaults = {s.name: s.default for s in O.specs(DRIVERS, "ide", environ=env)}
    assert {k: defaults[k] for k in env} == env
    o = O.parse(dict(raw(), **{k: defaults[k] for k in env}), dump_drivers=DRIVERS)
    assert (o.cc, o.cross_compile, o.destdir, o.prefix, o.source_date_epoch) == (
        "gcc-12", "x86_64-linux-gnu-", "/stage", "/opt/mk", 1200000000)
    assert {s.name: s.default for s in O.specs(DRIVERS, "ide", environ={})}["PREFIX"] == "/usr"


MIRRORS = ["http://a/x/", "https://b", "file:///srv/mirror", "file://host/dir", "ftp://x", "/srv/files", "http://",
           "https:///path", "http://a b/", "http://host:port/", "example.org/sources"]


def test_options_and_the_fetcher_accept_the_same_mirrors(tmp_path):
    from mkdump.fetch import Fetcher

    def verdict(check):
        try:
            check()
        except MkdumpError as e:
            return str(e)
        return "accepted"

    for url in MIRRORS:
        by_options = verdict(lambda: O.parse(raw(mirror=url), dump_drivers=DRIVERS))
        by_fetcher = verdict(lambda: Fetcher(tmp_path / "cache", mirrors=[url]))
        assert by_options == by_fetcher, url
    assert verdict(lambda: Fetcher(tmp_path / "cache", mirrors=["file:///srv/mirror"])) != "accepted"
