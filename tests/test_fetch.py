import bz2
import errno
import gzip
import hashlib
import io
import lzma
import multiprocessing
import os
import socket
import tarfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import mkdump.fetch
import mkdump.unpack
from mkdump.errors import MkdumpError
from mkdump.fetch import Fetched, Fetcher
from mkdump.narhash import nar_sha256
from mkdump.sources import LockFile, Source, load_sources
from support.httpserver import serve

ROOT = Path(__file__).resolve().parent.parent
PATCH = b"--- a/Makefile\n+++ b/Makefile\n" + bytes(range(256)) * 400     # ~100 kB, several chunks
OTHER = b"--- a/Makefile\n+++ b/Makefile\n(someone else's file)\n"


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Log(list):
    def __call__(self, line):
        self.append(line)

    @property
    def text(self):
        return "\n".join(self)


class NoNetwork:
    def get(self, *args, **kwargs):
        raise AssertionError("the network was used")


@pytest.fixture
def server():
    with serve() as s:
        yield s


def source(file="m.patch", urls=(), sha256=None, tree=None, alternatives=(), name="m", glob=None, **more):
    return Source(name=name, file=file, urls=tuple(urls), sha256=sha256, tree_sha256=tree,
                  alternatives=tuple(alternatives), sources_glob=glob, **more)


def fetcher(tmp_path, **kw):
    kw.setdefault("log", Log())
    kw.setdefault("backoff", 0.001)
    kw.setdefault("retries", 2)
    kw.setdefault("timeout", 5)
    kw.setdefault("progress", io.StringIO())
    return Fetcher(tmp_path / "cache", **kw)


def listing(path):
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# -- the happy paths -------------------------------------------------------------------------------------------

def test_download_then_cache(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH)
    src = source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH))
    got = fetcher(tmp_path).fetch(src)
    path = str(tmp_path / "cache" / "files" / "m.patch")
    assert got == Fetched("m", "m.patch", path, sha(PATCH), None, server.url + "/dl/m.patch", "download")
    assert open(path, "rb").read() == PATCH
    assert listing(tmp_path / "cache" / "tmp") == []
    again = fetcher(tmp_path, session=NoNetwork()).fetch(src)
    assert again == Fetched("m", "m.patch", path, sha(PATCH), None, server.url + "/dl/m.patch", "cache")
    assert route.hits == 1


def test_mirrors_first_in_order(tmp_path, server):
    server.add("/m2/m.patch", PATCH)
    server.add("/up/m.patch", PATCH)
    f = fetcher(tmp_path, mirrors=[server.url + "/m1/", server.url + "/m2"])
    got = f.fetch(source(urls=[server.url + "/up/m.patch"], sha256=sha(PATCH)))
    assert got.url == server.url + "/m2/m.patch"
    assert [p for p, _ in server.requests] == ["/m1/m.patch", "/m2/m.patch"]


def test_fall_through_and_retry(tmp_path, server):
    server.add("/gone/m.patch", status=404)
    broken = server.add("/broken/m.patch", PATCH, fail_first=100)
    flaky = server.add("/flaky/m.patch", PATCH, fail_first=2, fail_status=503)
    log = Log()
    f = fetcher(tmp_path, retries=2, log=log)
    got = f.fetch(source(urls=[server.url + p for p in ("/gone/m.patch", "/broken/m.patch", "/flaky/m.patch")],
                         sha256=sha(PATCH)))
    assert got.url == server.url + "/flaky/m.patch"
    assert broken.hits == 3 and flaky.hits == 3      # 1 try + 2 retries each; 404 is not retried
    assert server.hits("/gone/m.patch") == 1
    assert "HTTP 503; retrying" in log.text


def test_every_url_failing_is_listed(tmp_path, server):
    server.add("/a/m.patch", status=404)
    server.add("/b/m.patch", PATCH, fail_first=100)
    urls = [server.url + "/a/m.patch", server.url + "/b/m.patch", "http://127.0.0.1:1/m.patch"]
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path, retries=1).fetch(source(urls=urls, sha256=sha(PATCH)))
    message = str(err.value)
    assert f"{urls[0]}: HTTP 404" in message
    assert f"{urls[1]}: gave up after 2 attempts, last: HTTP 500" in message
    assert f"{urls[2]}: gave up after 2 attempts, last: connection failed ([Errno 111] Connection refused)" in message
    assert "m.patch" in message and "sources= directory" in message
    assert listing(tmp_path / "cache" / "files") == []


def test_a_web_page_is_not_the_file(tmp_path, server):
    server.add("/sf/m.patch", b"<html>Your download will start shortly</html>", content_type="text/html; charset=utf-8")
    server.add("/up/m.patch", PATCH)
    lock = LockFile(tmp_path / "sources.lock")
    got = fetcher(tmp_path, lock=lock).fetch(source(urls=[server.url + "/sf/m.patch", server.url + "/up/m.patch"]))
    assert got.url.endswith("/up/m.patch") and lock.get("m.patch") == sha(PATCH)


def test_an_announced_body_over_the_cap_is_refused_unread_and_not_asked_again(tmp_path, server):
    huge = server.add("/huge/m.patch", PATCH, announce_length=10 ** 15)
    server.add("/up/m.patch", PATCH)
    log = Log()
    got = fetcher(tmp_path, log=log, retries=4).fetch(
        source(urls=[server.url + "/huge/m.patch", server.url + "/up/m.patch"], max_bytes=len(PATCH) + 1))
    assert got.url.endswith("/up/m.patch") and huge.hits == 1
    assert f"announces {10 ** 15} bytes, more than the source's max_bytes ({len(PATCH) + 1})" in log.text


def test_a_body_growing_over_the_cap_is_cut_off_and_not_asked_again(tmp_path, server):
    endless = server.add("/endless/m.patch", PATCH * 4, send_length=False)
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path, retries=4).fetch(source(urls=[server.url + "/endless/m.patch"], max_bytes=len(PATCH)))
    assert f"sent more than the source's max_bytes ({len(PATCH)})" in str(err.value)
    assert endless.hits == 1
    assert listing(tmp_path / "cache" / "tmp") == [] and listing(tmp_path / "cache" / "rejected") == []


COUNTDOWN = (b"<!DOCTYPE html><html><head><meta http-equiv=\"refresh\" content=\"5; url=/mirror/m.patch\">"
             b"</head><body>Your download will start in 5 seconds...</body></html>")


def on_loopback(server, url):
    """`url` moved onto the loopback server: https://host/path becomes <server>/host/path."""
    parts = urlsplit(url)
    return f"{server.url}/{parts.netloc}{parts.path}"


def test_sourceforge_forms_a_countdown_page_then_a_redirect_to_the_file(tmp_path, server):
    minik = load_sources(ROOT / "patches" / "sources.toml")["minik"]
    urls = [on_loopback(server, u) for u in minik.urls]
    path = lambda url: url[len(server.url):]
    # As SourceForge answers a client it takes for a browser, then as it answers wget: via its download
    # redirector to a mirror.
    countdown = server.add(path(urls[0]), COUNTDOWN, content_type="text/html; charset=utf-8")
    download = [u for u in urls if u.endswith("/download")][0]
    mirror = [u for u in urls if ".dl.sourceforge.net/" in u and "/master." not in u][0]
    server.add(path(download), redirect="/redirector?use_mirror=x")
    server.add("/redirector", redirect=mirror)
    served = server.add(path(mirror), KERNEL_PATCH)
    lock = LockFile(tmp_path / "sources.lock")
    got = fetcher(tmp_path, lock=lock).fetch(replace(minik, urls=tuple(urls)))
    assert got.url == download and got.file == minik.file and open(got.path, "rb").read() == KERNEL_PATCH
    assert countdown.hits == 1 and served.hits == 1 and lock.get(minik.file) == sha(KERNEL_PATCH)
    assert listing(tmp_path / "cache" / "files") == [minik.file] and listing(tmp_path / "cache" / "rejected") == []


def test_timeout_is_retried_then_next_url(tmp_path, server):
    slow = server.add("/slow/m.patch", PATCH, delay=1.0)
    server.add("/fast/m.patch", PATCH)
    f = fetcher(tmp_path, timeout=0.2, retries=1)
    got = f.fetch(source(urls=[server.url + "/slow/m.patch", server.url + "/fast/m.patch"], sha256=sha(PATCH)))
    assert got.url.endswith("/fast/m.patch")
    assert slow.hits == 2


def test_resume_after_dropped_connection(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH, truncate_at=30000, truncate_times=1, etag='"v1"')
    got = fetcher(tmp_path).fetch(source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert open(got.path, "rb").read() == PATCH
    assert route.hits == 2
    assert route.headers[1]["Range"] == "bytes=30000-"
    assert route.headers[1]["If-Range"] == '"v1"'


def test_resume_through_repeated_drops(tmp_path, server):
    # Every answer is cut after 20000 bytes; each attempt still progresses, so the download completes.
    route = server.add("/dl/m.patch", PATCH, truncate_at=20000)
    got = fetcher(tmp_path, retries=1).fetch(source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert open(got.path, "rb").read() == PATCH
    assert route.hits == -(-len(PATCH) // 20000)


def test_server_ignoring_range(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH, truncate_at=30000, truncate_times=1, ranges=False)
    got = fetcher(tmp_path).fetch(source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert open(got.path, "rb").read() == PATCH
    assert route.hits == 2 and route.headers[1]["Range"] == "bytes=30000-"


def test_no_progress_gives_up(tmp_path, server):
    server.add("/dl/m.patch", PATCH, truncate_at=30000, ranges=False)
    with pytest.raises(MkdumpError, match=f"closed after 30000 of {len(PATCH)} bytes"):
        fetcher(tmp_path, retries=2).fetch(source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert listing(tmp_path / "cache" / "files") == []


def test_stale_part_file_is_not_resumed(tmp_path, server):
    (tmp_path / "cache" / "tmp").mkdir(parents=True)
    (tmp_path / "cache" / "tmp" / "m.patch.part").write_bytes(OTHER)
    route = server.add("/dl/m.patch", PATCH)
    got = fetcher(tmp_path).fetch(source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert open(got.path, "rb").read() == PATCH
    assert "Range" not in route.headers[0]


# -- verification ----------------------------------------------------------------------------------------------

def test_wrong_bytes_are_rejected_and_kept(tmp_path, server):
    server.add("/bad/m.patch", OTHER)
    url = server.url + "/bad/m.patch"
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path).fetch(source(urls=[url], sha256=sha(PATCH)))
    message = str(err.value)
    assert url in message and sha(PATCH) in message and sha(OTHER) in message
    assert listing(tmp_path / "cache" / "files") == []
    kept = tmp_path / "cache" / "rejected" / f"m.patch.{sha(OTHER)[:16]}"
    assert kept.read_bytes() == OTHER


def test_wrong_mirror_falls_through_to_good_url(tmp_path, server):
    server.add("/mirror/m.patch", OTHER)
    server.add("/up/m.patch", PATCH)
    log = Log()
    got = fetcher(tmp_path, mirrors=[server.url + "/mirror"], log=log).fetch(
        source(urls=[server.url + "/up/m.patch"], sha256=sha(PATCH)))
    assert got.origin == "download" and got.url.endswith("/up/m.patch")
    assert f"{server.url}/mirror/m.patch: SHA-256 is {sha(OTHER)}, expected {sha(PATCH)}" in log.text


def test_tampered_cache_entry_is_moved_aside(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH)
    src = source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH))
    first = fetcher(tmp_path).fetch(src)
    with open(first.path, "ab") as f:
        f.write(b"tampered")
    log = Log()
    again = fetcher(tmp_path, log=log).fetch(src)
    assert again.origin == "download" and open(again.path, "rb").read() == PATCH
    assert route.hits == 2
    assert listing(tmp_path / "cache" / "rejected") == [f"m.patch.{sha(PATCH + b'tampered')[:16]}"]
    assert "failed verification" in log.text


def test_tampered_cache_entry_offline(tmp_path, server):
    server.add("/dl/m.patch", PATCH)
    src = source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH))
    first = fetcher(tmp_path).fetch(src)
    with open(first.path, "wb") as f:
        f.write(OTHER)
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path, offline=True, session=NoNetwork()).fetch(src)
    assert "offline=1" in str(err.value) and sha(OTHER) in str(err.value)
    assert listing(tmp_path / "cache" / "files") == []


# -- trust on first use ----------------------------------------------------------------------------------------

def test_trust_on_first_use(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH)
    lock = LockFile(tmp_path / "patches" / "sources.lock")
    src = source(urls=[server.url + "/dl/m.patch"])
    log = Log()
    fetcher(tmp_path, lock=lock, log=log).fetch(src)
    assert lock.get("m.patch") == sha(PATCH)
    warning = [line for line in log if "TRUSTED ON FIRST USE" in line]
    assert len(warning) == 1
    assert sha(PATCH) in warning[0] and lock.path in warning[0] and "Commit" in warning[0]

    # A fresh cache and the same bytes: accepted quietly.
    log = Log()
    other_cache = fetcher(tmp_path / "second", lock=lock, log=log).fetch(src)
    assert other_cache.origin == "download" and "TRUSTED" not in log.text

    # Upstream changed: refused, naming the URL, the recorded and the actual hash.
    route.body = OTHER
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path / "third", lock=lock).fetch(src)
    message = str(err.value)
    assert server.url + "/dl/m.patch" in message and sha(PATCH) in message and sha(OTHER) in message
    assert lock.get("m.patch") == sha(PATCH)
    assert listing(tmp_path / "third" / "cache" / "rejected") == [f"m.patch.{sha(OTHER)[:16]}"]


def test_trust_on_first_use_from_a_sources_dir(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "m.patch").write_bytes(PATCH)
    lock = LockFile(tmp_path / "sources.lock")
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], lock=lock, log=log, offline=True).fetch(source(urls=["http://x/m"]))
    assert got.origin == "sources" and got.path == str(local / "m.patch")
    assert lock.get("m.patch") == sha(PATCH) and "TRUSTED ON FIRST USE" in log.text


KERNEL_PATCH = (b"diff -urN linux-2.6.9/kernel/sched.c linux-2.6.9-minik/kernel/sched.c\n"
                b"--- linux-2.6.9/kernel/sched.c\n+++ linux-2.6.9-minik/kernel/sched.c\n"
                b"@@ -1,2 +1,3 @@\n /* sched */\n+/* minik */\n int x;\n")


def test_trust_on_first_use_refuses_an_error_page_that_is_not_a_patch(tmp_path, server):
    page = b"<p>File not found</p>\n"
    server.add("/sf/m.patch", page, content_type="text/plain")
    server.add("/up/m.patch", KERNEL_PATCH)
    lock = LockFile(tmp_path / "sources.lock")
    log = Log()
    got = fetcher(tmp_path, lock=lock, log=log).fetch(
        source(urls=[server.url + "/sf/m.patch", server.url + "/up/m.patch"], kind="patch"))
    assert got.url.endswith("/up/m.patch") and lock.get("m.patch") == sha(KERNEL_PATCH)
    assert "is not a kernel patch" in log.text
    assert listing(tmp_path / "cache" / "rejected") == [f"m.patch.{sha(page)[:16]}"]


def test_a_patch_touching_no_kernel_tree_is_not_trusted(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "m.patch").write_bytes(b"--- a/README.txt\n+++ b/README.txt\n@@ -1 +1 @@\n-old\n+new\n")
    lock = LockFile(tmp_path / "sources.lock")
    with pytest.raises(MkdumpError, match="is not a kernel patch.*README.txt"):
        fetcher(tmp_path, sources_dirs=[local], offline=True, lock=lock).fetch(source(kind="patch"))
    assert lock.get("m.patch") is None


@pytest.fixture
def mkexec_taz(tmp_path):
    from support import standin_mkexec as S
    patch = S.kernel_patch(S.tiny_tree(tmp_path / "tiny"))
    good = S.make_taz(tmp_path / "good.taz", patch_text=patch, workdir=tmp_path / "w").read_bytes()
    lacking = S.make_taz(tmp_path / "bad.taz", patch_text=patch, omit=("include/asm-i386",),
                         workdir=tmp_path / "w").read_bytes()
    return good, lacking


def test_trust_on_first_use_refuses_an_archive_without_the_mkexec_layout(tmp_path, server, mkexec_taz, kernel):
    good, lacking = mkexec_taz
    _, _, not_mkexec = kernel
    server.add("/a/m.taz", not_mkexec)
    server.add("/b/m.taz", lacking)
    server.add("/c/m.taz", good)
    lock = LockFile(tmp_path / "sources.lock")
    log = Log()
    got = fetcher(tmp_path, lock=lock, log=log).fetch(
        source(file="m.taz", urls=[server.url + p for p in ("/a/m.taz", "/b/m.taz", "/c/m.taz")],
               kind="mkexec-archive"))
    assert got.url.endswith("/c/m.taz") and lock.get("m.taz") == sha(good)
    assert "is not an mkexec archive" in log.text and "include/asm-i386/" in log.text
    assert listing(tmp_path / "cache" / "rejected") == sorted(
        [f"m.taz.{sha(not_mkexec)[:16]}", f"m.taz.{sha(lacking)[:16]}"])
    assert listing(tmp_path / "cache" / "tmp") == []


def test_trust_on_first_use_refuses_an_archive_without_the_mkdutils_layout(tmp_path, server):
    from support import standin_mkdutils as S
    good = S.make_taz(tmp_path / "good.taz").read_bytes()
    lacking = S.make_taz(tmp_path / "bad.taz", files={"README": "no code\n"}).read_bytes()
    server.add("/a/d.taz", b"<p>an error page served as the file</p>")
    server.add("/b/d.taz", lacking)
    server.add("/c/d.taz", good)
    lock = LockFile(tmp_path / "sources.lock")
    log = Log()
    got = fetcher(tmp_path, lock=lock, log=log).fetch(
        source(file="d.taz", urls=[server.url + p for p in ("/a/d.taz", "/b/d.taz", "/c/d.taz")],
               kind="mkdutils-archive"))
    assert got.url.endswith("/c/d.taz") and lock.get("d.taz") == sha(good)
    assert "it cannot be unpacked" in log.text
    assert "is not an mkdutils archive (it lacks a Makefile and C sources (*.c))" in log.text
    assert listing(tmp_path / "cache" / "tmp") == []


def test_a_recorded_file_is_not_checked_again(tmp_path, server, monkeypatch):
    server.add("/up/m.patch", KERNEL_PATCH)
    lock = LockFile(tmp_path / "sources.lock")
    src = source(urls=[server.url + "/up/m.patch"], kind="patch")
    fetcher(tmp_path, lock=lock).fetch(src)
    monkeypatch.setattr(mkdump.fetch, "parse_patch", lambda *a, **k: pytest.fail("checked again"))
    assert fetcher(tmp_path, lock=lock, offline=True).fetch(src).origin == "cache"


# -- local sources and offline ---------------------------------------------------------------------------------

def test_sources_dir_first_and_untouched(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH)
    local = tmp_path / "local"
    local.mkdir()
    (local / "m.patch").write_bytes(PATCH)
    (tmp_path / "empty").mkdir()
    before = {p.name: p.stat().st_mtime_ns for p in local.iterdir()}
    got = fetcher(tmp_path, sources_dirs=[tmp_path / "empty", local]).fetch(
        source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert got.origin == "sources" and got.path == str(local / "m.patch")
    assert route.hits == 0
    assert {p.name: p.stat().st_mtime_ns for p in local.iterdir()} == before
    assert listing(tmp_path / "cache" / "files") == []


def test_bad_file_in_sources_dir_is_skipped(tmp_path, server):
    server.add("/dl/m.patch", PATCH)
    local = tmp_path / "local"
    local.mkdir()
    (local / "m.patch").write_bytes(OTHER)
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], log=log).fetch(
        source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH)))
    assert got.origin == "download"
    assert (local / "m.patch").read_bytes() == OTHER
    assert f"not using {local / 'm.patch'}: SHA-256 is {sha(OTHER)}, expected {sha(PATCH)}" in log.text


def test_offline_without_the_file(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path, offline=True, sources_dirs=[local], session=NoNetwork()).fetch(
            source(urls=["https://example.org/m.patch"]))
    message = str(err.value)
    assert str(tmp_path / "cache" / "files" / "m.patch") in message
    assert str(local) in message and "scons fetch" in message and "sources=" in message


def test_offline_with_the_file_cached(tmp_path, server):
    server.add("/dl/m.patch", PATCH)
    src = source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH))
    fetcher(tmp_path).fetch(src)
    got = fetcher(tmp_path, offline=True, session=NoNetwork()).fetch(src)
    assert got.origin == "cache" and got.url == server.url + "/dl/m.patch"


def test_bad_options(tmp_path):
    with pytest.raises(MkdumpError, match="sources=.*not a directory"):
        fetcher(tmp_path, sources_dirs=[tmp_path / "missing"])
    with pytest.raises(MkdumpError, match="mirror='/srv/files' is not an http"):
        fetcher(tmp_path, mirrors=["/srv/files"])


# -- tree-pinned sources ---------------------------------------------------------------------------------------

@pytest.fixture
def kernel(tmp_path):
    """A tiny kernel-shaped tree, its tree hash, and it as .tar.bz2 and .tar.gz."""
    tree = tmp_path / "k-1.0"
    (tree / "kernel").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 1\n")
    (tree / "kernel" / "sched.c").write_text("/* sched */\n")
    (tree / "scripts").mkdir()
    (tree / "scripts" / "mkver").write_text("#!/bin/sh\n")
    os.chmod(tree / "scripts" / "mkver", 0o755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tree, arcname="k-1.0")
    return nar_sha256(tree), bz2.compress(buf.getvalue()), gzip.compress(buf.getvalue())


def kernel_source(server, tree_hash):
    return source(name="k", file="k-1.0.tar.bz2", alternatives=["k-1.0.tar.gz"], tree=tree_hash,
                  urls=[server.url + "/up/k-1.0.tar.bz2", server.url + "/up/k-1.0.tar.gz"])


def test_tree_pin_accepts_another_compression(tmp_path, server, kernel, monkeypatch):
    tree_hash, _, tgz = kernel
    server.add("/up/k-1.0.tar.gz", tgz)
    src = kernel_source(server, tree_hash)
    got = fetcher(tmp_path).fetch(src)
    assert got.file == "k-1.0.tar.gz" and got.tree_sha256 == tree_hash and got.sha256 == sha(tgz)
    assert got.path == str(tmp_path / "cache" / "files" / "k-1.0.tar.gz")
    assert listing(tmp_path / "cache" / "tmp") == []

    # Proved once: a later fetch trusts the record instead of unpacking again.
    def no_unpack(archive, scratch):
        raise AssertionError("unpacked again")

    monkeypatch.setattr(mkdump.fetch, "tree_sha256_of_archive", no_unpack)
    again = fetcher(tmp_path, offline=True).fetch(src)
    assert again.origin == "cache" and again.tree_sha256 == tree_hash


def test_tree_pin_via_mirror_and_alternative_name(tmp_path, server, kernel):
    tree_hash, tbz, tgz = kernel
    server.add("/mirror/k-1.0.tar.gz", tgz)
    server.add("/up/k-1.0.tar.bz2", tbz)
    got = fetcher(tmp_path, mirrors=[server.url + "/mirror"]).fetch(kernel_source(server, tree_hash))
    assert got.url == server.url + "/mirror/k-1.0.tar.gz"
    assert [p for p, _ in server.requests] == ["/mirror/k-1.0.tar.bz2", "/mirror/k-1.0.tar.gz"]


def test_tree_pin_refuses_another_tree(tmp_path, server, kernel):
    tree_hash, tbz, _ = kernel
    wrong = "f" * 64
    server.add("/up/k-1.0.tar.bz2", tbz)
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path).fetch(kernel_source(server, wrong))
    message = str(err.value)
    assert f"{server.url}/up/k-1.0.tar.bz2: its unpacked tree hashes to {tree_hash}, expected {wrong}" in message
    assert listing(tmp_path / "cache" / "rejected") == [f"k-1.0.tar.bz2.{sha(tbz)[:16]}"]


def test_tree_pin_refuses_a_non_archive(tmp_path, server, kernel):
    tree_hash, _, _ = kernel
    server.add("/up/k-1.0.tar.bz2", b"<html>not found</html>")
    with pytest.raises(MkdumpError, match="cannot be unpacked"):
        fetcher(tmp_path).fetch(kernel_source(server, tree_hash))


# -- progress and concurrency ----------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(tmp_path, server):
    server.add("/dl/m.patch", PATCH, chunk_delay=0.005)
    src = source(urls=[server.url + "/dl/m.patch"], sha256=sha(PATCH))
    tty, log = Terminal(), Log()
    fetcher(tmp_path / "a", progress=tty, log=log).fetch(src)
    assert "\r" in tty.getvalue() and "100%" in tty.getvalue()
    plain, log = io.StringIO(), Log()
    fetcher(tmp_path / "b", progress=plain, log=log).fetch(src)
    assert plain.getvalue() == ""
    assert f"Downloading m.patch from {server.url}/dl/m.patch" in log and not any("\r" in line for line in log)


def _fetch_in_process(cache, url, queue):
    log = Log()
    got = Fetcher(cache, log=log, progress=io.StringIO()).fetch(source(urls=[url], sha256=sha(PATCH)))
    queue.put((got.origin, got.path, log.text))


def test_concurrent_fetchers_share_one_cache(tmp_path, server):
    route = server.add("/dl/m.patch", PATCH, chunk_delay=0.01)     # about 0.25 s per download
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fetch_in_process, args=(tmp_path / "cache", server.url + "/dl/m.patch", queue))
             for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert route.hits == 1
    assert sorted(origin for origin, _, _ in results) == ["cache", "cache", "download"]
    assert {path for _, path, _ in results} == {str(tmp_path / "cache" / "files" / "m.patch")}
    assert sum("Waiting for another build" in text for _, _, text in results) >= 1
    assert (tmp_path / "cache" / "files" / "m.patch").read_bytes() == PATCH
    assert listing(tmp_path / "cache" / "tmp") == []


def test_disk_full_while_proving_a_tree_is_no_verdict_on_the_archive(tmp_path, server, kernel, monkeypatch):
    tree_hash, tbz, tgz = kernel
    bz2_route = server.add("/up/k-1.0.tar.bz2", tbz)
    gz_route = server.add("/up/k-1.0.tar.gz", tgz)
    src = kernel_source(server, tree_hash)
    cache = tmp_path / "cache"
    fetcher(tmp_path).fetch(src)
    (cache / "verified" / "k-1.0.tar.bz2.json").unlink()     # so the next fetch proves the tree again

    def disk_full(self, tar, member, base, parent):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mkdump.unpack._Extractor, "write_file", disk_full)
    for f in (fetcher(tmp_path, offline=True), fetcher(tmp_path / "fresh")):
        with pytest.raises(MkdumpError, match="No space left on device.*free some space") as e:
            f.fetch(src)
        assert f"in the download cache {f.cache_dir} to check it" in str(e.value)
    assert listing(cache / "files") == ["k-1.0.tar.bz2"]
    assert listing(cache / "rejected") == [] and listing(tmp_path / "fresh" / "cache" / "rejected") == []
    assert listing(cache / "tmp") == []
    assert bz2_route.hits == 2 and gz_route.hits == 0


# Ctrl-C reaches the whole process group: the decompressor dies of SIGINT, and the tar stream it fed breaks off.
CTRL_C_BZIP2 = (["sh", "-c", 'bzip2 -dc "$1" | head -c 1000; kill -INT $$'], (0,), "bzip2")


def test_ctrl_c_while_proving_a_download_is_no_verdict(tmp_path, server, kernel, monkeypatch):
    tree_hash, tbz, tgz = kernel
    server.add("/up/k-1.0.tar.bz2", tbz)
    gz_route = server.add("/up/k-1.0.tar.gz", tgz)
    monkeypatch.setitem(mkdump.unpack._DECOMPRESSORS, "bzip2", CTRL_C_BZIP2)
    with pytest.raises(MkdumpError, match="interrupted") as err:
        fetcher(tmp_path).fetch(kernel_source(server, tree_hash))
    assert "damaged" not in str(err.value)
    assert gz_route.hits == 0, "an interrupted fetch went on to the next URL"
    cache = tmp_path / "cache"
    assert listing(cache / "rejected") == [] and listing(cache / "files") == [] and listing(cache / "tmp") == []


def test_ctrl_c_while_proving_a_sources_dir_archive_is_no_verdict(tmp_path, k_tree, monkeypatch):
    good, tree_hash, _, _ = k_tree
    local = distfiles(tmp_path, {"k-1.0.tar.bz2": bz2.compress(good), "k_1.0.orig.tar.gz": gzip.compress(good)})
    monkeypatch.setitem(mkdump.unpack._DECOMPRESSORS, "bzip2", CTRL_C_BZIP2)
    log = Log()
    with pytest.raises(MkdumpError, match="interrupted"):
        fetcher(tmp_path, sources_dirs=[local], offline=True, log=log).fetch(globbed(tree_hash))
    assert "not using" not in log.text and "trying" not in log.text
    assert sorted(os.listdir(local)) == ["k-1.0.tar.bz2", "k_1.0.orig.tar.gz"]
    assert listing(tmp_path / "cache" / "tmp") == [] and listing(tmp_path / "cache" / "verified") == []


def test_keyboard_interrupt_while_proving_a_download_leaves_nothing(tmp_path, server, kernel, monkeypatch):
    tree_hash, tbz, tgz = kernel
    server.add("/up/k-1.0.tar.bz2", tbz)
    gz_route = server.add("/up/k-1.0.tar.gz", tgz)

    def ctrl_c(archive, scratch):
        raise KeyboardInterrupt

    monkeypatch.setattr(mkdump.fetch, "tree_sha256_of_archive", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fetcher(tmp_path).fetch(kernel_source(server, tree_hash))
    assert gz_route.hits == 0
    cache = tmp_path / "cache"
    assert listing(cache / "rejected") == [] and listing(cache / "files") == [] and listing(cache / "tmp") == []


class FullDisk:
    """A file that takes `room` bytes and then fails as a full disk does."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        if self.f.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(data)


def test_disk_full_while_downloading_is_one_sentence_and_leaves_nothing(tmp_path, server, monkeypatch):
    route = server.add("/dl/m.patch", PATCH)
    other = server.add("/other/m.patch", PATCH)
    real_open = open

    def full_disk(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        return FullDisk(f, 20000) if str(path).endswith(".part") else f

    monkeypatch.setattr("builtins.open", full_disk)
    cache = tmp_path / "cache"
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path).fetch(source(urls=[server.url + "/dl/m.patch", server.url + "/other/m.patch"],
                                       sha256=sha(PATCH)))
    message = str(err.value)
    assert "m.patch" in message and str(cache) in message and "free space" in message, message
    assert route.hits == 1 and other.hits == 0, "a full disk is no reason to ask again or elsewhere"
    assert listing(cache / "tmp") == [] and listing(cache / "files") == []


def test_unreadable_file_in_a_sources_dir_is_one_sentence(tmp_path, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    (local / "m.patch").write_bytes(PATCH)
    real_open = open

    def denied(path, *args, **kwargs):     # chmod 0 would not stop root, who runs these tests in CI
        if str(path) == str(local / "m.patch"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(MkdumpError, match=f"cannot read {local / 'm.patch'} \\(Permission denied\\)"):
        fetcher(tmp_path, sources_dirs=[local], offline=True).fetch(source(sha256=sha(PATCH)))


class UnknownHost:
    def __init__(self):
        self.calls = 0

    def get(self, url, **kwargs):
        self.calls += 1
        raise requests.ConnectionError(socket.gaierror(-2, "Name or service not known"))


def test_unknown_host_moves_on_without_retrying(tmp_path):
    session = UnknownHost()
    src = Source("minik", "m.patch", ("http://a.invalid/m.patch", "http://b.invalid/m.patch"), None, None, ())
    with pytest.raises(MkdumpError) as e:
        fetcher(tmp_path, session=session, retries=4, backoff=60).fetch(src)
    assert session.calls == 2, "one attempt per URL: name resolution failures are not retried"
    assert "a.invalid" in str(e.value) and "b.invalid" in str(e.value)
    assert "Name or service not known" in str(e.value)


# -- a distro's own name for a tree-pinned archive in a sources= directory --------------------------------------
COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress, "tar": lambda data: data}


def tar_of(tree, top="k-1.0"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tree, arcname=top)
    return buf.getvalue()


@pytest.fixture
def k_tree(tmp_path):
    """The k-1.0 tree as a tar (uncompressed bytes), its tree hash, and a different tree's tar."""
    tree = tmp_path / "trees" / "k-1.0"
    (tree / "kernel").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 1\n")
    (tree / "kernel" / "sched.c").write_text("/* sched */\n")
    good = tar_of(tree)
    tree_hash = nar_sha256(tree)
    (tree / "kernel" / "sched.c").write_text("/* sched, patched by someone */\n")
    return good, tree_hash, tar_of(tree), nar_sha256(tree)


def globbed(tree_hash):
    return source(name="k", file="k-1.0.tar.bz2", alternatives=["k-1.0.tar.gz"], tree=tree_hash,
                  urls=["https://example.org/k-1.0.tar.bz2"], glob="k*[-_]1.0[!0-9]*")


def distfiles(tmp_path, files):
    d = tmp_path / "distfiles"
    d.mkdir()
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


@pytest.mark.parametrize("name, compression", [
    ("k_1.0.orig.tar.gz", "gz"),            # Debian's name
    ("k-source-1.0.tar.bz2", "bz2"),
    ("k-1.0-repack.tar.xz", "xz"),
    ("k-1.0.tgz", "xz"),                     # recompressed but not renamed: the bytes decide, not the suffix
    ("k-1.0.tar", "tar"),
])
def test_a_renamed_or_recompressed_archive_is_found_by_its_tree(tmp_path, k_tree, name, compression):
    good, tree_hash, _, _ = k_tree
    data = COMPRESS[compression](good)
    local = distfiles(tmp_path, {name: data})
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], offline=True, session=NoNetwork(), log=log).fetch(
        globbed(tree_hash))
    assert got == Fetched("k", name, str(local / name), sha(data), tree_hash, None, "sources")
    assert f"Using {local / name} for source [k]" in log.text
    assert listing(tmp_path / "cache" / "files") == [] and listing(tmp_path / "cache" / "tmp") == []


def test_candidates_are_tried_in_name_order_until_one_has_the_tree(tmp_path, k_tree, monkeypatch):
    good, tree_hash, other, other_hash = k_tree
    local = distfiles(tmp_path, {
        "k-1.0-a.tar.gz": gzip.compress(other),         # first in name order: another tree
        "k_1.0.orig.tar.xz": lzma.compress(good),
        "k-1.00.tar.gz": gzip.compress(good),            # another version by its name: never opened
        "k_1.0-1.dsc": b"Format: 3.0 (quilt)\n",         # not an archive by its name
        "k-1.0.tar.gz.sign": b"signature",
    })
    unpacked = []
    real = mkdump.fetch.tree_sha256_of_archive

    def counting(archive, scratch):
        unpacked.append(os.path.basename(archive))
        return real(archive, scratch)

    monkeypatch.setattr(mkdump.fetch, "tree_sha256_of_archive", counting)
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], offline=True, log=log).fetch(globbed(tree_hash))
    assert got.file == "k_1.0.orig.tar.xz" and got.tree_sha256 == tree_hash
    assert unpacked == ["k-1.0-a.tar.gz", "k_1.0.orig.tar.xz"]
    assert "trying k-1.0-a.tar.gz, k_1.0.orig.tar.xz (named like k*[-_]1.0[!0-9]*)" in log.text
    assert (f"not using {local / 'k-1.0-a.tar.gz'}: its unpacked tree hashes to {other_hash}, "
            f"expected {tree_hash}") in log.text

    # The match is remembered by its SHA-256: a later fetch unpacks only the refused candidate again.
    unpacked.clear()
    again = fetcher(tmp_path, sources_dirs=[local], offline=True).fetch(globbed(tree_hash))
    assert again == got and unpacked == ["k-1.0-a.tar.gz"]


def test_a_listed_name_that_verifies_is_used_without_looking_further(tmp_path, k_tree, monkeypatch):
    good, tree_hash, other, _ = k_tree
    local = distfiles(tmp_path, {"k-1.0.tar.gz": gzip.compress(good), "k-1.0-a.tar.gz": gzip.compress(other)})
    unpacked = []
    real = mkdump.fetch.tree_sha256_of_archive
    monkeypatch.setattr(mkdump.fetch, "tree_sha256_of_archive",
                        lambda archive, scratch: unpacked.append(archive) or real(archive, scratch))
    got = fetcher(tmp_path, sources_dirs=[local], offline=True).fetch(globbed(tree_hash))
    assert got.file == "k-1.0.tar.gz" and unpacked == [str(local / "k-1.0.tar.gz")]


def test_a_listed_name_with_another_tree_gives_way_to_a_renamed_one(tmp_path, k_tree):
    good, tree_hash, other, other_hash = k_tree
    local = distfiles(tmp_path, {"k-1.0.tar.gz": gzip.compress(other), "k_1.0.orig.tar.gz": gzip.compress(good)})
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], offline=True, log=log).fetch(globbed(tree_hash))
    assert got.file == "k_1.0.orig.tar.gz"
    assert f"not using {local / 'k-1.0.tar.gz'}: its unpacked tree hashes to {other_hash}" in log.text
    # the refused listed file is not tried a second time as a glob candidate
    assert "trying k_1.0.orig.tar.gz (named like" in log.text


def test_no_candidate_with_the_tree_names_each_one_and_its_hash(tmp_path, k_tree):
    _, tree_hash, other, other_hash = k_tree
    local = distfiles(tmp_path, {"k_1.0.orig.tar.gz": gzip.compress(other), "k-1.0-x.tar.xz": b"not an archive"})
    with pytest.raises(MkdumpError) as err:
        fetcher(tmp_path, sources_dirs=[local], offline=True, session=NoNetwork()).fetch(globbed(tree_hash))
    message = str(err.value)
    assert "k-1.0.tar.bz2 (or k-1.0.tar.gz, or in a sources= directory any archive named like k*[-_]1.0[!0-9]*)" \
        in message
    assert f"{local / 'k_1.0.orig.tar.gz'}: its unpacked tree hashes to {other_hash}, expected {tree_hash}" in message
    assert f"{local / 'k-1.0-x.tar.xz'}: it cannot be unpacked" in message
    assert listing(tmp_path / "cache" / "files") == [] and listing(tmp_path / "cache" / "tmp") == []
    assert sorted(os.listdir(local)) == ["k-1.0-x.tar.xz", "k_1.0.orig.tar.gz"], "a sources= dir is read-only"


def test_a_candidate_with_an_escaping_member_is_refused_and_writes_nothing_outside(tmp_path, k_tree):
    good, tree_hash, _, _ = k_tree
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("k-1.0/../../../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    local = distfiles(tmp_path, {"k-1.0-evil.tar.gz": gzip.compress(buf.getvalue()),
                                 "k_1.0.orig.tar.gz": gzip.compress(good)})
    log = Log()
    got = fetcher(tmp_path, sources_dirs=[local], offline=True, log=log).fetch(globbed(tree_hash))
    assert got.file == "k_1.0.orig.tar.gz"
    assert "refusing member 'k-1.0/../../../escaped'" in log.text
    assert not [p for p in tmp_path.rglob("escaped")]


def test_without_a_glob_a_renamed_archive_is_not_considered(tmp_path, k_tree):
    good, tree_hash, _, _ = k_tree
    local = distfiles(tmp_path, {"k_1.0.orig.tar.gz": gzip.compress(good)})
    plain = source(name="k", file="k-1.0.tar.bz2", tree=tree_hash, urls=["https://example.org/k-1.0.tar.bz2"])
    with pytest.raises(MkdumpError, match="offline=1 forbids"):
        fetcher(tmp_path, sources_dirs=[local], offline=True, session=NoNetwork()).fetch(plain)
