"""The patch stage on the real Linux 2.6.9 files, with the generated stand-in for the minik patch.

README.mkdump tells users to ignore the rejects in four x86_64 files that come from CVS `$Id$` lines. Here the
product must apply exactly those hunks by the keyword rule (skipping the keyword-only ones, keeping the files'
own `$Id$` text) and everything else exactly, while GNU patch rejects exactly those hunks.
"""

import re
import shutil
import subprocess

import pytest

from mkdump import patching
from support import standin_minik
from support.real_sources import extract_files

pytestmark = pytest.mark.realkernel

WANTED = [kf.path for kf in standin_minik.KEYWORD_FILES] + list(standin_minik.KCONFIG_FILES)


@pytest.fixture(scope="session")
def real_files(real_linux_tarball, tmp_path_factory):
    """The files the stand-in touches, extracted from the real archive (one streaming pass, nothing else)."""
    return extract_files(real_linux_tarball, tmp_path_factory.mktemp("real-patch"), WANTED)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_standin_applies_with_exactly_the_keyword_hunks_tolerated(real_files, tmp_path):
    standin = standin_minik.build_minik_standin(real_files)
    tree = _copy(real_files, tmp_path / "ours")
    report = patching.apply_series(tree, [("minik-standin.patch", standin.patch, 1)], log=lambda m: None)

    tolerated = {(path, index): status for _, path, index, status in report.tolerated()}
    assert tolerated == standin.keyword_hunks
    assert sorted(set(s for s in tolerated.values())) == ["keyword-applied", "keyword-skipped"]
    others = [h for p in report.patches for path, h in p.hunks() if (path, h.index) not in tolerated]
    assert others and all(h.status == "applied" and h.fuzz == 0 for h in others)

    for kf in standin_minik.KEYWORD_FILES:
        before = (real_files / kf.path).read_bytes()
        after = (tree / kf.path).read_bytes()
        own_id = re.search(rb".*\$Id.*\n", before).group(0)
        assert own_id in after, f"{kf.path} must keep its own $Id$ line"
        assert kf.patch_id not in after and (kf.new_id is None or kf.new_id not in after)
        if kf.added is not None:
            assert own_id + kf.added in after, "the real change next to the $Id$ line is applied"
        assert standin_minik.ORDINARY in after
    for path in standin_minik.KCONFIG_FILES:
        assert standin_minik.KCONFIG_ADDITION in (tree / path).read_bytes()
    assert (tree / standin_minik.NEW_FILE).read_bytes() == standin_minik.NEW_FILE_TEXT


def test_gnu_patch_rejects_those_same_hunks_and_agrees_elsewhere(real_files, tmp_path):
    gnu_patch = shutil.which("patch")
    if not gnu_patch:
        pytest.skip("GNU patch is not installed")
    standin = standin_minik.build_minik_standin(real_files)
    (tmp_path / "standin.patch").write_bytes(standin.patch)
    gnu_tree = _copy(real_files, tmp_path / "gnu")
    run = subprocess.run([gnu_patch, "-p1", "--fuzz=0", "--forward", "--batch", "--no-backup-if-mismatch",
                          "-i", str(tmp_path / "standin.patch")], cwd=gnu_tree, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr

    failed, current = set(), None
    for line in run.stdout.splitlines():
        m = re.match(r"patching file (\S+)", line)
        current = m.group(1) if m else current
        m = re.match(r"Hunk #(\d+) FAILED", line)
        if m:
            failed.add((current, int(m.group(1))))
    assert failed == set(standin.keyword_hunks)

    ours = _copy(real_files, tmp_path / "ours")
    patching.apply_series(ours, [("minik-standin.patch", standin.patch, 1)], log=lambda m: None)
    keyword_paths = {path for path, _ in standin.keyword_hunks}
    for path in standin.files:
        if path not in keyword_paths:
            assert (ours / path).read_bytes() == (gnu_tree / path).read_bytes(), path


def test_a_real_reject_names_the_hunk_and_leaves_the_files(real_files, tmp_path):
    standin = standin_minik.build_minik_standin(real_files)
    tree = _copy(real_files, tmp_path / "ours")
    setup = tree / "arch/x86_64/kernel/setup.c"
    pristine = setup.read_bytes()
    setup.write_bytes(pristine.replace(b"Forked from i386 setup code.", b"Forked from i386 setup code!", 1))
    before = {p: (tree / p).read_bytes() for p in WANTED}
    with pytest.raises(patching.PatchRejected) as e:
        patching.apply_series(tree, [("minik-standin.patch", standin.patch, 1)], log=lambda m: None)
    assert {p: (tree / p).read_bytes() for p in WANTED} == before
    assert not (tree / standin_minik.NEW_FILE).exists()
    message = str(e.value)
    assert message.startswith("patch minik-standin.patch does not apply: hunk #1 @@ -7,6 +7,7 @@ of "
                              "arch/x86_64/kernel/setup.c")
    assert "Forked from i386 setup code!" in message and "Forked from i386 setup code." in message
