"""mkdump.repro's core: the two sets of conditions, the inner builds' arguments and environment, running one build,
comparing two out/ trees and the report. The whole command runs in test_repro_integration.py."""
import os
import shutil
import socket
import sys

import pytest

from mkdump import repro as R
from mkdump import stamp

NOBODY = R.User("nobody", 65534, 65534)
HOMES = ("/w/home-a", "/w/home-b")


def plan(**kw):
    args = dict(root=False, uts_error=None, user=None, user_error=None, locales=["C", "C.utf8", "POSIX"], jobs=2,
                homes=HOMES, machine_hostname="vm")
    args.update(kw)
    return R.plan(**args)


def by_name(variations):
    return {v.name: v for v in variations}


def test_plan_as_another_user_skips_what_needs_root_and_says_why():
    a, b, variations = plan(root=False, jobs=1)
    v = by_name(variations)
    for name in ("build directory", "environment", "umask", "jobs", "time"):
        assert v[name].applied, name
    assert not v["host name"].applied and "needs root" in v["host name"].detail
    assert not v["user"].applied and "needs root" in v["user"].detail
    assert b.hostname is None and b.user is None and a.hostname is None and a.user is None
    for var in ("TZ", "LANG", "LC_ALL", "USER", "LOGNAME", "HOME", "HOSTNAME"):
        assert a.env[var] != b.env[var], var
    assert (a.env["HOME"], b.env["HOME"]) == HOMES
    assert (a.umask, b.umask) == (0o022, 0o077)
    assert a.jobs == 1 and b.jobs == 2, "with jobs=1 asked, b still builds in parallel"
    assert "SOURCE_DATE_EPOCH" not in a.env and "SOURCE_DATE_EPOCH" not in b.env


def test_plan_as_root_with_working_tools_varies_host_name_and_user():
    a, b, variations = plan(root=True, user=NOBODY, jobs=4)
    v = by_name(variations)
    assert v["host name"].applied and v["user"].applied
    assert b.hostname and b.hostname != "vm" and a.hostname is None
    assert b.user == NOBODY and a.user is None
    assert b.jobs == 4
    assert "nobody" in v["user"].detail and "cache" in v["user"].detail


def test_plan_does_not_give_b_the_machines_own_name():
    _, b, _ = plan(root=True, user=NOBODY, machine_hostname=R.HOSTNAMES[1])
    assert b.hostname != R.HOSTNAMES[1]


def test_plan_as_root_reports_failed_probes_and_a_missing_user():
    _, b, variations = plan(root=True, uts_error="unshare failed: Operation not permitted", user=None)
    v = by_name(variations)
    assert not v["host name"].applied and "Operation not permitted" in v["host name"].detail
    assert not v["user"].applied and "no user 'nobody'" in v["user"].detail
    assert b.hostname is None and b.user is None
    _, b, variations = plan(root=True, user=NOBODY, user_error="/tmp/p/SConstruct: Permission denied")
    assert b.user is None
    assert "nobody cannot use this project: /tmp/p/SConstruct: Permission denied" in by_name(variations)["user"].detail
    assert [line.split()[0] for line in map(R.Variation.line, variations)].count("SKIPPED") == 1


def test_pick_locales_prefers_a_real_non_c_locale():
    assert R.pick_locales(["C", "C.utf8", "POSIX"]) == ("C.utf8", "POSIX")
    assert R.pick_locales(["C", "C.UTF-8", "POSIX", "en_US.utf8", "de_DE.utf8"]) == ("C.UTF-8", "de_DE.utf8")
    assert R.pick_locales(["C", "POSIX", "ja_JP.utf8"]) == ("C", "ja_JP.utf8")
    first, second = R.pick_locales([])
    assert first != second


def test_scons_args_keep_the_users_options_but_not_the_outer_ones():
    arglist = [("arch", "all"), ("build", "out1"), ("jobs", "3"), ("keep", "1"), ("cache", "c"),
               ("cache_dir", "/team"), ("SOURCE_DATE_EPOCH", "1234"), ("mirror", "http://m"), ("sources", "s")]
    args = R.scons_args(arglist, {"build": "/w/a", "jobs": "1", "cache": "/abs/c"})
    assert args == ["arch=all", "SOURCE_DATE_EPOCH=1234", "mirror=http://m", "sources=s",
                    "build=/w/a", "jobs=1", "cache=/abs/c"]
    args = R.scons_args(arglist, {"build": "/w/b", "sources": "/seed", "offline": "1"})
    assert "sources=s" not in args and args[-2:] == ["sources=/seed", "offline=1"]


def test_build_environ_replaces_the_varied_variables_and_keeps_the_rest():
    a, b, _ = plan()
    base = {"PATH": "/bin", "SOURCE_DATE_EPOCH": "99", "LC_TIME": "de_DE", "LC_CTYPE": "x", "TZ": "Europe/Paris",
            "CCACHE_DIR": "/shared/ccache", "HOME": "/root"}
    env = R.build_environ(base, b)
    assert env["PATH"] == "/bin" and env["SOURCE_DATE_EPOCH"] == "99"
    assert "LC_TIME" not in env and "LC_CTYPE" not in env and "CCACHE_DIR" not in env
    assert env["TZ"] == b.env["TZ"] and env["HOME"] == HOMES[1]
    assert R.build_environ(base, a)["HOME"] == HOMES[0]


def test_launch_argv_wraps_only_what_the_condition_asks_for():
    plain = R.Condition("a", {}, 0o022, 1)
    assert R.launch_argv(plain, ["scons", "x=1"], python="py") == ["scons", "x=1"]
    both = R.Condition("b", {}, 0o077, 2, hostname="h.example", user=NOBODY)
    argv = R.launch_argv(both, ["scons", "x=1"], python="py")
    assert argv[:6] == ["unshare", "--uts", "--", "py", "-c", R.SET_HOSTNAME]
    assert argv[6] == "h.example"
    assert argv[7:] == ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "scons", "x=1"]


SHOW = ("import os, socket; m = os.umask(0); "
        "print(f'umask={m:03o} uid={os.getuid()} host={socket.gethostname()} tz={os.environ.get(\"TZ\")} "
        "sde={os.environ.get(\"SOURCE_DATE_EPOCH\")}')")


def test_run_build_applies_umask_and_environment_and_logs_every_line(tmp_path):
    _, b, _ = plan()
    lines = []
    status = R.run_build(b, [sys.executable, "-c", SHOW + "; print('second'); raise SystemExit(3)"],
                         base_env=dict(os.environ, SOURCE_DATE_EPOCH="4242"), cwd=tmp_path,
                         log_path=tmp_path / "b.log", log=lines.append)
    assert status == 3
    assert f"repro b: umask=077 uid={os.getuid()} host={socket.gethostname()} tz={b.env['TZ']} sde=4242" in lines
    assert "repro b: second" in lines
    assert lines[-1].startswith("repro b: finished with exit status 3")
    text = (tmp_path / "b.log").read_text()
    assert "umask=077" in text and "second" in text


def test_run_build_reports_a_silent_build_still_running(tmp_path):
    a, _, _ = plan()
    lines = []
    status = R.run_build(a, [sys.executable, "-c", "import time; time.sleep(1.2); print('done')"],
                         base_env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "a.log", log=lines.append,
                         heartbeat=0.3)
    assert status == 0
    assert any("still building" in l for l in lines[:-2]), lines
    assert "repro a: done" in lines


def _root_tools_work():
    if os.geteuid() != 0:
        return "needs root"
    return R.probe_uts() or R.probe_user(NOBODY, [sys.executable], cwd="/")


@pytest.mark.skipif(bool(_root_tools_work()), reason=f"new host name and another uid: {_root_tools_work()}")
def test_run_build_as_root_really_changes_host_name_and_uid(tmp_path):
    _, b, _ = plan(root=True, user=R.other_user())
    os.chmod(tmp_path, 0o777)
    lines = []
    status = R.run_build(b, [sys.executable, "-c", SHOW], base_env=dict(os.environ), cwd=tmp_path,
                         log_path=tmp_path / "b.log", log=lines.append)
    assert status == 0, lines
    assert f"umask=077 uid={b.user.uid} host={b.hostname}" in lines[0]
    assert socket.gethostname() != b.hostname, "the namespace kept the new name to itself"


@pytest.mark.skipif(os.geteuid() != 0, reason="probing another user needs root")
def test_probe_user_names_what_the_other_user_cannot_read(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "SConstruct").write_text("")
    os.chmod(tmp_path, 0o755)
    reason = R.probe_user(R.other_user(), [str(closed / "SConstruct")], cwd="/")
    assert reason and "Permission denied" in reason and "SConstruct" in reason


def write_tree(top, files, mode=0o644):
    for name, data in files.items():
        p = top / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)


def test_compare_trees_names_different_and_missing_files(tmp_path):
    write_tree(tmp_path / "a", {"vmlinux.bin": b"\x90" * 64, "manifest.json": b"{}", "only-a": b"x"})
    write_tree(tmp_path / "b", {"vmlinux.bin": b"\x90" * 63 + b"\x91", "manifest.json": b"{}", "only-b": b"y"})
    results = R.compare_trees(tmp_path / "a", tmp_path / "b", prefix="x86_64/")
    assert [r.name for r in results] == ["x86_64/manifest.json", "x86_64/only-a", "x86_64/only-b",
                                         "x86_64/vmlinux.bin"]
    same = {r.name: r.identical for r in results}
    assert same == {"x86_64/manifest.json": True, "x86_64/only-a": False, "x86_64/only-b": False,
                    "x86_64/vmlinux.bin": False}
    vm = results[-1]
    assert vm.a.size == vm.b.size == 64 and vm.a.sha256 == stamp.sha256_file(tmp_path / "a" / "vmlinux.bin")

    lines = R.table(results)
    assert lines[0].split() == ["file", "size", "a", "sha256", "a", "mode", "a", "size", "b", "sha256", "b", "mode",
                                "b", "result"]
    row = {l.split()[0]: l.split() for l in lines[1:]}
    assert row["x86_64/manifest.json"][-1] == "identical"
    assert row["x86_64/vmlinux.bin"][-1] == "DIFFERENT" and row["x86_64/vmlinux.bin"][1] == "64"
    assert row["x86_64/vmlinux.bin"][2] == vm.a.sha256[:16] and row["x86_64/vmlinux.bin"][5] == vm.b.sha256[:16]
    assert row["x86_64/only-a"][4] == "missing" and row["x86_64/only-a"][-1] == "DIFFERENT"

    same, sentence = R.verdict(results, work="/w/repro", reports=["/w/repro/diffoscope-x86_64-vmlinux.bin.txt"])
    assert not same
    assert sentence.startswith("The two builds differ in x86_64/only-a, x86_64/only-b, x86_64/vmlinux.bin:")
    assert "/w/repro/a and /w/repro/b" in sentence and "diffoscope-x86_64-vmlinux.bin.txt" in sentence
    assert sentence.count(".") >= 1 and "\n" not in sentence


def test_identical_trees_with_umask_modes_pass_with_a_note(tmp_path):
    files = {"vmlinux.bin": b"\x90" * 8, "mkdump-load-x86_64": b"#!/bin/sh\n"}
    write_tree(tmp_path / "a" / "x86_64" / "out", files, 0o644)
    write_tree(tmp_path / "b" / "x86_64" / "out", files, 0o600)
    results = R.compare_builds(tmp_path / "a", tmp_path / "b", ("x86_64",))
    assert all(r.identical for r in results)
    same, sentence = R.verdict(results, work="/w", reports=[])
    assert same and sentence == "All 2 published files are identical in both builds."
    notes = R.mode_notes(results)
    assert len(notes) == 1 and "x86_64/mkdump-load-x86_64, x86_64/vmlinux.bin" in notes[0]
    # the load script lost its x bit (write_atomic gives it 0755 whatever the umask; here the test took it)
    problems = R.usability_problems(tmp_path / "b" / "x86_64" / "out", "b")
    assert problems == ["b: mkdump-load-x86_64 is not executable (mode 0600)"]
    (tmp_path / "b" / "x86_64" / "out" / "vmlinux.bin").chmod(0o200)
    assert "b: vmlinux.bin is not readable by its owner (mode 0200)" in \
        R.usability_problems(tmp_path / "b" / "x86_64" / "out", "b")
    assert R.usability_problems(tmp_path / "c", "c") == [f"build c published no {tmp_path / 'c'}"]


def test_no_files_at_all_is_not_a_pass(tmp_path):
    same, sentence = R.verdict([], work="/w", reports=[])
    assert not same and "no files" in sentence


def test_diffoscope_missing_is_said(tmp_path):
    results = [R.FileResult("x86_64/vmlinux.bin", R.FileInfo(1, "a" * 64, 0o644), R.FileInfo(1, "b" * 64, 0o644))]
    paths, note = R.diffoscope_reports(results, tmp_path, tmp_path, tmp_path, log=lambda m: None,
                                       which=lambda name: None)
    assert paths == [] and "diffoscope-minimal" in note
    same, sentence = R.verdict(results, work="/w", reports=paths, diffoscope_note=note)
    assert not same and "diffoscope is not installed" in sentence


@pytest.mark.skipif(shutil.which("diffoscope") is None, reason="diffoscope is not installed (diffoscope-minimal)")
def test_diffoscope_report_for_each_differing_file(tmp_path):
    write_tree(tmp_path / "a" / "x86_64" / "out", {"vmlinux.bin": b"same start\nbuilt on host-a\n", "same": b"1"})
    write_tree(tmp_path / "b" / "x86_64" / "out", {"vmlinux.bin": b"same start\nbuilt on host-b\n", "same": b"1"})
    results = R.compare_builds(tmp_path / "a", tmp_path / "b", ("x86_64",))
    paths, note = R.diffoscope_reports(results, tmp_path / "a", tmp_path / "b", tmp_path, log=lambda m: None)
    assert note is None and paths == [str(tmp_path / "diffoscope-x86_64-vmlinux.bin.txt")]
    text = (tmp_path / "diffoscope-x86_64-vmlinux.bin.txt").read_text()
    assert "host-a" in text and "host-b" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_seed_for_other_user_copies_what_a_used_from_where_a_found_it(tmp_path):
    a_root, cache, dest = tmp_path / "a", tmp_path / "cache", tmp_path / "seed"
    (tmp_path / "srcdir").mkdir()
    (tmp_path / "srcdir" / "linux.tar.bz2").write_bytes(b"linux")
    write_tree(cache, {"files/minik.patch": b"patch", "verified/minik.patch.json": b'{"url": "http://m/minik.patch"}'})
    stamp.write(a_root / "fetch" / "linux.where.json",
                {"path": str(tmp_path / "srcdir" / "linux.tar.bz2"), "file": "linux.tar.bz2", "origin": "sources",
                 "url": None})
    stamp.write(a_root / "fetch" / "minik.where.json",
                {"path": str(cache / "files" / "minik.patch"), "file": "minik.patch", "origin": "download",
                 "url": "http://m/minik.patch"})
    stamp.write(a_root / "fetch" / "minik.json", {"name": "minik"})
    me = R.User("me", os.getuid(), os.getgid())
    overrides = R.seed_for_other_user(a_root, cache, dest, me)
    assert overrides == {"cache": str(dest / "cache"), "offline": "1", "sources": str(dest / "sources")}
    assert (dest / "sources" / "linux.tar.bz2").read_bytes() == b"linux"
    assert (dest / "cache" / "files" / "minik.patch").read_bytes() == b"patch"
    assert b"http://m/minik.patch" in (dest / "cache" / "verified" / "minik.patch.json").read_bytes()
    assert sorted(os.listdir(dest / "cache" / "files")) == ["minik.patch"]

    (a_root / "fetch" / "linux.where.json").unlink()
    assert R.seed_for_other_user(a_root, cache, tmp_path / "seed2", me)["sources"] == ""


def test_other_user_is_none_for_an_unknown_name():
    assert R.other_user("no-such-user-mkdump") is None
    assert R.other_user("root") == R.User("root", 0, 0)
