"""The real scons, end to end, against the fixture kernel served over loopback."""
import json
import os
import shutil
import time

import pytest

from support import project as P
from support.httpserver import serve


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return P.make_fixture_sources(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="module")
def served(sources):
    with serve() as server:
        for name, data in sources.files.items():
            server.add("/mirror/" + name, data)
        yield server


def new_project(tmp_path, sources):
    proj = P.copy_project(tmp_path / "proj")
    P.keep_fixture_series(proj)
    P.pin_linux_tree(proj, sources.tree_sha256)
    return proj


@pytest.fixture(scope="module")
def built(tmp_path_factory, sources, served):
    """One complete x86_64 run; later tests look at what it left."""
    tmp = tmp_path_factory.mktemp("built")
    proj = new_project(tmp, sources)
    args = ["arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp / 'cache'}"]
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return proj, args, r, tmp


def test_default_target_publishes_checked_artifacts(built):
    proj, args, r, tmp = built
    out = proj / "build" / "x86_64" / "out"
    names = sorted(os.listdir(out))
    for want in ("vmlinux.bin", "mkexec.ko", "manifest.json", "mkdump-load-x86_64"):
        assert want in names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arch"] == "x86_64"
    assert manifest["checks"] and all(c["ok"] for c in manifest["checks"])
    produced = {o["path"]: o for o in manifest["outputs"]}
    assert produced["vmlinux.bin"]["size"] == (out / "vmlinux.bin").stat().st_size
    assert "PASS" in r.stderr and "FAIL" not in r.stderr
    # the trust-on-first-use warnings for the two unpinned mkdump files, and the lock file they wrote
    assert r.stderr.count("TRUSTED ON FIRST USE") == 2
    lock = (proj / "patches" / "sources.lock").read_text()
    assert P.MINIK in lock and P.MKEXEC in lock


def test_manifest_records_pins_and_urls(built, sources, served):
    proj = built[0]
    manifest = json.loads((proj / "build" / "x86_64" / "out" / "manifest.json").read_text())
    linux = manifest["inputs"]["sources"]["linux"]
    assert linux["tree_sha256"] == sources.tree_sha256
    assert linux["url"] == f"{served.url}/mirror/{P.LINUX}"
    assert set(manifest["inputs"]["patches"]) == {"minik", "system"}


def test_noop_run_is_up_to_date_and_fast(built):
    proj, args, _, _ = built
    start = time.monotonic()
    r = P.scons(proj, "-q", *args)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, "a second run found work to do: " + r.stdout + r.stderr
    print(f"no-op scons -q: {elapsed:.2f} s")


def test_offline_fetch_from_cache_needs_no_network(built, sources, tmp_path):
    _, _, _, tmp = built
    proj = new_project(tmp_path, sources)
    shutil.copy(built[0] / "patches" / "sources.lock", proj / "patches" / "sources.lock")
    r = P.scons(proj, "fetch", "offline=1", f"cache={tmp / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TRUSTED ON FIRST USE" not in r.stderr


def test_offline_without_cache_fails_clearly(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "fetch", "offline=1", f"cache={tmp_path / 'empty-cache'}")
    assert r.returncode != 0
    assert "not in the cache" in r.stderr or "offline" in r.stderr
    assert "Traceback" not in r.stderr


def test_fetch_from_sources_dir_offline(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "fetch", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (tmp_path / "cache" / "files").exists() or not os.listdir(tmp_path / "cache" / "files")


def test_stage_alias_stops_after_its_stage(sources, served, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "patch", "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'cache'}")
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    assert (arch / "minik" / "Makefile").is_file() and (arch / "system" / "Makefile").is_file()
    assert not (arch / "minik" / ".config").exists()
    assert not (arch / "out").exists()
    report = (arch / "reports" / "patch-minik.txt").read_text()
    assert "keyword" in report


@pytest.mark.parametrize("argv, words", [
    (["arhc=x86_64"], "arhc"),
    (["arch=arm64"], "arch"),
    (["minik_mem=6"], "multiple of 4"),
])
def test_bad_variables_stop_with_one_sentence_and_exit_2(sources, tmp_path, argv, words):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, *argv)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and words in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_help_lists_every_option(sources, tmp_path):
    proj = new_project(tmp_path, sources)
    r = P.scons(proj, "-h")
    assert r.returncode == 0
    for name in ("arch", "build", "cache", "sources", "mirror", "offline", "jobs", "verbose", "dump_driver",
                 "pae", "minik_fragment", "system_config", "minik_mem", "DESTDIR", "PREFIX"):
        assert f"\n  {name} " in r.stdout, name
    assert "sata-piix" in r.stdout and "boot-test" in r.stdout
