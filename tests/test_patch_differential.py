"""Differential test: our patch engine against GNU patch 2.7 on generated cases.

Each case: a random small tree, random edits, `diff -urN` for the patch, then a perturbed copy of the tree as the
target (lines inserted or removed so hunks need offsets, a line changed so a hunk cannot apply, a file removed or
created so a section cannot apply); some patches also get their hunks' stated line numbers moved. Wherever `patch --fuzz=N` succeeds, our tree must be byte-identical to its
tree; wherever we reject, GNU patch must fail too, and our target must be untouched. The generated text has no
CVS keywords, so here the two must also agree on every failure. Seeds are fixed, so CI runs
the same cases every time.
"""

import random
import re
import shutil
import subprocess

import pytest

from mkdump import patching
from support.trees import snapshot

GNU_PATCH = shutil.which("patch")
GNU_DIFF = shutil.which("diff")

pytestmark = pytest.mark.skipif(not (GNU_PATCH and GNU_DIFF), reason="GNU patch and diff are needed as the oracle")

# A small vocabulary makes repeated lines common, so the offset search order matters.
VOCAB = [b"alpha\n", b"beta\n", b"gamma\n", b"delta\n", b"\n", b"{\n", b"}\n", b"x = 1;\n", b"return 0;\n",
         b"\tindent\n", b"alpha\n", b"beta\n"]
NAMES = ["f.c", "g.h", "sub/h.S", "sub/deep/k.txt"]
CASES_PER_SEED = 30


def _random_lines(rng, lo=0, hi=24):
    lines = [rng.choice(VOCAB) for _ in range(rng.randint(lo, hi))]
    if lines and rng.random() < 0.15:
        lines[-1] = b"tail without newline"
    return lines


def _edit(rng, lines):
    lines = list(lines)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["insert", "delete", "replace"])
        pos = rng.randint(0, len(lines))
        if op == "insert" or not lines:
            lines[pos:pos] = [rng.choice(VOCAB + [b"new line\n"]) for _ in range(rng.randint(1, 3))]
        elif op == "delete":
            del lines[pos:pos + rng.randint(1, 3)]
        else:
            lines[pos:pos + 1] = [rng.choice([b"changed\n", b"CHANGED\n", b"beta\n"])]
    if lines and rng.random() < 0.1:
        lines[-1] = lines[-1].rstrip(b"\n") or b"x"
    return lines


def _perturb(rng, lines):
    lines = list(lines)
    kind = rng.random()
    if kind < 0.25:
        return lines
    if kind < 0.7:
        for _ in range(rng.randint(1, 3)):
            pos = rng.randint(0, len(lines))
            if rng.random() < 0.6 or not lines:
                lines[pos:pos] = [rng.choice(VOCAB) for _ in range(rng.randint(1, 4))]
            else:
                del lines[pos:pos + rng.randint(1, 2)]
    elif lines:
        pos = rng.randrange(len(lines))
        lines[pos] = lines[pos].replace(b"a", b"A", 1) if b"a" in lines[pos] else b"one char off\n"
    return lines


def _shift_headers(rng, patch):
    """Move the stated line numbers of some hunks, as a patch made against another version would have them."""
    def shift(m):
        start = int(m.group(1))
        delta = rng.randint(-4, 4) if rng.random() < 0.5 else 0
        return b"@@ -%d" % (start + delta if start + delta >= 1 and start >= 1 else start)
    return re.sub(rb"^@@ -(\d+)", shift, patch, flags=re.M)


def _write_tree(root, files):
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(lines))


def _make_case(rng, tmp):
    old = {name: _random_lines(rng) for name in rng.sample(NAMES, rng.randint(1, 3))}
    new = {name: _edit(rng, lines) for name, lines in old.items()}
    if rng.random() < 0.2:
        del new[rng.choice(sorted(new))]                              # a deleted file
    for name in NAMES:
        if name not in old and rng.random() < 0.15:
            new[name] = _random_lines(rng, 1)                          # a created file
    for side, files in (("a", old), ("b", new)):
        shutil.rmtree(tmp / side, ignore_errors=True)
        (tmp / side).mkdir()
        _write_tree(tmp / side, files)
    context = rng.choice([3, 3, 3, 2, 1, 0])
    patch = subprocess.run([GNU_DIFF, "-urN", f"-U{context}", "a", "b"], cwd=tmp, capture_output=True).stdout
    if rng.random() < 0.3:
        patch = _shift_headers(rng, patch)
    target = {name: _perturb(rng, lines) if rng.random() < 0.5 else lines for name, lines in old.items()}
    if target and rng.random() < 0.05:
        del target[rng.choice(sorted(target))]                         # the file to patch is missing
    for name in new:
        if name not in old and rng.random() < 0.2:
            target[name] = _random_lines(rng, 1)                       # the file to create exists
    return patch, target


def _run_case(tmp, patch, target, fuzz):
    for d in ("gnu", "ours"):
        shutil.rmtree(tmp / d, ignore_errors=True)
        (tmp / d).mkdir()
        _write_tree(tmp / d, target)
    (tmp / "p.diff").write_bytes(patch)
    gnu = subprocess.run([GNU_PATCH, "-p1", f"--fuzz={fuzz}", "--forward", "--batch", "--no-backup-if-mismatch",
                          "-i", str(tmp / "p.diff")], cwd=tmp / "gnu", capture_output=True,
                         stdin=subprocess.DEVNULL)
    before = snapshot(tmp / "ours")
    try:
        patching.apply_series(tmp / "ours", [("p.diff", patch, 1)], fuzz=fuzz, log=lambda msg: None)
        ours_ok = True
    except patching.PatchRejected:
        ours_ok = False
    ours = snapshot(tmp / "ours")
    return gnu, ours_ok, before, ours


@pytest.mark.parametrize("seed", range(6))
def test_same_result_as_gnu_patch_fuzz0(tmp_path, seed):
    _differential(tmp_path, seed, lambda rng: 0)


@pytest.mark.parametrize("seed", range(100, 102))
def test_same_result_as_gnu_patch_with_fuzz(tmp_path, seed):
    _differential(tmp_path, seed, lambda rng: rng.choice([1, 2, 3]))


def _differential(tmp_path, seed, pick_fuzz):
    rng = random.Random(seed)
    outcomes = {"both applied": 0, "both failed": 0}
    for case in range(CASES_PER_SEED):
        patch, target = _make_case(rng, tmp_path)
        if not patch:
            continue
        fuzz = pick_fuzz(rng)
        gnu, ours_ok, before, ours = _run_case(tmp_path, patch, target, fuzz)
        where = f"seed {seed} case {case} fuzz {fuzz}\n--- patch:\n{patch.decode()}\n--- gnu:\n{gnu.stdout.decode()}"
        if gnu.returncode == 0:
            assert ours_ok, "GNU patch applied this, we rejected it: " + where
            assert ours == snapshot(tmp_path / "gnu"), "results differ: " + where
            outcomes["both applied"] += 1
        elif not ours_ok:
            assert ours == before, "a rejected series changed the tree: " + where
            outcomes["both failed"] += 1
        elif b"Reversed (or previously applied) patch detected" in gnu.stdout:
            # With fuzz, GNU patch tries a file's first hunk reversed at fuzz 0 before trying it fuzzed, and -N then
            # skips the file; we have no reverse guessing, so we go on and apply it fuzzed.
            assert fuzz > 0, where
        else:
            # The vocabulary has no CVS keywords, so the keyword rule never applies and GNU patch must agree.
            pytest.fail("we applied what GNU patch rejected: " + where)
    # Both directions must actually be exercised, or the seeds test nothing.
    assert outcomes["both applied"] >= 5 and outcomes["both failed"] >= 3, outcomes


# Line endings, each case written out: GNU patch reads a file section's hunk lines without the CR of a CRLF ending
# when the section's "+++" line ends in CRLF, and takes CRs as content otherwise.
_LF = b"one\ntwo\nthree\n"
_CRLF = b"one\r\ntwo\r\nthree\r\n"


def _section(minus_eol, plus_eol, body_eol, name=b"f"):
    return (b"--- a/" + name + minus_eol + b"+++ b/" + name + plus_eol + b"@@ -1,3 +1,3 @@" + body_eol
            + b" one" + body_eol + b"-two" + body_eol + b"+TWO" + body_eol + b" three" + body_eol)


@pytest.mark.parametrize("target, patch", [
    pytest.param(_LF, _section(b"\r\n", b"\r\n", b"\r\n"), id="crlf-patch-lf-file"),
    pytest.param(_CRLF, _section(b"\r\n", b"\r\n", b"\r\n"), id="crlf-patch-crlf-file"),
    pytest.param(_CRLF, _section(b"\n", b"\n", b"\r\n"), id="lf-headers-crlf-lines-crlf-file"),
    pytest.param(_LF, _section(b"\n", b"\n", b"\r\n"), id="lf-headers-crlf-lines-lf-file"),
    pytest.param(_LF, _section(b"\r\n", b"\n", b"\r\n"), id="only-minus-line-crlf"),
    pytest.param(_CRLF, _section(b"\r\n", b"\n", b"\r\n"), id="only-minus-line-crlf-crlf-file"),
    pytest.param(_LF, _section(b"\n", b"\r\n", b"\r\n"), id="only-plus-line-crlf"),
    pytest.param(_LF, _section(b"\r\n", b"\r\n", b"\r\n").replace(b" one\r\n", b" one\n")
                 .replace(b"+TWO\r\n", b"+TWO\n"), id="crlf-headers-mixed-lines-lf-file"),
    pytest.param(_CRLF, _section(b"\r\n", b"\r\n", b"\r\n").replace(b" one\r\n", b" one\n"),
                 id="crlf-headers-mixed-lines-crlf-file"),
    pytest.param(b"one\n\r\nthree\n", b"--- a/f\r\n+++ b/f\r\n@@ -1,3 +1,3 @@\r\n one\r\n \r\r\n-three\r\n+THREE\r\n",
                 id="a-cr-kept-from-cr-cr-lf"),
    pytest.param(b"one\n\nthree\n", b"--- a/f\r\n+++ b/f\r\n@@ -1,3 +1,3 @@\r\n one\r\n\r\n-three\r\n+THREE\r\n",
                 id="crlf-empty-context-line"),
    pytest.param(b"one\ntwo", b"--- a/f\r\n+++ b/f\r\n@@ -1,2 +1,2 @@\r\n one\r\n-two\r\n\\ No newline at end of "
                 b"file\r\n+TWO\r\n\\ No newline at end of file\r\n", id="crlf-no-newline-at-end"),
    pytest.param(_LF, b"diff --git a/g b/g\r\nnew file mode 100644\r\nindex 0000000..1111111\r\n--- /dev/null\r\n"
                 b"+++ b/g\r\n@@ -0,0 +1,2 @@\r\n+a\r\n+b\r\n", id="crlf-git-new-file"),
    pytest.param(_LF, _section(b"\r\n", b"\r\n", b"\r\n") + b"--- /dev/null\n+++ b/h\n@@ -0,0 +1 @@\n+x\r\n",
                 id="crlf-section-then-lf-section"),
])
def test_line_endings_as_gnu_patch(tmp_path, target, patch):
    for d in ("gnu", "ours"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f").write_bytes(target)
    (tmp_path / "p.diff").write_bytes(patch)
    gnu = subprocess.run([GNU_PATCH, "-p1", "--fuzz=0", "--forward", "--batch", "--no-backup-if-mismatch",
                          "--reject-file=-", "-i", str(tmp_path / "p.diff")], cwd=tmp_path / "gnu",
                         capture_output=True, stdin=subprocess.DEVNULL)
    before = snapshot(tmp_path / "ours")
    try:
        patching.apply_series(tmp_path / "ours", [("p.diff", patch, 1)], log=lambda msg: None)
    except patching.PatchRejected:
        assert gnu.returncode != 0, "GNU patch applied this, we rejected it: " + gnu.stdout.decode()
        assert snapshot(tmp_path / "ours") == before
        return
    assert gnu.returncode == 0, "we applied what GNU patch rejected: " + gnu.stdout.decode()
    assert snapshot(tmp_path / "ours") == snapshot(tmp_path / "gnu")
