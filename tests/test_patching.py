"""Unit tests of the patch stage's core on small trees and patches written here."""

import json
import os
import stat

import pytest

from mkdump import patching
from mkdump.errors import MkdumpError
from support.trees import make_tree, snapshot

QUIET = {"log": lambda msg: None}


def apply(root, *patches, fuzz=0):
    return patching.apply_series(root, [(f"p{i}.patch", p, 1) if isinstance(p, bytes) else p
                                        for i, p in enumerate(patches, 1)], fuzz=fuzz, **QUIET)


def lines(*words):
    return b"".join(w.encode() + b"\n" for w in words)


TEN = lines(*"one two three four five six seven eight nine ten".split())

MODIFY = b"""--- a/f.c\t2005-08-26 10:00:00.000000000 +0900
+++ b/f.c\t2005-08-26 11:00:00.000000000 +0900
@@ -3,7 +3,7 @@
 three
 four
 five
-six
+SIX
 seven
 eight
 nine
"""


# --- series files ------------------------------------------------------------------------------------------------

SERIES = """\
# the mini kernel tree
source:minik                              # the fetched patch itself
source:mkexec/PATCH/mkexec-v1.patch
compat/x86_64-module-plt32.patch arch=x86_64

compat/foo.patch -p0 arch=i386,x86_64
"""


def test_series_entries_for_an_arch():
    entries = patching.parse_series(SERIES, arch="x86_64", filename="patches/minik.series")
    assert entries == [
        patching.SeriesEntry("source:minik", "source", "minik", None, None, 1, 2),
        patching.SeriesEntry("source:mkexec/PATCH/mkexec-v1.patch", "source", "mkexec", "PATCH/mkexec-v1.patch",
                             None, 1, 3),
        patching.SeriesEntry("compat/x86_64-module-plt32.patch", "file", None, None,
                             "compat/x86_64-module-plt32.patch", 1, 4),
        patching.SeriesEntry("compat/foo.patch", "file", None, None, "compat/foo.patch", 0, 6),
    ]
    i386 = patching.parse_series(SERIES, arch="i386", filename="patches/minik.series")
    assert [e.ref for e in i386] == ["source:minik", "source:mkexec/PATCH/mkexec-v1.patch", "compat/foo.patch"]


@pytest.mark.parametrize("line, fragment", [
    ("compat/a.patch -R", "unexpected option '-R'"),
    ("compat/a.patch -p1 -p2", "unexpected option '-p2'"),
    ("compat/a.patch arch=x86-64", "unknown arch 'x86-64'"),
    ("compat/a.patch arch=", "unknown arch ''"),
    ("../outside.patch", "plain relative path"),
    ("/abs.patch", "plain relative path"),
    ("source:", "does not name a source"),
    ("source:mkexec/../x", "plain relative path"),
])
def test_series_errors_name_file_and_line(line, fragment):
    with pytest.raises(MkdumpError) as e:
        patching.parse_series(f"# header\n{line}\n", arch="x86_64", filename="patches/system.series",
                              arches=("i386", "x86_64"))
    assert str(e.value).startswith("patches/system.series:2: ")
    assert fragment in str(e.value)


def test_series_knows_arches_only_when_told():
    text = "a.patch arch=arm\n"
    assert patching.parse_series(text, arch="arm", filename="s") != []
    with pytest.raises(MkdumpError, match="known: i386, x86_64"):
        patching.parse_series(text, arch="x86_64", filename="s", arches=("x86_64", "i386"))


# --- diff shapes -------------------------------------------------------------------------------------------------

def test_modify_at_stated_line(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    report = apply(tmp_path, MODIFY)
    assert (tmp_path / "f.c").read_bytes() == TEN.replace(b"six", b"SIX")
    [(path, hunk)] = report.patches[0].hunks()
    assert (path, hunk.status, hunk.line, hunk.offset) == ("f.c", "applied", 3, 0)


@pytest.mark.parametrize("prefix, expected_offset", [(lines("new1", "new2"), 2), (b"", 0)])
def test_offset_is_found_and_reported(tmp_path, prefix, expected_offset):
    body = prefix + TEN if prefix else TEN.replace(b"one\ntwo\n", b"")
    make_tree(tmp_path, {"f.c": body})
    report = apply(tmp_path, MODIFY)
    hunk = report.patches[0].files[0].hunks[0]
    assert hunk.offset == (expected_offset if prefix else -2)
    assert b"SIX" in (tmp_path / "f.c").read_bytes()
    assert ("offset +2" if prefix else "offset -2") in report.text


def test_nearest_offset_wins_with_later_match_first(tmp_path):
    # "p x" occurs at lines 2 and 6; the hunk says line 4, both are 2 away: GNU patch tries +offset before -offset.
    make_tree(tmp_path, {"f": lines("0", "p", "x", "q", "1", "p", "x", "q", "2")})
    patch = b"--- a/f\n+++ b/f\n@@ -4,2 +4,3 @@\n p\n+added\n x\n"
    report = apply(tmp_path, patch)
    assert (tmp_path / "f").read_bytes() == lines("0", "p", "x", "q", "1", "p", "added", "x", "q", "2")
    assert report.patches[0].files[0].hunks[0].offset == 2


def test_new_and_deleted_files_diff_urN(tmp_path):
    make_tree(tmp_path, {"old/gone.c": lines("bye"), "keep.c": lines("k")})
    patch = b"""diff -urN a/new/dir/made.c b/new/dir/made.c
--- a/new/dir/made.c\t1970-01-01 00:00:00.000000000 +0000
+++ b/new/dir/made.c\t2005-08-26 11:00:00.000000000 +0900
@@ -0,0 +1,2 @@
+hello
+world
Only in b: junk
diff -urN a/old/gone.c b/old/gone.c
--- a/old/gone.c\t2005-08-26 11:00:00.000000000 +0900
+++ b/old/gone.c\t1970-01-01 09:00:00.000000000 +0900
@@ -1 +0,0 @@
-bye
"""
    report = apply(tmp_path, patch)
    assert (tmp_path / "new/dir/made.c").read_bytes() == lines("hello", "world")
    assert not (tmp_path / "old").exists(), "an emptied directory goes with its last file"
    assert [f.action for f in report.patches[0].files] == ["create", "delete"]


def test_git_shapes(tmp_path):
    make_tree(tmp_path, {"gone.txt": lines("x", "y"), "f.c": TEN})
    os.chmod(tmp_path / "f.c", 0o640)
    patch = b"""From: someone
Subject: [PATCH] shapes

diff --git a/tool.sh b/tool.sh
new file mode 100755
index 0000000..e69de29
--- /dev/null
+++ b/tool.sh
@@ -0,0 +1 @@
+echo hi
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
index 1111111..0000000
--- a/gone.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-x
-y
diff --git a/empty b/empty
new file mode 100644
index 0000000..e69de29
diff --git a/f.c b/f.c
index 2222222..3333333 100644
--- a/f.c
+++ b/f.c
@@ -5,3 +5,3 @@ four
 five
-six
+SIX
 seven
-- 
2.1.0
"""
    apply(tmp_path, patch)
    assert (tmp_path / "tool.sh").read_bytes() == b"echo hi\n"
    assert stat.S_IMODE((tmp_path / "tool.sh").stat().st_mode) == 0o755
    assert not (tmp_path / "gone.txt").exists()
    assert (tmp_path / "empty").read_bytes() == b""
    assert b"SIX" in (tmp_path / "f.c").read_bytes()
    assert stat.S_IMODE((tmp_path / "f.c").stat().st_mode) == 0o640, "a patched file keeps its mode"


def git_new_file(mode_line, name=b"f.sh"):
    return (b"diff --git a/" + name + b" b/" + name + b"\n" + mode_line + b"\n--- /dev/null\n+++ b/" + name
            + b"\n@@ -0,0 +1 @@\n+echo hi\n")


@pytest.mark.parametrize("mode_line, mode", [
    (b"new file mode 104777", 0o755),       # setuid and world-writable: neither survives
    (b"new file mode 107775", 0o755),
    (b"new file mode 100666", 0o644),
    (b"new file mode 100610", 0o600),       # execute for the group but not the owner: for nobody
    (b"new file mode 100000", 0o600),
])
def test_git_modes_keep_only_what_an_archive_member_keeps(tmp_path, mode_line, mode):
    apply(tmp_path, git_new_file(mode_line))
    assert stat.S_IMODE((tmp_path / "f.sh").stat().st_mode) == mode


def test_git_mode_change_keeps_only_what_an_archive_member_keeps(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    os.chmod(tmp_path / "f.c", 0o644)
    apply(tmp_path, b"diff --git a/f.c b/f.c\nold mode 100644\nnew mode 106777\n")
    assert stat.S_IMODE((tmp_path / "f.c").stat().st_mode) == 0o755


@pytest.mark.parametrize("mode_line", [b"new file mode xyz", b"new file mode 755", b"new file mode 1007555"])
def test_git_modes_gnu_patch_cannot_read_are_ignored_as_it_ignores_them(tmp_path, mode_line):
    umask = os.umask(0o022)
    try:
        apply(tmp_path, git_new_file(mode_line))
    finally:
        os.umask(umask)
    assert (tmp_path / "f.sh").read_bytes() == b"echo hi\n"
    assert stat.S_IMODE((tmp_path / "f.sh").stat().st_mode) == 0o644


@pytest.mark.parametrize("link", [b"f.c", b"../../etc/passwd"])
def test_a_git_symlink_is_refused_and_nothing_is_written(tmp_path, link):
    make_tree(tmp_path, {"f.c": TEN})
    before = snapshot(tmp_path)
    patch = MODIFY + (b"diff --git a/link b/link\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n"
                      b"+++ b/link\n@@ -0,0 +1 @@\n+" + link + b"\n\\ No newline at end of file\n")
    with pytest.raises(patching.PatchRejected) as e:
        apply(tmp_path, patch)
    assert str(e.value) == ("patch p1.patch does not apply to link: the patch makes it a symbolic link (git mode "
                            "120000), and the patch stage writes regular files only; remove that section from the "
                            "patch")
    assert snapshot(tmp_path) == before


def test_a_git_mode_change_to_a_symlink_is_refused(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    before = snapshot(tmp_path)
    with pytest.raises(patching.PatchRejected, match="symbolic link"):
        apply(tmp_path, b"diff --git a/f.c b/f.c\nold mode 100644\nnew mode 120000\n")
    assert snapshot(tmp_path) == before


def test_no_newline_at_end_of_file_both_ways(tmp_path):
    make_tree(tmp_path, {"a": b"one\ntwo", "b": b"one\ntwo\n"})
    patch = b"""--- a/a
+++ b/a
@@ -1,2 +1,3 @@
 one
-two
\\ No newline at end of file
+two
+three
--- a/b
+++ b/b
@@ -1,2 +1,2 @@
 one
-two
+TWO
\\ No newline at end of file
"""
    apply(tmp_path, patch)
    assert (tmp_path / "a").read_bytes() == b"one\ntwo\nthree\n"
    assert (tmp_path / "b").read_bytes() == b"one\nTWO"


def test_a_context_line_must_agree_on_the_final_newline(tmp_path):
    make_tree(tmp_path, {"a": b"one\ntwo\n"})
    patch = b"--- a/a\n+++ b/a\n@@ -1,2 +1,2 @@\n-one\n+ONE\n two\n\\ No newline at end of file\n"
    with pytest.raises(patching.PatchRejected):
        apply(tmp_path, patch)


def crlf(text):
    return text.replace(b"\n", b"\r\n")


def test_a_crlf_patch_applies_to_lf_files_as_with_gnu_patch(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    report = apply(tmp_path, crlf(MODIFY))
    assert (tmp_path / "f.c").read_bytes() == TEN.replace(b"six", b"SIX")
    assert report.patches[0].files[0].hunks[0].status == "applied"


def test_a_crlf_patch_and_crlf_files_reject_naming_the_line_endings(tmp_path):
    make_tree(tmp_path, {"f.c": crlf(TEN)})
    before = snapshot(tmp_path)
    with pytest.raises(patching.PatchRejected) as e:
        apply(tmp_path, crlf(MODIFY))
    assert snapshot(tmp_path) == before
    first = str(e.value).splitlines()[0]
    assert first == ("patch p1.patch does not apply: hunk #1 @@ -3,7 +3,7 @@ of f.c: its lines are at line 3 if line "
                     "endings are ignored: the file's lines end in CRLF, the patch's in LF (the patch is in CRLF, and "
                     "its CRs are dropped as GNU patch drops them); fix or refresh the patch, or drop it from the "
                     "series")
    assert "     3! three\\r" in str(e.value)


def test_a_lf_patch_for_lf_files_rejects_on_crlf_files_naming_the_line_endings(tmp_path):
    make_tree(tmp_path, {"f.c": crlf(TEN)})
    with pytest.raises(patching.PatchRejected, match="the file's lines end in CRLF, the patch's in LF; fix"):
        apply(tmp_path, MODIFY)


def test_a_diff_of_crlf_files_keeps_its_crs(tmp_path):
    # Headers in LF, lines in CRLF: what diff writes for files with CRLF lines; the CRs are content.
    make_tree(tmp_path, {"f.c": crlf(TEN)})
    head, _, body = MODIFY.partition(b"@@")
    apply(tmp_path, head + b"@@" + body.replace(b"\n", b"\r\n").replace(b"@@\r\n", b"@@\n", 1))
    assert (tmp_path / "f.c").read_bytes() == crlf(TEN.replace(b"six", b"SIX"))


@pytest.mark.parametrize("strip, header", [(0, b"f.c"), (1, b"a/f.c"), (3, b"x/y//z/f.c")])
def test_strip_levels(tmp_path, strip, header):
    make_tree(tmp_path, {"f.c": TEN})
    patch = MODIFY.replace(b"a/f.c", header).replace(b"b/f.c", header)
    patching.apply_series(tmp_path, [("p", patch, strip)], **QUIET)
    assert b"SIX" in (tmp_path / "f.c").read_bytes()


@pytest.mark.parametrize("strip, header, fragment", [(2, b"a/f.c", "fewer than 2"),
                                                     (1, b"a/../../etc/passwd", "leaves the tree"),
                                                     (0, b"/etc/passwd", "leaves the tree")])
def test_bad_names_are_refused(tmp_path, strip, header, fragment):
    make_tree(tmp_path, {"f.c": TEN})
    patch = MODIFY.replace(b"a/f.c", header).replace(b"b/f.c", header)
    with pytest.raises(MkdumpError, match=fragment):
        patching.apply_series(tmp_path, [("p", patch, strip)], **QUIET)


def test_zero_length_sides(tmp_path):
    make_tree(tmp_path, {"f": TEN})
    patch = b"""--- a/f
+++ b/f
@@ -2,0 +3,2 @@
+after-two
+again
@@ -5,2 +6,0 @@
-five
-six
"""
    report = apply(tmp_path, patch)
    assert (tmp_path / "f").read_bytes() == lines("one", "two", "after-two", "again", "three", "four", "seven",
                                                  "eight", "nine", "ten")
    assert [h.line for _, h in report.patches[0].hunks()] == [3, 5]


def test_hunk_at_start_of_file_only_matches_there(tmp_path):
    # Fewer leading than trailing context lines: diff made it at the top of the file, so it may not move.
    patch = b"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-one\n+ONE\n two\n three\n"
    make_tree(tmp_path, {"f": lines("zero") + TEN})
    with pytest.raises(patching.PatchRejected):
        apply(tmp_path, patch)
    (tmp_path / "f").write_bytes(TEN)
    apply(tmp_path, patch)
    assert (tmp_path / "f").read_bytes().startswith(b"ONE\n")


def test_hunk_at_end_of_file_only_matches_there(tmp_path):
    patch = b"--- a/f\n+++ b/f\n@@ -8,3 +8,4 @@\n eight\n nine\n ten\n+eleven\n"
    make_tree(tmp_path, {"f": TEN + lines("more")})
    with pytest.raises(patching.PatchRejected):
        apply(tmp_path, patch)
    (tmp_path / "f").write_bytes(lines("zero") + TEN)
    report = apply(tmp_path, patch)
    assert (tmp_path / "f").read_bytes().endswith(b"ten\neleven\n")
    assert report.patches[0].files[0].hunks[0].offset == 1


def test_later_patches_see_earlier_results(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    second = b"--- a/f.c\n+++ b/f.c\n@@ -5,3 +5,3 @@\n five\n-SIX\n+Six!\n seven\n"
    apply(tmp_path, MODIFY, second)
    assert b"Six!" in (tmp_path / "f.c").read_bytes()


def test_latin1_bytes_survive(tmp_path):
    body = TEN.replace(b"five", b"f\xfcnf")
    make_tree(tmp_path, {"f.c": body})
    patch = MODIFY.replace(b" five", b" f\xfcnf").replace(b"+SIX", b"+s\xe9chs")
    apply(tmp_path, patch)
    assert (tmp_path / "f.c").read_bytes() == body.replace(b"six", b"s\xe9chs")


def test_fuzz_is_off_by_default_and_reported_when_on(tmp_path):
    make_tree(tmp_path, {"f.c": TEN.replace(b"three", b"THREE")})
    with pytest.raises(patching.PatchRejected):
        apply(tmp_path, MODIFY)
    report = apply(tmp_path, MODIFY, fuzz=1)
    hunk = report.patches[0].files[0].hunks[0]
    assert hunk.fuzz == 1 and "FUZZ 1" in report.text
    assert report.to_dict()["patches"][0]["counts"]["fuzzed"] == 1


# --- keyword rule ------------------------------------------------------------------------------------------------

HEAD_FILE = lines("/*", " *  linux/arch/x86_64/kernel/head.S", " *",
                  " *  $Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $", " */", "", "code1", "code2", "code3",
                  "code4")
THEIR_ID = b" *  $Id: head.S,v 1.3 2005/02/01 09:00:00 minik Exp $"
NEWER_ID = b" *  $Id: head.S,v 1.4 2005/08/26 09:00:00 minik Exp $"


def test_keyword_only_hunk_is_skipped_and_reported(tmp_path):
    make_tree(tmp_path, {"head.S": HEAD_FILE})
    patch = (b"--- a/head.S\n+++ b/head.S\n@@ -2,5 +2,5 @@\n  *  linux/arch/x86_64/kernel/head.S\n  *\n"
             b"-" + THEIR_ID + b"\n+" + NEWER_ID + b"\n  */\n \n")
    report = apply(tmp_path, patch)
    assert (tmp_path / "head.S").read_bytes() == HEAD_FILE
    hunk = report.patches[0].files[0].hunks[0]
    assert hunk.status == "keyword-skipped"
    assert hunk.keyword_lines == [(4, b" *  $Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $\n", THEIR_ID + b"\n")]
    assert report.tolerated() == [("p1.patch", "head.S", 1, "keyword-skipped")]
    assert "skipped: its only changes are CVS keyword lines" in report.text
    summary = json.loads(json.dumps(report.to_dict()))
    kw = summary["patches"][0]["files"][0]["hunks"][0]["keyword_lines"]
    assert kw == [{"line": 4, "file": " *  $Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $",
                   "patch": THEIR_ID.decode("latin-1")}]


def test_keyword_context_hunk_is_applied_keeping_the_files_keyword(tmp_path):
    make_tree(tmp_path, {"head.S": HEAD_FILE})
    patch = (b"--- a/head.S\n+++ b/head.S\n@@ -3,5 +3,6 @@\n  *\n"
             b"-" + THEIR_ID + b"\n+" + NEWER_ID + b"\n+ *  mini kernel dump\n  */\n \n code1\n")
    report = apply(tmp_path, patch)
    expected = HEAD_FILE.replace(b"Exp $\n", b"Exp $\n *  mini kernel dump\n")
    assert (tmp_path / "head.S").read_bytes() == expected
    assert report.patches[0].files[0].hunks[0].status == "keyword-applied"


def test_bare_keyword_in_file_matches_expanded_one_in_context(tmp_path):
    body = HEAD_FILE.replace(b"$Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $", b"$Id$")
    make_tree(tmp_path, {"head.S": body})
    patch = (b"--- a/head.S\n+++ b/head.S\n@@ -4,7 +4,7 @@\n" + b" " + THEIR_ID + b"\n  */\n \n-code1\n+CODE1\n"
             b" code2\n code3\n code4\n")
    report = apply(tmp_path, patch)
    assert (tmp_path / "head.S").read_bytes() == body.replace(b"code1", b"CODE1")
    assert report.patches[0].files[0].hunks[0].status == "keyword-applied"


def test_near_miss_outside_the_keyword_rejects(tmp_path):
    make_tree(tmp_path, {"head.S": HEAD_FILE})
    near = THEIR_ID.replace(b" *  ", b" *   ", 1)   # one extra space, outside the keyword
    patch = (b"--- a/head.S\n+++ b/head.S\n@@ -4,7 +4,7 @@\n" + b" " + near + b"\n  */\n \n-code1\n+CODE1\n"
             b" code2\n code3\n code4\n")
    with pytest.raises(patching.PatchRejected) as e:
        apply(tmp_path, patch)
    assert (tmp_path / "head.S").read_bytes() == HEAD_FILE
    message = str(e.value)
    assert "p1.patch" in message and "head.S" in message and "@@ -4,7 +4,7 @@" in message
    assert "$Id: head.S,v 1.3" in message and "$Id: head.S,v 1.49" in message, "expected vs found lines"


def test_exactly_matching_keyword_lines_are_patched_like_gnu_patch(tmp_path):
    make_tree(tmp_path, {"head.S": HEAD_FILE.replace(b" *  $Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $", THEIR_ID)})
    patch = (b"--- a/head.S\n+++ b/head.S\n@@ -3,3 +3,3 @@\n  *\n-" + THEIR_ID + b"\n+" + NEWER_ID + b"\n  */\n")
    report = apply(tmp_path, patch)
    assert NEWER_ID in (tmp_path / "head.S").read_bytes()
    assert report.patches[0].files[0].hunks[0].status == "applied"


# --- atomicity and errors ----------------------------------------------------------------------------------------

def test_a_reject_anywhere_leaves_the_tree_untouched(tmp_path):
    make_tree(tmp_path, {"f.c": TEN, "g.c": lines("g")})
    before = snapshot(tmp_path)
    creates = b"--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+new\n"
    bad = b"--- a/g.c\n+++ b/g.c\n@@ -1 +1 @@\n-not g\n+G\n"
    with pytest.raises(patching.PatchRejected) as e:
        apply(tmp_path, MODIFY, creates, bad)
    assert snapshot(tmp_path) == before
    err = e.value
    assert isinstance(err, MkdumpError)
    assert str(err).startswith("patch p3.patch does not apply: hunk #1 @@ -1 +1 @@ of g.c: ")
    assert "not g" in str(err) and "!" in str(err)
    assert "patch p1.patch (-p1)" in err.report and "REJECTED" in err.report
    assert err.details.to_dict()["ok"] is False


def test_every_reject_is_in_the_report(tmp_path):
    make_tree(tmp_path, {"f.c": lines("a", "b")})
    bad = b"--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-x\n+y\n--- a/missing.c\n+++ b/missing.c\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(patching.PatchRejected) as e:
        apply(tmp_path, bad)
    assert "1 more reject(s)" in str(e.value)
    assert "missing.c (modify)\n    REJECTED: the file does not exist in the tree" in e.value.report


def test_creating_an_existing_file_and_deleting_a_changed_one_reject(tmp_path):
    make_tree(tmp_path, {"n.c": lines("here"), "d.c": lines("x", "extra")})
    with pytest.raises(patching.PatchRejected, match="already exists"):
        apply(tmp_path, b"--- /dev/null\n+++ b/n.c\n@@ -0,0 +1 @@\n+new\n")
    with pytest.raises(patching.PatchRejected, match="would remain"):
        apply(tmp_path, b"--- a/d.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n")


def test_paths_that_are_not_regular_files_reject(tmp_path):
    make_tree(tmp_path, {"f.c": TEN, "dir/x": b"x\n"})
    os.symlink("f.c", tmp_path / "link.c")
    before = snapshot(tmp_path)
    for patch, fragment in [
        (MODIFY.replace(b"f.c", b"link.c"), "symbolic link"),
        (b"--- /dev/null\n+++ b/f.c/sub.c\n@@ -0,0 +1 @@\n+new\n", "f.c is a file"),
        (MODIFY.replace(b"f.c", b"dir"), "not a regular file"),
    ]:
        with pytest.raises(patching.PatchRejected, match=fragment):
            apply(tmp_path, patch)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("patch, fragment", [
    (b"just some text\n", "contains no unified diff"),
    (b"--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n", "ends inside the hunk"),
    (b"--- a/f\n+++ b/f\n@@ -1 +1 @@\n*a\n+b\n", "unexpected line"),
    (b"diff --git a/x b/y\nrename from x\nrename to y\n", "rename"),
])
def test_malformed_patches_name_patch_and_line(tmp_path, patch, fragment):
    with pytest.raises(MkdumpError, match=fragment) as e:
        apply(tmp_path, patch)
    assert str(e.value).startswith("patch p1.patch")


def test_writes_leave_no_temporary_files_and_report_is_json(tmp_path):
    make_tree(tmp_path, {"f.c": TEN})
    report = apply(tmp_path, MODIFY)
    assert sorted(os.listdir(tmp_path)) == ["f.c"]
    json.dumps(report.to_dict())
