"""cache_dir=: the input key and the checks of what is published to and retrieved from the shared cache."""
import hashlib
import json
import os

import pytest

from mkdump import cachekey as K
from mkdump import stamp
from mkdump.errors import MkdumpError
from mkdump.sources import Source

DATA = {"hostcc": "gcc", "compilers": [{"cc": ["gcc"], "package": "gcc"},
                                       {"cross_compile": "i686-linux-gnu-", "package": "gcc-i686-linux-gnu"}]}


def test_compiler_tools_default_covers_every_candidate_the_toolchain_stage_may_pick():
    assert K.compiler_tools(DATA) == ["gcc", "as", "ld", "i686-linux-gnu-gcc", "i686-linux-gnu-as",
                                      "i686-linux-gnu-ld"]


def test_compiler_tools_follow_cc_and_cross_compile_but_not_a_launcher():
    assert K.compiler_tools(DATA, cc="ccache gcc-12 -m32") == ["gcc-12", "as", "ld", "gcc"]
    assert K.compiler_tools(DATA, cc="/usr/bin/distcc x86_64-linux-gnu-gcc",
                            cross_compile="x86_64-linux-gnu-") == [
        "x86_64-linux-gnu-gcc", "x86_64-linux-gnu-as", "x86_64-linux-gnu-ld", "gcc"]
    assert K.compiler_tools(DATA, cross_compile="i686-linux-gnu-") == [
        "i686-linux-gnu-gcc", "i686-linux-gnu-as", "i686-linux-gnu-ld", "gcc"]


def _program(d, name, text):
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(text)
    p.chmod(0o755)
    return p


def test_program_digests_are_the_programs_contents_links_followed(tmp_path):
    real = _program(tmp_path / "real", "gcc-12", "#!/bin/sh\necho 12\n")
    (tmp_path / "bin").mkdir()
    os.symlink(real, tmp_path / "bin" / "gcc")
    got = K.program_digests(["gcc", "ld"], str(tmp_path / "bin"))
    assert got == {"gcc": stamp.sha256_file(real), "ld": None}
    # another compiler under the same name is another identity
    _program(tmp_path / "other", "gcc", "#!/bin/sh\necho 13\n")
    assert K.program_digests(["gcc"], str(tmp_path / "other"))["gcc"] != got["gcc"]


def test_file_digests_name_project_files_relative_and_outside_files_by_content(tmp_path):
    keys = []
    for where in ("alice/checkout", "bob/src/mkdump"):
        top = tmp_path / where
        (top / "patches").mkdir(parents=True)
        (top / "patches" / "a.patch").write_text("a\n")
        user = tmp_path / where.split("/")[0] / "my.config"
        user.write_text("CONFIG_X=y\n")
        keys.append(K.file_digests(top, [top / "patches" / "a.patch", user]))
    assert keys[0] == keys[1]
    inside, outside = keys[0]
    assert list(inside) == [os.path.join("patches", "a.patch")]
    assert outside == [stamp.sha256_file(tmp_path / "alice" / "my.config")]


def test_code_files_are_the_python_code_and_sconstruct(tmp_path):
    (tmp_path / "site_scons" / "mkdump" / "__pycache__").mkdir(parents=True)
    for rel in ("SConstruct", "site_scons/mkdump/a.py", "site_scons/mkdump/__pycache__/a.cpython-311.pyc",
                "site_scons/mkdump/notes.txt"):
        (tmp_path / rel).write_text("x")
    assert sorted(os.path.relpath(p, tmp_path) for p in K.code_files(tmp_path)) == [
        "SConstruct", os.path.join("site_scons", "mkdump", "a.py")]


def test_source_pins_and_unpinned():
    sources = {"linux": Source("linux", "l.tar", ("https://x/l",), tree_sha256="t" * 64),
               "minik": Source("minik", "m.patch", ("https://x/m",)),
               "mkexec": Source("mkexec", "k.taz", ("https://x/k",))}
    pins = K.source_pins(sources, {"k.taz": "k" * 64})
    assert pins["mkexec"]["lock"] == "k" * 64 and pins["linux"]["tree_sha256"] == "t" * 64
    assert K.unpinned(pins) == ["minik"]


def _describe(**change):
    args = dict(arch="x86_64", project={"patches/a.patch": "1" * 64}, external=[], programs={"gcc": "2" * 64},
                pins={"linux": {"file": "l", "sha256": None, "tree_sha256": "3" * 64, "lock": None}},
                options={"minik_mem": 8, "cc": None})
    args.update(change)
    return K.describe(**args)


def test_digest_changes_with_every_input_and_only_with_them():
    base = K.digest(_describe())
    assert K.digest(_describe()) == base
    assert len({base,
                K.digest(_describe(arch="i386")),
                K.digest(_describe(project={"patches/a.patch": "9" * 64})),
                K.digest(_describe(external=["9" * 64])),
                K.digest(_describe(programs={"gcc": "9" * 64})),
                K.digest(_describe(pins={"linux": {"file": "l", "sha256": None, "tree_sha256": "3" * 64,
                                                   "lock": "9" * 64}})),
                K.digest(_describe(options={"minik_mem": 12, "cc": None}))}) == 7
    assert "/" not in json.dumps(_describe()["options"])


def test_entries_differ_per_artifact_and_key():
    assert len({K.entry("a", "vmlinux.bin"), K.entry("a", "mkexec.ko"), K.entry("b", "vmlinux.bin")}) == 3


def _checked(tmp_path, *, ok=True):
    """A checked/ directory as the stages leave it: two artifacts, the load script, the manifest, the check stamp."""
    d = tmp_path / "checked"
    d.mkdir()
    files = {"vmlinux.bin": b"image", "mkexec.ko": b"module", "mkdump-load-x86_64": b"#!/bin/sh\n"}
    for name, data in files.items():
        (d / name).write_bytes(data)
    outputs = [{"path": n, "size": len(b), "sha256": stamp.sha256_file(d / n)} for n, b in files.items()]
    (d / "manifest.json").write_text(json.dumps({"outputs": outputs}))
    stamp.write(tmp_path / "check.json", {"checks": [{"name": "x", "ok": ok}],
                                          "published": {n: stamp.sha256_file(d / n)
                                                        for n in ("vmlinux.bin", "mkexec.ko")}})
    return d, ["manifest.json"] + list(files)


def test_publish_copies_what_check_and_the_manifest_recorded(tmp_path):
    checked, names = _checked(tmp_path)
    K.publish(checked, tmp_path / "out", names, tmp_path / "check.json")
    for n in names:
        assert (tmp_path / "out" / n).read_bytes() == (checked / n).read_bytes()
    for n in names:
        K.check_retrieved(tmp_path / "out", n, ["/cache/XX/entry", "/cache/YY/manifest"])


def test_publish_failing_mid_way_leaves_out_as_it_was(tmp_path, monkeypatch):
    checked, names = _checked(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "vmlinux.bin").write_bytes(b"last run's image")
    real_copy = K.shutil.copy2

    def disk_full_at_the_third(src, dst):
        if len(os.listdir(out)) == 3:
            raise OSError(28, "No space left on device", dst)
        return real_copy(src, dst)

    monkeypatch.setattr(K.shutil, "copy2", disk_full_at_the_third)
    with pytest.raises(OSError):
        K.publish(checked, out, names, tmp_path / "check.json")
    assert sorted(os.listdir(out)) == ["vmlinux.bin"]
    assert (out / "vmlinux.bin").read_bytes() == b"last run's image"


def test_publish_refuses_an_artifact_changed_after_check(tmp_path):
    checked, names = _checked(tmp_path)
    (checked / "mkexec.ko").write_bytes(b"tampered")
    with pytest.raises(MkdumpError, match=r"mkexec.ko .* is not what check and the manifest recorded"):
        K.publish(checked, tmp_path / "out", names, tmp_path / "check.json")
    assert not (tmp_path / "out").exists()


def test_publish_refuses_without_passing_checks(tmp_path):
    checked, names = _checked(tmp_path, ok=False)
    with pytest.raises(MkdumpError, match="does not record passing checks"):
        K.publish(checked, tmp_path / "out", names, tmp_path / "check.json")
    (tmp_path / "check.json").unlink()
    with pytest.raises(MkdumpError, match="cannot be read"):
        K.publish(checked, tmp_path / "out", names, tmp_path / "check.json")


def test_publish_names_a_missing_artifact(tmp_path):
    checked, names = _checked(tmp_path)
    (checked / "vmlinux.bin").unlink()
    with pytest.raises(MkdumpError, match="vmlinux.bin"):
        K.publish(checked, tmp_path / "out", names, tmp_path / "check.json")


def test_check_retrieved_names_the_damaged_entries(tmp_path):
    checked, names = _checked(tmp_path)
    (checked / "vmlinux.bin").write_bytes(b"imagf")
    with pytest.raises(MkdumpError, match=r"vmlinux.bin retrieved from cache_dir= has SHA-256 .* damaged copy: "
                                          r"delete the cache entries /cache/AB/abc and /cache/CD/man and run"):
        K.check_retrieved(checked, "vmlinux.bin", ["/cache/CD/man", "/cache/AB/abc"])
    (checked / "manifest.json").write_text("{not json")
    with pytest.raises(MkdumpError, match="not a readable manifest .* delete the cache entry /cache/CD/man and"):
        K.check_retrieved(checked, "manifest.json", ["/cache/CD/man", "/cache/CD/man"])


def test_a_missing_file_enters_the_key_as_missing(tmp_path):
    top = tmp_path / "proj"
    (top / "patches").mkdir(parents=True)
    (top / "patches" / "a.patch").write_text("x")
    inside, outside = K.file_digests(top, [top / "patches" / "a.patch", top / "patches" / "gone.patch",
                                           tmp_path / "gone.config"])
    assert inside == {"patches/a.patch": hashlib.sha256(b"x").hexdigest(), "patches/gone.patch": None}
    assert outside == ["missing"]
