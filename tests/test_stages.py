"""The stage table and the plan the SCons tool declares from it, without SCons."""
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

from mkdump import kconfig, options, stages
from mkdump.sources import load_sources

TOP = Path(__file__).resolve().parents[1]
PROJECT = stages.Project(str(TOP))
SOURCES = load_sources(PROJECT.sources_toml)


def opts(tmp_path, **given):
    families = kconfig.dump_driver_families(PROJECT.configs_dir)
    default = next((n for n, f in families.items() if f.get("default")), next(iter(families)))
    raw = {s.name: s.default for s in options.specs(list(families), default, environ={})}
    raw.update(given)
    return options.parse(raw, dump_drivers=list(families), base_dir=str(tmp_path), environ={})


def plan(tmp_path, **given):
    return stages.plan(opts(tmp_path, **given), PROJECT, SOURCES)


def test_every_stage_instance_once_in_pipeline_order(tmp_path):
    ids = [n.id for n in plan(tmp_path)]
    assert ids == ["fetch:linux", "fetch:minik", "fetch:mkexec", "fetch:mkdutils",
                   "unpack:linux", "unpack:mkexec", "unpack:mkdutils", "toolchain:x86_64",
                   "patch:x86_64:minik", "patch:x86_64:system", "config:x86_64:minik", "config:x86_64:system",
                   "menuconfig:x86_64", "build:x86_64:minik", "build:x86_64:system", "mkexec:x86_64",
                   "modules:x86_64", "mkdutils:x86_64", "check:x86_64", "load_script:x86_64", "manifest:x86_64", "install:x86_64", "boot_test:x86_64"]
    assert len([n for n in plan(tmp_path, arch="all") if n.stage.name == "manifest"]) == 2
    # both arches unpack the same archives: one pristine tree each, which both arches' kernel trees link
    everything = plan(tmp_path, arch="all")
    assert [n.id for n in everything if n.stage.name == "unpack"] == ["unpack:linux", "unpack:mkexec",
                                                                      "unpack:mkdutils"]
    patches = [n for n in everything if n.stage.name == "patch"]
    assert len(patches) == 4 and all([m.id for m in n.needs if m.stage.name == "unpack"][0] == "unpack:linux"
                                     for n in patches)


def test_a_node_needs_only_earlier_nodes_of_its_arch_and_kernel(tmp_path):
    seen = set()
    for n in plan(tmp_path, arch="all"):
        for m in n.needs:
            assert m.id in seen, (n.id, m.id)
            assert m.arch in (n.arch, None)
            if n.stage.scope == m.stage.scope == "kernel":
                assert m.each == n.each
        seen.add(n.id)


def test_what_each_stage_reads(tmp_path):
    nodes = {n.id: n for n in plan(tmp_path)}
    needs = {i: sorted(m.id for m in n.needs) for i, n in nodes.items()}
    assert needs["unpack:mkexec"] == ["fetch:mkexec"]
    # the minik series names the minik patch itself (a fetched file), the system series mkexec's kernel patch
    assert needs["patch:x86_64:minik"] == ["fetch:minik", "unpack:linux"]
    assert needs["patch:x86_64:system"] == ["unpack:linux", "unpack:mkexec"]
    assert needs["build:x86_64:minik"] == ["config:x86_64:minik", "patch:x86_64:minik", "toolchain:x86_64"]
    assert needs["mkexec:x86_64"] == ["build:x86_64:system", "toolchain:x86_64", "unpack:mkexec"]
    assert needs["load_script:x86_64"] == ["build:x86_64:system", "check:x86_64", "config:x86_64:minik"]
    assert needs["modules:x86_64"] == ["build:x86_64:system", "toolchain:x86_64"]
    assert needs["mkdutils:x86_64"] == ["unpack:mkdutils"]
    # the manifest records every stamp before it: the table says which, not a second list
    assert set(needs["manifest:x86_64"]) == {
        "fetch:linux", "fetch:minik", "fetch:mkexec", "fetch:mkdutils", "mkdutils:x86_64", "toolchain:x86_64",
        "patch:x86_64:minik",
        "patch:x86_64:system", "config:x86_64:minik", "config:x86_64:system", "build:x86_64:minik",
        "build:x86_64:system", "mkexec:x86_64", "check:x86_64", "load_script:x86_64"}
    series = [f for f in nodes["patch:x86_64:system"].files if f.endswith(".series")]
    assert series == [str(TOP / "patches" / "system.series")]
    assert str(TOP / "configs" / "rules.toml") in nodes["config:x86_64:minik"].files
    # mkdutils is built with the build host's gcc: an upgraded one builds it again
    assert os.path.realpath(shutil.which("gcc")) in nodes["mkdutils:x86_64"].files


def test_a_user_file_is_read_by_the_config_it_belongs_to(tmp_path):
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_PRINTK=y\n")
    nodes = {n.id: n for n in plan(tmp_path, minik_fragment=str(frag))}
    assert str(frag) in nodes["config:x86_64:minik"].files
    assert str(frag) not in nodes["config:x86_64:system"].files


# load_script checks its dump_dev= against the mini kernel's drivers again
RERUN_MINIK = {"config:x86_64:minik", "menuconfig:x86_64", "build:x86_64:minik", "check:x86_64", "manifest:x86_64",
               "install:x86_64", "boot_test:x86_64", "load_script:x86_64"}
AFTER_SYSTEM = {"mkexec:x86_64", "modules:x86_64", "check:x86_64", "load_script:x86_64", "manifest:x86_64", "install:x86_64",
                "boot_test:x86_64"}


@pytest.mark.parametrize("option, value, expected", [
    ("dump_driver", "sata-piix", RERUN_MINIK),
    ("dump_dev", "/dev/sdb2", {"load_script:x86_64", "manifest:x86_64", "install:x86_64"}),
    ("minik_mem", "12", {"check:x86_64", "load_script:x86_64", "manifest:x86_64", "install:x86_64",
                         "boot_test:x86_64"}),
    ("system_config", "defconfig", {"config:x86_64:system", "menuconfig:x86_64", "build:x86_64:system"}
     | AFTER_SYSTEM),
    ("fuzz", "2", {"patch:x86_64:minik", "patch:x86_64:system", "config:x86_64:minik", "config:x86_64:system",
                   "menuconfig:x86_64", "build:x86_64:minik", "build:x86_64:system"} | AFTER_SYSTEM),
    # what the menu opens and where it saves: nothing else
    ("kernel", "system", {"menuconfig:x86_64"}), ("save", "/tmp/mine.config", {"menuconfig:x86_64"}),
    ("SOURCE_DATE_EPOCH", "1100000000", {"build:x86_64:minik", "build:x86_64:system", "mkdutils:x86_64"}
     | AFTER_SYSTEM),
    # the mini kernel's PAE choice exists on i386 only; x86_64 nodes do not even see it
    ("pae", "no", set()),
    # how a build runs, never what it makes
    ("jobs", "7", set()), ("verbose", "1", set()), ("offline", "1", set()), ("cc_launcher", "ccache", set()),
    ("mirror", "http://127.0.0.1:1/m", set()), ("DESTDIR", "/tmp/stage", set()),
])
def test_which_stages_an_option_runs_again(tmp_path, option, value, expected):
    if option == "cc_launcher":
        pytest.importorskip("shutil").which("ccache") or pytest.skip("ccache is not installed")
    assert stages.changed_by(plan(tmp_path), plan(tmp_path, **{option: value})) == expected


def test_pae_reaches_the_i386_mini_kernel_only(tmp_path):
    changed = stages.changed_by(plan(tmp_path, arch="i386"), plan(tmp_path, arch="i386", pae="no"))
    assert {"config:i386:minik", "build:i386:minik", "manifest:i386"} <= changed
    assert not any(":system" in i or i.startswith(("patch", "fetch", "unpack", "toolchain")) for i in changed)


def test_parameters_come_back_whole_from_the_signature(tmp_path):
    for n in plan(tmp_path, arch="all", dump_dev="8:18", minik_params="quiet"):
        stage, params, where = stages.params_from_signature(n.signature())
        assert stage is n.stage and params == n.params
        assert where == {"root": str(tmp_path / "build"), "arch": n.arch, "top": str(TOP),
                         "out_name": "out" if n.arch else None}


def test_a_stage_runs_the_pipeline_function_of_its_name():
    from mkdump import pipeline
    for s in stages.STAGES:
        assert s.function is getattr(pipeline, s.name)


def test_help_lists_the_targets_in_pipeline_order():
    assert list(stages.targets()) == ["fetch", "unpack", "patch", "config", "menuconfig", "build", "check",
                                      "install", "boot-test"]


def test_hacking_draws_the_table():
    text = (TOP / "HACKING.md").read_text()
    assert stages.picture() in text
    rows = stages.picture().splitlines()[1:]
    assert [r.split()[0] for r in rows] == [s.name for s in stages.STAGES]
    assert re.match(r"mkexec +each arch +unpack:mkexec, build:system, toolchain +build$", rows[7])


def test_readme_lists_the_targets_of_the_table():
    usage = (TOP / "README.md").read_text().split("## Usage", 1)[1]
    table = usage[usage.index("| target | what |"):].split("\n\n", 1)[0]
    assert re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.M) == list(stages.targets()) + ["repro"]


def test_the_manifest_records_an_lspci_file_by_name_and_digest(tmp_path):
    listing = tmp_path / "server.txt"
    listing.write_text("00:1f.1 0101: 8086:24db (rev 02)\n")
    recorded = stages.manifest_options(opts(tmp_path, dump_driver=f"lspci:{listing}"), "x86_64")
    assert recorded["dump_driver"] == "lspci:server.txt"
    assert recorded["lspci_sha256"] == hashlib.sha256(listing.read_bytes()).hexdigest()
    assert str(tmp_path) not in repr(recorded)
    assert stages.manifest_options(opts(tmp_path), "x86_64")["lspci_sha256"] is None
