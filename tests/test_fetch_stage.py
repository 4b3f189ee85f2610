"""The fetch stage under the real scons: when its stamp stops vouching for the file (issue 13)."""
import hashlib

from support import project as P

OTHER_SHA = "0" * 64


def sha(data):
    return hashlib.sha256(data).hexdigest()


def fetched(tmp_path, sources, served):
    proj = P.fixture_project(tmp_path / "proj", sources)
    cache = tmp_path / "cache"
    r = P.scons(proj, "fetch", f"mirror={served.url}/mirror", f"cache={cache}")
    assert r.returncode == 0, r.stdout + r.stderr
    return proj, cache


def test_an_edited_lock_entry_refuses_the_cached_file(sources, served, tmp_path):
    proj, cache = fetched(tmp_path, sources, served)
    lock = proj / "patches" / "sources.lock"
    genuine = sha(sources.files[P.MINIK])
    lock.write_text(lock.read_text().replace(genuine, OTHER_SHA))
    r = P.scons(proj, "fetch", "offline=1", f"cache={cache}")
    assert r.returncode != 0, r.stdout + r.stderr
    assert f"records {OTHER_SHA}" in r.stderr and "Traceback" not in r.stderr
    assert not (cache / "files" / P.MINIK).exists()
    assert (cache / "rejected" / f"{P.MINIK}.{genuine[:16]}").read_bytes() == sources.files[P.MINIK]
    # and no later stage uses it
    r = P.scons(proj, "patch", "arch=x86_64", "offline=1", f"cache={cache}")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert not (proj / "build" / "x86_64" / "stamps" / "patch-minik.json").exists()


def test_scons_fetch_replaces_a_cached_file_edited_after_fetch(sources, served, tmp_path):
    proj, cache = fetched(tmp_path, sources, served)
    cached = cache / "files" / P.MINIK
    edited = sources.files[P.MINIK] + b"edited\n"
    cached.write_bytes(edited)
    r = P.scons(proj, "fetch", f"mirror={served.url}/mirror", f"cache={cache}")
    assert r.returncode == 0 and "up to date" not in r.stdout, r.stdout + r.stderr
    assert cached.read_bytes() == sources.files[P.MINIK]
    assert (cache / "rejected" / f"{P.MINIK}.{sha(edited)[:16]}").read_bytes() == edited
    r = P.scons(proj, "patch", "arch=x86_64", "offline=1", f"cache={cache}")
    assert r.returncode == 0, r.stdout + r.stderr
