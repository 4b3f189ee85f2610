import pytest

from mkdump import products
from mkdump.errors import MkdumpError


def test_shipped_products_per_arch():
    p = products.load("i386")
    assert set(p) == {"minik", "system", "mkexec", "mkdutils"}
    assert "arch/i386/boot/compressed/vmlinux.bin" in p["minik"].outputs
    assert p["system"].make_targets == ("bzImage", "modules")
    pub = products.published("x86_64")
    assert pub["vmlinux.bin"] == ("minik", "arch/x86_64/boot/compressed/vmlinux.bin")
    assert pub["mkexec.ko"] == ("mkexec", "kernel/mkexec.ko")
    assert {n for n, (prod, _) in pub.items() if prod == "system"} == {"system-bzImage", "system-System.map",
                                                                             "system-config", "system-modules.tar"}


def test_missing_table_is_named(tmp_path):
    bad = tmp_path / "products.toml"
    bad.write_text('[minik]\ntitle = "m"\n[system]\ntitle = "s"\n')
    with pytest.raises(MkdumpError, match=r"no \[mkexec\] table"):
        products.load("x86_64", bad)


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "products.toml"
    bad.write_text("[minik\n")
    with pytest.raises(MkdumpError, match="cannot be read"):
        products.load("x86_64", bad)
