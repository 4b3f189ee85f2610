"""cache_dir=: a team shares the finished artifacts (the real scons on the fixture kernel)."""
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import project as P
from test_integration import new_project

OUT = ("manifest.json", "vmlinux.bin", "minik-bzImage", "minik-System.map", "system-bzImage", "system-System.map",
       "system-config", "system-modules.tar", "mkexec.ko", "mkdutils.tar", "mkdump-load-x86_64")


def entries(cache):
    return sorted(p for p in Path(cache).glob("*/*") if p.is_file() and p.parent.name != "config")


@dataclass
class Team:
    a: Path          # the teammate who built first
    args: list
    cache: Path      # the shared cache_dir
    first: object    # the first run of a fresh checkout (no sources.lock yet)
    after_first: list
    second: object


@pytest.fixture(scope="module")
def team(tmp_path_factory, sources, served):
    tmp = tmp_path_factory.mktemp("team")
    a = new_project(tmp, sources)
    cache = tmp / "shared"
    args = ["arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp / 'downloads'}", f"cache_dir={cache}"]
    first = P.scons(a, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = entries(cache)
    second = P.scons(a, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    return Team(a, args, cache, first, after_first, second)


def teammate(tmp_path, sources, team, name="b"):
    """Another checkout of the same project, with the lock file the first teammate committed."""
    proj = new_project(tmp_path / name, sources)
    shutil.copy(team.a / "patches" / "sources.lock", proj / "patches" / "sources.lock")
    return proj


def offline(tmp_path, team, *extra):
    return ["arch=x86_64", "offline=1", f"cache={tmp_path / 'no-downloads'}", f"cache_dir={team.cache}", *extra]


def test_unpinned_sources_keep_the_first_run_out_of_the_cache(team):
    assert "cache_dir: not used by this run, source minik, mkdutils, mkexec is not pinned yet" in team.first.stderr
    assert team.after_first == []
    out = team.a / "build" / "x86_64" / "out"
    assert sorted(os.listdir(out)) == sorted(OUT)
    # the second run has the lock: the same checked artifacts are published again and pushed
    assert "publishing the checked artifacts" in team.second.stderr and "PASS" not in team.second.stderr
    assert len(entries(team.cache)) == len(OUT)
    checked = team.a / "build" / "x86_64" / "checked"
    for name in OUT:
        assert (out / name).read_bytes() == (checked / name).read_bytes(), name
    assert P.scons(team.a, "-q", *team.args).returncode == 0


def test_teammate_gets_out_from_the_cache_without_running_any_stage(team, sources, tmp_path):
    b = teammate(tmp_path, sources, team)
    r = P.scons(b, *offline(tmp_path, team, "build=elsewhere"))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in OUT:
        assert f"Retrieved `elsewhere/x86_64/out/{name}' from cache" in r.stdout, name
        assert (b / "elsewhere" / "x86_64" / "out" / name).read_bytes() == \
            (team.a / "build" / "x86_64" / "out" / name).read_bytes(), name
    assert "mkdump: [" not in r.stderr, "a stage ran"
    assert os.listdir(b / "elsewhere" / "x86_64") == ["out"]
    assert not (b / "elsewhere" / "fetch").exists() and not (tmp_path / "no-downloads" / "files").exists()
    assert P.scons(b, "-q", *offline(tmp_path, team, "build=elsewhere")).returncode == 0

    dest = tmp_path / "stage"
    r = P.scons(b, "install", f"DESTDIR={dest}", *offline(tmp_path, team, "build=elsewhere"))
    assert r.returncode == 0, r.stdout + r.stderr
    installed = dest / "lib/modules/2.6.9/extra/mkexec.ko"
    assert installed.read_bytes() == (team.a / "build/x86_64/out/mkexec.ko").read_bytes()

    before = entries(team.cache)
    r = P.scons(b, "-c", *offline(tmp_path, team, "build=elsewhere"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.listdir(b / "elsewhere" / "x86_64" / "out") == []
    assert entries(team.cache) == before


def test_a_changed_option_misses_builds_and_is_shared_too(team):
    before = set(entries(team.cache))
    r = P.scons(team.a, *team.args, "minik_mem=12")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Retrieved" not in r.stdout and "PASS vmlinux footprint" in r.stderr
    assert '"minik_mem": 12' in (team.a / "build/x86_64/out/manifest.json").read_text()
    assert len(set(entries(team.cache)) - before) == len(OUT)
    # back to the first options: their artifacts come from the cache, no stage runs
    r = P.scons(team.a, *team.args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("Retrieved") == len(OUT) and "mkdump: [" not in r.stderr
    assert '"minik_mem": 8' in (team.a / "build/x86_64/out/manifest.json").read_text()


def test_cache_readonly_builds_without_pushing(team):
    before = entries(team.cache)
    try:
        r = P.scons(team.a, "--cache-readonly", *team.args, "minik_mem=16")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "PASS vmlinux footprint" in r.stderr and entries(team.cache) == before
    finally:
        assert P.scons(team.a, *team.args).returncode == 0


def test_a_changed_patch_misses_and_builds(team, sources, served, tmp_path):
    c = teammate(tmp_path, sources, team)
    P.add_local_patch(c, "system", "note.patch",
                      "--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,3 @@\n VERSION = 2\n"
                      "+# mkdump-build test note\n PATCHLEVEL = 6\n")
    before = set(entries(team.cache))
    r = P.scons(c, "arch=x86_64", f"mirror={served.url}/mirror", f"cache={tmp_path / 'downloads'}",
                f"cache_dir={team.cache}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Retrieved" not in r.stdout
    assert "# mkdump-build test note" in (c / "build/x86_64/system/Makefile").read_text()
    assert len(set(entries(team.cache)) - before) == len(OUT)


def test_another_compiler_misses(team, sources, tmp_path):
    b = teammate(tmp_path, sources, team)
    assert P.scons(b, *offline(tmp_path, team, "build=same")).returncode == 0
    wrapper = tmp_path / "wrapper"
    wrapper.mkdir()
    (wrapper / "gcc").write_text(f"#!/bin/sh\nexec {shutil.which('gcc')} \"$@\"\n")
    (wrapper / "gcc").chmod(0o755)
    r = P.scons(b, *offline(tmp_path, team, "build=other-gcc"),
                env={"PATH": f"{wrapper}:{os.environ['PATH']}"})
    # a miss: the stages run, and offline with an empty download cache the fetch stops them
    assert r.returncode != 0 and "Retrieved" not in r.stdout
    assert "offline" in r.stderr and "Traceback" not in r.stderr


def test_a_changed_arch_file_misses(team, sources, tmp_path):
    """kernel/arch/<arch>.toml is in the key: the toolchain stage depends on it, so it is a leaf of the graph."""
    b = teammate(tmp_path, sources, team)
    assert P.scons(b, *offline(tmp_path, team, "build=same")).returncode == 0
    arch_file = b / "kernel" / "arch" / "x86_64.toml"
    arch_file.write_text(arch_file.read_text().replace("grace_seconds = 3", "grace_seconds = 4", 1))
    r = P.scons(b, *offline(tmp_path, team, "build=edited"))
    assert r.returncode != 0 and "Retrieved" not in r.stdout
    assert "offline" in r.stderr and "Traceback" not in r.stderr


def test_a_damaged_entry_is_refused_and_leaves_no_output(team, sources, tmp_path):
    damaged = tmp_path / "damaged-cache"
    shutil.copytree(team.cache, damaged)
    image = (team.a / "build/x86_64/out/vmlinux.bin").read_bytes()
    # the image is the same under the keys the other tests added (minik_mem=, a system patch): damage each copy
    copies = [p for p in entries(damaged) if p.read_bytes() == image]
    for p in copies:
        p.write_bytes(image[:-1] + bytes([image[-1] ^ 1]))
    b = teammate(tmp_path, sources, team)
    args = ["arch=x86_64", "offline=1", f"cache={tmp_path / 'no-downloads'}", f"cache_dir={damaged}"]
    r = P.scons(b, *args)
    assert r.returncode != 0
    errors = [l for l in r.stderr.splitlines() if l.startswith("scons: ***")]
    assert len(errors) == 1 and "vmlinux.bin" in errors[0] and "damaged copy" in errors[0], r.stderr
    assert any(str(p) in errors[0] for p in copies)
    assert "Traceback" not in r.stderr
    assert os.listdir(b / "build" / "x86_64" / "out") == []
    # --cache-disable: nothing is retrieved; the stages run (and, offline without downloads, stop at fetch)
    r = P.scons(b, "--cache-disable", *args)
    assert r.returncode != 0 and "Retrieved" not in r.stdout and "offline" in r.stderr


def test_help_explains_cache_dir(sources, tmp_path):
    r = P.scons(new_project(tmp_path, sources), "-h")
    assert r.returncode == 0 and "\n  cache_dir " in r.stdout and "--cache-disable" in r.stdout


def test_a_missing_series_patch_is_named_by_scons_not_a_traceback(tmp_path, sources, team):
    proj = teammate(tmp_path, sources, team)
    with open(proj / "patches" / "minik.series", "a") as f:
        f.write("compat/does-not-exist.patch\n")
    r = P.scons(proj, *team.args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "does-not-exist.patch' not found" in r.stderr, r.stderr
