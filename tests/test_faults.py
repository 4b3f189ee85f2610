"""Faults from outside, through the real scons on the fixture kernel: Ctrl-C, kill -9, a concurrent run.

The fixture's sources come from a sources= directory, offline: no test here needs the network. A stand-in program
early on PATH (`stand_in`) does the real work and then blocks, so a test can act while a stage is in a known place.
"""
import errno
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest

from support import procgroup
from support import project as P


def offline(sources, tmp_path):
    return ["arch=x86_64", "offline=1", f"sources={sources.dir}", f"cache={tmp_path / 'cache'}"]


def stand_in(bindir, name, body):
    """An executable `name` in `bindir` running the shell `body`, where $REAL is the program it stands in for."""
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text(f"#!/bin/sh\nREAL={shlex.quote(shutil.which(name))}\n{body}")
    path.chmod(0o755)
    return bindir


def blocking(bindir, name, marker, filter_output="", release=None, once=False):
    """`name` doing its real work (its output through `filter_output`), then touching `marker` and blocking: until
    the file `release` appears, then ending well, or else for good. With `once`, only the first call blocks (a
    stage that was waiting for the first one's lock when Ctrl-C came goes on and calls `name` again)."""
    wait = (f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.05; done\n" if release is not None
            else "exec sleep 600\n")
    first = f'[ -e {shlex.quote(str(marker))} ] && exec "$REAL" "$@"\n' if once else ""
    return stand_in(bindir, name, first + f'"$REAL" "$@"{filter_output} || exit $?\n'
                                          f'touch {shlex.quote(str(marker))}\n' + wait)


class Run:
    """scons in a session of its own, as a shell runs it in its own process group: a test can signal the group
    the way Ctrl-C in a terminal signals every process of the foreground job. Its output goes to files, so a test
    can read it while scons runs."""

    def __init__(self, logs, project, *args, bindir=None):
        env = dict(os.environ)
        env.pop("SOURCE_DATE_EPOCH", None)
        if bindir is not None:
            env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
        logs.mkdir(parents=True)
        self.out_path, self.err_path = logs / "stdout", logs / "stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "SCons", *args], cwd=project, env=env, text=True,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.stdout = self.stderr = None

    @property
    def pid(self):
        return self.proc.pid

    def said(self):
        return self.err_path.read_text()

    def wait_for(self, ready, timeout=300):
        """Until `ready` (a path that must appear, or a function) is true."""
        test = ready if callable(ready) else lambda: os.path.exists(ready)
        deadline = time.monotonic() + timeout
        while not test():
            if self.proc.poll() is not None:
                self.finish()
                pytest.fail(f"scons ended before {ready} was seen:\n{self.stdout}{self.stderr}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"{ready} was not seen in {timeout} s:\n{self.stdout}{self.stderr}")
            time.sleep(0.05)

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)

    def finish(self, timeout=600):
        self.proc.wait(timeout=timeout)
        self.stdout, self.stderr = self.out_path.read_text(), self.err_path.read_text()
        return self.proc.returncode

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.stdout is None:
            self.finish()


@pytest.fixture
def runs(tmp_path):
    started = []

    def start(*args, **kw):
        started.append(Run(tmp_path / f"run{len(started) + 1}", *args, **kw))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def leftovers(directory):
    """Staging names (`.<name>.<kind>-XXXXXXXX`) anywhere under `directory` (a build or an arch directory)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob(".*")
                  if any(f".{kind}-" in p.name for kind in ("tmp", "unpack", "old")))


@pytest.mark.parametrize("target, program, filter_output, made", [
    ("patch", "cp", "", {"x86_64/minik": "x86_64/stamps/patch-minik", "x86_64/system": "x86_64/stamps/patch-system"}),
    # The decompressor hands on part of the archive, then blocks: Ctrl-C breaks the tar stream off mid-way.
    ("unpack", "bzip2", " | head -c 100000", {"src/linux-2.6.9": "stamps/unpack-linux",
                                              "src/mkexec": "stamps/unpack-mkexec"}),
])
def test_ctrl_c_says_interrupted_and_leaves_nothing_half_done(sources, tmp_path, runs, target, program,
                                                              filter_output, made):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    # Before patch, unpack: it runs cp too (it keeps the tree in the download cache's store).
    assert P.scons(proj, "unpack" if target == "patch" else "fetch", *args).returncode == 0
    marker = tmp_path / "blocked"
    # Both patch stages run at once: the second waits for the pristine tree's lock, then runs its own cp.
    run = runs(proj, target, *args, bindir=blocking(tmp_path / "bin", program, marker, filter_output, once=True))
    run.wait_for(marker)
    run.signal(signal.SIGINT)
    assert run.finish() == 2
    said = [line for line in run.stderr.splitlines() if line.startswith("mkdump:") and "[x86_64]" not in line]
    assert len(said) == 1 and "was interrupted" in said[0] and f"{program} was stopped by SIGINT" in said[0], \
        run.stderr
    for wrong in ("mkdump: error", "damaged", "free some space", "Traceback"):
        assert wrong not in run.stderr, run.stderr
    build = proj / "build"
    assert leftovers(build) == []
    trees = {tree: (build / tree).exists() for tree in made}
    assert not all(trees.values())
    assert trees == {tree: (build / f"{name}.json").exists() for tree, name in made.items()}
    r = P.scons(proj, target, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all((build / tree).is_dir() for tree in made)


def long_make(bindir, marker, when):
    """A `make` that, when its arguments match the shell pattern `when`, writes its process group to `marker` and
    stands for a long make: a job (sleep) started in the background and waited for. Every other make is the real
    one."""
    return stand_in(bindir, "make", f'case " $* " in\n  {when})\n'
                                    f'    sleep 600 &\n    ps -o pgid= $$ > {shlex.quote(str(marker))}.$$.tmp\n'
                                    f'    mv {shlex.quote(str(marker))}.$$.tmp {shlex.quote(str(marker))}\n'
                                    f'    wait; exit 1;;\nesac\nexec "$REAL" "$@"\n')


@pytest.mark.parametrize("target, when, sig, to_group, stamp, jobs", [
    # Ctrl-C in a terminal: SIGINT to scons' process group, which make's own session is not part of.
    # By default the stages run in SCons' worker threads (scons -j follows jobs=), which no signal reaches.
    ("config", "*allnoconfig*", signal.SIGINT, True, "config-minik", None),
    ("build", "*V=1*", signal.SIGINT, True, "build-minik", None),
    # `kill <scons>`: SIGTERM to scons alone.
    ("build", "*KVER=*", signal.SIGTERM, False, "mkexec", None),
    # scons -j1: one stage at a time, in the main thread.
    ("config", "*allnoconfig*", signal.SIGINT, True, "config-minik", "-j1"),
])
def test_ctrl_c_stops_a_running_make_at_once(sources, tmp_path, runs, target, when, sig, to_group, stamp, jobs):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    assert P.scons(proj, "fetch", *args).returncode == 0
    marker = tmp_path / "make-group"
    run = runs(proj, target, *args, *([jobs] if jobs else []), bindir=long_make(tmp_path / "bin", marker, when))
    run.wait_for(marker)
    make_group = int(marker.read_text())
    assert make_group != run.pid and procgroup.members(make_group)
    sent = time.monotonic()
    if to_group:
        run.signal(sig)
    else:
        os.kill(run.pid, sig)
    assert procgroup.gone_within(make_group, 5), \
        f"make's process group was still there {time.monotonic() - sent:.1f} s after {sig.name}"
    assert run.finish(timeout=60) == 2
    said = [line for line in run.stderr.splitlines() if line.startswith("mkdump:") and "[x86_64]" not in line]
    # one sentence per stage that was running: unless -j1, both kernels' config or make may have been
    assert len(said) == 1 or (jobs != "-j1" and len(said) == 2), run.stderr
    assert all("was interrupted" in line and f"make was stopped by {sig.name}" in line for line in said), run.stderr
    for wrong in ("mkdump: error", "Traceback"):
        assert wrong not in run.stderr, run.stderr
    assert not (proj / "build" / "x86_64" / "stamps" / f"{stamp}.json").exists()


def published(out):
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_re_made_tree_runs_its_config_and_build_again(sources, tmp_path):
    """fuzz= re-makes both trees from the pristine one with the same patches: their stamps must still change."""
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    r = P.scons(proj, "fuzz=1", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    for kind in ("minik", "system"):
        assert (arch / "obj" / kind / ".config").is_file(), kind
        assert (arch / "obj" / kind / "vmlinux").is_file(), kind
    r = P.scons(proj, "fuzz=1", "minik_mem=16", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    out = arch / "out"
    assert sorted(os.listdir(out)) == sorted(["manifest.json", "mkdump-load-x86_64", "mkexec.ko", "vmlinux.bin",
                                              "minik-bzImage", "minik-System.map", "system-bzImage",
                                              "system-System.map", "system-config", "system-modules.tar",
                                              "mkdutils.tar"])
    assert '"minik_mem": 16' in (out / "manifest.json").read_text()


def test_a_failing_check_leaves_out_as_the_last_run_published_it(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    r = P.scons(proj, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    before = published(arch / "out")
    # The load address check reads head.S again: a tree edited by hand since the build fails it.
    head = arch / "minik" / "arch" / "x86_64" / "boot" / "compressed" / "head.S"
    head.write_text(head.read_text().replace("$0x100000", "$0x200000"))
    r = P.scons(proj, "minik_mem=16", *args)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("mkdump: error:")]
    assert len(errors) == 1 and "nothing was published" in errors[0], r.stderr
    assert published(arch / "out") == before
    assert leftovers(arch) == []


def test_an_edit_of_the_pristine_tree_never_reaches_a_kernel_tree(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    r = P.scons(proj, "patch", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    arch = proj / "build" / "x86_64"
    main = proj / "build" / "src" / "linux-2.6.9" / "init" / "main.c"
    original = main.read_bytes()
    main.write_bytes(original + b"/* edited in the pristine tree */\n")
    shutil.rmtree(arch / "minik")   # so that the patch stage copies the pristine tree again
    r = P.scons(proj, "patch", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert b"edited in the pristine tree" not in (arch / "minik" / "init" / "main.c").read_bytes()
    assert main.read_bytes() == original
    assert f"{main.parents[1]} changed after it was unpacked and verified; unpacking it again" in r.stderr
    # A file only touched still holds the verified tree: its new state is recorded, nothing is unpacked.
    os.utime(main)
    shutil.rmtree(arch / "minik")
    r = P.scons(proj, "patch", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unpacking it again" not in r.stderr and "Unpacking" not in r.stderr


def test_a_second_run_on_the_build_directory_waits_for_the_first(sources, tmp_path, runs):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    assert P.scons(proj, "unpack", *args).returncode == 0     # its cp is not the one this test blocks
    build = proj / "build"
    marker, release = tmp_path / "copied", tmp_path / "release"
    first = runs(proj, "patch", *args, bindir=blocking(tmp_path / "bin", "cp", marker, release=release))
    first.wait_for(marker)          # the first run is in the middle of a patch stage (both kernels' run at once)
    second = runs(proj, "patch", *args)
    waiting = f"mkdump: waiting for another mkdump build in {build} (pid {first.pid}) to finish"
    second.wait_for(lambda: waiting in second.said())
    staging = leftovers(build / "x86_64")
    assert len(staging) == 1 and staging[0].startswith((".minik.tmp-", ".system.tmp-")), staging
    patched = staging[0].split(".")[1]
    # Looking never waits: -n and -q answer at once, say why the answer is provisional, and change nothing.
    stamps = sorted(os.listdir(build / "x86_64" / "stamps"))
    database = (build / ".sconsign.dblite").read_bytes()
    for look, status in (("-n", 0), ("-q", 1)):
        r = P.scons(proj, look, "patch", *args, timeout=60)
        assert r.returncode == status, r.stdout + r.stderr
        assert f"another mkdump build in {build} (pid {first.pid}) is going on" in r.stderr
    assert sorted(os.listdir(build / "x86_64" / "stamps")) == stamps
    assert (build / ".sconsign.dblite").read_bytes() == database
    assert P.scons(proj, "-h", timeout=60).returncode == 0
    time.sleep(1)
    assert second.proc.poll() is None and not (build / "x86_64" / patched).exists()
    assert leftovers(build / "x86_64") == staging, "the waiting run touched the staging tree of the running one"
    release.touch()
    assert first.finish() == 0, first.stdout + first.stderr
    assert second.finish() == 0, second.stdout + second.stderr
    assert second.stderr.count(waiting) == 1
    assert "patching" not in second.stderr, "the second run redid what the first had just done"
    assert (build / "x86_64" / "minik" / "Makefile").is_file()


def test_kill_9_during_unpack_leaves_a_staging_tree_the_next_run_removes(sources, tmp_path, runs):
    proj = P.fixture_project(tmp_path / "proj", sources)
    args = offline(sources, tmp_path)
    assert P.scons(proj, "fetch", *args).returncode == 0
    marker = tmp_path / "blocked"
    run = runs(proj, "unpack", *args, bindir=blocking(tmp_path / "bin", "bzip2", marker, " | head -c 100000"))
    run.wait_for(marker)
    run.signal(signal.SIGKILL)
    run.finish()
    build = proj / "build"
    left = leftovers(build)
    # mkexec's and mkdutils' archives unpack at the same time as Linux's, without bzip2: under load, the kill can
    # find them half-unpacked too.
    assert any(name.startswith("src/.linux-2.6.9.unpack-") for name in left), left
    assert all(re.fullmatch(r"src/\.[\w.-]+\.unpack-\w+", name) for name in left), left
    r = P.scons(proj, "unpack", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"mkdump: removed what an interrupted run left in {build}: {', '.join(left)}" in r.stderr
    assert leftovers(build) == []
    assert (build / "src" / "linux-2.6.9" / "Makefile").is_file()


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs, to fill up for real."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which only root can mount")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "mkdump-test", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"a tmpfs cannot be mounted here ({r.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(path):
    """Fill the filesystem of `path` with the file `path`, to the last page."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.parametrize("before, target, what", [
    # Linux's and mkexec's archives are unpacked at once: whichever fills the disk first is said.
    ("fetch", "unpack", r"unpacking \S+\.ta[rz][.a-z0-9]* into {build}/src/[a-z0-9.-]+"),
    # The tree is linked, not copied: the patched files are what fills the disk. Both kernel trees are patched at
    # once: whichever fills it first is said.
    ("unpack", "patch", r"writing the patched files into {build}/x86_64/\.(minik|system)\.tmp-[a-z0-9_]{{8}}"),
])
def test_a_full_build_directory_is_one_sentence_and_keeps_the_signature_database(sources, tmp_path, small_disk,
                                                                                 before, target, what):
    proj = P.fixture_project(tmp_path / "proj", sources)
    build = small_disk / "build"
    args = offline(sources, tmp_path) + [f"build={build}"]
    r = P.scons(proj, "fetch", before, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    database = (build / ".sconsign.dblite").read_bytes()
    fill(small_disk / "filler")
    r = P.scons(proj, target, *args)
    assert r.returncode == 2
    said = [line for line in r.stderr.splitlines() if "mkdump: error" in line or "No space" in line]
    sentence = (rf"mkdump: error: the build directory {{build}} is full \({what}: No space left on device\); "
                r"free some space there and run again\.")
    assert len(said) == 1 and re.fullmatch(sentence.format(build=re.escape(str(build))), said[0]), r.stderr
    assert "Traceback" not in r.stderr
    assert (build / ".sconsign.dblite").read_bytes() == database
    assert not (build / ".sconsign.tmp").exists()
    assert leftovers(build / "x86_64") == []
    (small_disk / "filler").unlink()
    r = P.scons(proj, target, *args)
    assert r.returncode == 0, r.stdout + r.stderr


def load_tool():
    path = P.ROOT / "site_scons" / "site_tools" / "mkdump_pipeline.py"
    spec = importlib.util.spec_from_file_location("mkdump_pipeline_under_test", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def load_signatures(monkeypatch):
    """The signatures module, with its once-per-run memory of a full disk reset, as for a new run."""
    from mkdump_scons import signatures
    monkeypatch.setattr(signatures, "_SAID_NO_SPACE", [])
    return signatures


def test_a_full_disk_while_writing_the_signature_database(tmp_path, monkeypatch, capsys):
    """SCons writes its database last, after the stages: a full disk there was a traceback (the error is injected
    at the write, as a real disk would fill up between the last stage and this write)."""
    signatures = load_signatures(monkeypatch)
    monkeypatch.setattr(signatures.SignatureDatabase, "build", str(tmp_path))
    db = signatures.DATABASE.open(str(tmp_path / ".sconsign"), "c")
    db["stage"] = b"done"
    db.sync()
    before = (tmp_path / ".sconsign.dblite").read_bytes()
    db["stage"] = b"done again"

    def full_half_way(data, f, protocol):
        f.write(b"\x80" * 1000)
        f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(db, "_pickle_dump", full_half_way)
    with pytest.raises(SystemExit) as e:
        db.sync()
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        f"mkdump: error: the build directory {tmp_path} is full (No space left on device writing SCons' signature "
        f"database {tmp_path / '.sconsign.tmp'}); free some space there and run again.\n")
    assert (tmp_path / ".sconsign.dblite").read_bytes() == before
    assert not (tmp_path / ".sconsign.tmp").exists()
    db.close()      # as SCons does at exit: no second attempt, no second message
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("stage, error, said", [
    ("patch", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
     "the build directory {build} is full (No space left on device writing {build}); free some space there and "
     "run again."),
    ("patch", OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "{build}/x86_64/stamps/.stamp-abcdefgh"),
     "the build directory {build} is full (Disk quota exceeded writing {build}/x86_64/stamps/.stamp-abcdefgh); "
     "free some space there and run again."),
    ("install", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
     "No space left on device writing {destdir}; free some space there and run again."),
])
def test_a_stage_that_fills_the_disk_says_where(tmp_path, capsys, monkeypatch, stage, error, said):
    from mkdump import pipeline
    tool = load_tool()
    load_signatures(monkeypatch)
    build, destdir = str(tmp_path / "build"), str(tmp_path / "stage")
    if error.filename:
        error.filename = error.filename.format(build=build)

    def fills_the_disk(params, ctx):
        raise error

    monkeypatch.setattr(pipeline, stage, fills_the_disk)
    params = {"patch": {"kind": "minik", "fuzz": 0}, "install": {}}[stage]
    where = {"root": build, "arch": "x86_64", "top": str(P.ROOT), "out_name": "out"}
    source = types.SimpleNamespace(read=lambda: json.dumps({"stage": stage, "where": where, "params": params}))
    env = {"MKDUMP_OPTS": types.SimpleNamespace(build=build, destdir=destdir)}
    assert tool._run_stage([], [source], env) == 2
    assert capsys.readouterr().err == f"mkdump: error: {said.format(build=build, destdir=destdir)}\n"


def snapshot(*roots):
    """Every file, link and directory under `roots`: (kind, size, mtime, inode) for files and links."""
    seen = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                seen[os.path.join(dirpath, name)] = "dir"
            for name in filenames:
                st = os.lstat(os.path.join(dirpath, name))
                seen[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
    return seen


def test_a_build_writes_only_in_the_build_and_cache_directories(sources, tmp_path):
    proj = P.fixture_project(tmp_path / "proj", sources)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    before = snapshot(tmp_path, sources.dir)
    r = P.scons(proj, *offline(sources, tmp_path), env={"TMPDIR": str(scratch)})
    assert r.returncode == 0, r.stdout + r.stderr
    after = snapshot(tmp_path, sources.dir)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    allowed = (str(proj / "build"), str(tmp_path / "cache"))
    # Trust on first use records the two unpinned mkdump files in the checkout: the one write outside (README).
    assert [p for p in changed if not p.startswith(allowed)] == [str(proj / "patches" / "sources.lock")]
    assert os.listdir(scratch) == [], "temporary files were left in TMPDIR"
