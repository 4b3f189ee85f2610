"""The packager's promises, with the real scons: after `scons fetch`, an offline=1 build touches no network; a
distro's renamed or recompressed Linux tarball in sources= is accepted by its tree hash. The fixture kernel served
over loopback, and once the real 2.6.9 archive (realkernel, slow)."""
import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from mkdump import layout as L
from mkdump.sources import load_sources
from support import project as P
from support.network import NetTrap, netns_prefix, probe, run_scons
from support.real_sources import make_real_sources


def new_project(tmp_path, sources):
    return P.fixture_project(tmp_path / "proj", sources)


def manifest_of(build_root):
    return json.loads((build_root / "x86_64" / "out" / "manifest.json").read_text())


def assert_built(r, build_root):
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = manifest_of(build_root)
    assert manifest["checks"] and all(c["ok"] for c in manifest["checks"])
    return manifest


def online_fetch(proj, served, cache):
    before = len(served.requests)
    r = P.scons(proj, "fetch", f"mirror={served.url}/mirror", f"cache={cache}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(served.requests) > before, "the online fetch did not use the loopback server"


def test_offline_build_after_fetch_makes_no_network_access(tmp_path, sources, served):
    proj = new_project(tmp_path, sources)
    trap = NetTrap(tmp_path / "trap")
    cache = tmp_path / "cache"
    mirror = f"mirror={served.url}/mirror"

    # Control: under the trap, a fetch that needs the network fails, and its attempts are on record.
    seen = len(served.requests)
    r = run_scons(proj, "fetch", mirror, f"cache={tmp_path / 'empty-cache'}", "build=control", env=trap.env())
    assert r.returncode != 0 and "refused by the network trap" in r.stderr, r.stdout + r.stderr
    attempts = trap.attempts()
    assert any("getaddrinfo ('127.0.0.1'" in a for a in attempts), attempts
    assert trap.loaded()
    assert len(served.requests) == seen, "the trap let a request through"
    trap.clear()

    online_fetch(proj, served, cache)
    seen = len(served.requests)
    # A fresh build root, so the fetch stage runs again (offline, from the cache) under the trap as well.
    r = run_scons(proj, "arch=x86_64", "offline=1", mirror, f"cache={cache}", "build=offline", env=trap.env())
    assert_built(r, proj / "offline")
    assert trap.attempts() == []
    assert trap.loaded(), "the build's Python did not load the trap, so its empty record proves nothing"
    assert len(served.requests) == seen, served.requests[seen:]


def test_offline_build_in_a_network_namespace(tmp_path, sources, served):
    port = int(served.url.rsplit(":", 1)[1])
    prefix, why = netns_prefix(port)
    if prefix is None:
        pytest.skip(why)
    proj = new_project(tmp_path, sources)
    cache = tmp_path / "cache"
    online_fetch(proj, served, cache)
    seen = len(served.requests)

    # Control: from inside, the loopback server that answered the fetch cannot be reached.
    control = probe(prefix, port)
    assert control.returncode == 0 and "Network is unreachable" in control.stdout, control
    r = run_scons(proj, "arch=x86_64", "offline=1", f"mirror={served.url}/mirror", f"cache={cache}",
                  "build=offline", prefix=prefix)
    assert_built(r, proj / "offline")
    assert len(served.requests) == seen, served.requests[seen:]


def other_tree_tarball(fixture_tbz):
    """The fixture's tar with one more file: another tree under the same top directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(bz2.decompress(fixture_tbz))) as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        for member in src:
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        extra = tarfile.TarInfo("linux-2.6.9/localversion-distro")
        extra.size = 7
        out.addfile(extra, io.BytesIO(b"-distro"))
    return buf.getvalue()


def test_renamed_and_recompressed_linux_tarball_in_sources_offline(tmp_path, sources):
    tbz = sources.files[P.LINUX]
    distfiles = tmp_path / "distfiles"
    distfiles.mkdir()
    for name in (P.MINIK, P.MKEXEC, P.MKDUTILS):
        (distfiles / name).write_bytes(sources.files[name])
    orig = gzip.compress(bz2.decompress(tbz), mtime=0)
    (distfiles / "linux_2.6.9.orig.tar.gz").write_bytes(orig)                 # Debian's name, gzip
    (distfiles / "linux-source-2.6.9.tar.xz").write_bytes(lzma.compress(other_tree_tarball(tbz)))  # tried first
    (distfiles / "linux_2.6.9-1.dsc").write_text("Format: 3.0 (quilt)\n")     # not an archive: not tried
    proj = new_project(tmp_path, sources)
    trap = NetTrap(tmp_path / "trap")
    cache = tmp_path / "cache"

    r = run_scons(proj, "arch=x86_64", "offline=1", f"sources={distfiles}", f"cache={cache}", env=trap.env())
    manifest = assert_built(r, proj / "build")
    assert trap.attempts() == [] and trap.loaded()
    linux = manifest["inputs"]["sources"]["linux"]
    assert linux["file"] == "linux_2.6.9.orig.tar.gz"
    assert linux["sha256"] == hashlib.sha256(orig).hexdigest()
    assert linux["tree_sha256"] == linux["pinned"]["tree_sha256"] == sources.tree_sha256
    assert "trying linux-source-2.6.9.tar.xz, linux_2.6.9.orig.tar.gz (named like linux*[-_]2.6.9[!0-9]*)" \
        in r.stderr
    refused = [l for l in r.stderr.splitlines() if l.startswith(f"WARNING: not using {distfiles}/")]
    assert len(refused) == 1 and "linux-source-2.6.9.tar.xz: its unpacked tree hashes to" in refused[0]
    assert sorted(os.listdir(distfiles)) == sorted(["linux_2.6.9.orig.tar.gz", "linux-source-2.6.9.tar.xz",
                                                    "linux_2.6.9-1.dsc", P.MINIK, P.MKEXEC,
                                                    P.MKDUTILS])
    assert not (cache / "files").exists() or not os.listdir(cache / "files"), "a sources= file was copied"


@pytest.mark.realkernel
@pytest.mark.slow
def test_real_linux_tarball_recompressed_under_debians_name(real_linux_tarball, tmp_path):
    distfiles = make_real_sources(real_linux_tarball, tmp_path / "real")
    os.unlink(distfiles / P.LINUX)
    orig = distfiles / "linux_2.6.9.orig.tar.gz"
    opener = {"bz2": bz2.open, "gz": gzip.open, "xz": lzma.open}[real_linux_tarball.suffix.lstrip(".")]
    with opener(real_linux_tarball, "rb") as tar, gzip.GzipFile(orig, "wb", compresslevel=1, mtime=0) as out:
        shutil.copyfileobj(tar, out, 1 << 20)
    proj = P.copy_project(tmp_path / "proj")
    trap = NetTrap(tmp_path / "trap")

    r = run_scons(proj, "unpack", "arch=x86_64", "offline=1", f"sources={distfiles}", f"cache={tmp_path / 'cache'}",
                  env=trap.env(), timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert trap.attempts() == [] and trap.loaded()
    where = json.loads(Path(L.fetch_where(proj / "build", "linux")).read_text())
    assert where["file"] == orig.name and where["path"] == str(orig)
    unpacked = json.loads((proj / "build" / "stamps" / "unpack-linux.json").read_text())
    assert unpacked["tree_sha256"] == load_sources(proj / "patches" / "sources.toml")["linux"].tree_sha256
