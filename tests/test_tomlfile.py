"""mkdump.tomlfile: a broken or missing data file is one sentence naming the file, the line and what to do."""
import re

import pytest

from mkdump import arch as arches
from mkdump import tomlfile, userconfig
from mkdump.errors import ConfigError, MkdumpError


def test_toml_syntax_error_names_the_file_and_the_line(tmp_path):
    bad = tmp_path / "q.toml"
    bad.write_text('[a]\nx = 1\ny = = 2\n')
    with pytest.raises(MkdumpError) as e:
        tomlfile.load(bad, "the QEMU settings", fix="restore kernel/qemu.toml")
    assert str(e.value).startswith(f"the QEMU settings {bad} cannot be read: line 3 is not valid TOML (")
    assert str(e.value).endswith("); correct that line or restore kernel/qemu.toml.")


def test_toml_file_that_is_not_text_is_one_sentence(tmp_path):
    bad = tmp_path / "q.toml"
    bad.write_bytes(b'x = "\xff"\n')
    with pytest.raises(ConfigError, match=rf"^the rules {re.escape(str(bad))} cannot be read: byte 5 is not UTF-8"):
        tomlfile.load(bad, "the rules", error=ConfigError)


def test_missing_toml_file(tmp_path):
    missing = re.escape(str(tmp_path / "no.toml"))
    with pytest.raises(MkdumpError, match=rf"^cannot read the lock file {missing}: No such file or directory; "
                                          r"restore it from the repository\.$"):
        tomlfile.load(tmp_path / "no.toml", "the lock file")
    assert tomlfile.load(tmp_path / "no.toml", "the lock file", missing_ok=True) == {}
    (tmp_path / "ok.toml").write_text('[a]\nb = "c"\n')
    assert tomlfile.load(tmp_path / "ok.toml", "x") == {"a": {"b": "c"}}


def test_a_broken_rules_file_is_no_traceback_where_a_users_config_is_judged(tmp_path):
    config = tmp_path / "user.config"
    config.write_text("CONFIG_ARM=y\n")     # an arch of none of our arch files: the rules' markers decide
    rules = tmp_path / "rules.toml"
    rules.write_text("[[config_arch]\n")
    with pytest.raises(ConfigError, match=rf"the configuration rules {re.escape(str(rules))} cannot be read: "
                                          r"line 1 is not valid"):
        userconfig.read_header(config, rules)


def test_a_broken_arch_file_is_no_traceback(tmp_path):
    data = tmp_path / "x86_64.toml"
    data.write_text("[toolchain\n")
    with pytest.raises(MkdumpError, match=rf"the arch file {re.escape(str(data))} cannot be read: line 1"):
        arches.load("x86_64", tmp_path)


def test_the_same_bytes_are_parsed_once_and_every_caller_gets_its_own_copy(tmp_path, monkeypatch):
    parses = []
    real = tomlfile.tomllib.loads
    monkeypatch.setattr(tomlfile.tomllib, "loads", lambda text: parses.append(text) or real(text))
    data = tmp_path / "d.toml"
    data.write_text('[a]\nlist = ["x"]\n')
    first = tomlfile.load(data, "the data")
    first["a"]["list"].append("filled in by a caller")
    assert tomlfile.load(data, "the data") == {"a": {"list": ["x"]}}
    assert len(parses) == 1
    # Other bytes, even of the same size and at once, are read again.
    data.write_text('[a]\nlist = ["y"]\n')
    assert tomlfile.load(data, "the data") == {"a": {"list": ["y"]}}
    assert len(parses) == 2
