"""A stand-in for the upstream minik-2.6.9-1.0-update1.patch, generated at test time from a real 2.6.9 tree.

The upstream patch was made against a tree checked out of CVS, so the `$Id$` lines of four x86_64 files carry
other expansions than the released 2.6.9 files (README.mkdump: "ignore ... reject. it is a cvs "Id" related
problem"). The stand-in reproduces that: for each of those files it diffs a copy whose `$Id$` line is expanded
differently against the edited file, so every hunk touching the `$Id$` line cannot apply exactly:

  arch/x86_64/kernel/head.S            hunk 1 only moves the $Id$ expansion      -> keyword-only, skipped
  arch/x86_64/kernel/setup.c           hunk 1 adds a comment line; its context holds an expanded $Id$ where the
                                       file has a bare `$Id$`                   -> applied, file keeps `$Id$`
  arch/x86_64/kernel/setup64.c         hunk 1 only moves the $Id$ expansion      -> keyword-only, skipped
  arch/x86_64/boot/compressed/head.S   hunk 1 moves the expansion and adds a line -> applied, file keeps its $Id$

plus ordinary hunks (a comment line) further down each of them, the Kconfig options the mini kernel
configuration needs (DUMP_MINI_KERNEL, X86_PAE) in arch/i386/Kconfig and arch/x86_64/Kconfig, and one new file.
Nothing is compiled differently: the edits are comments and Kconfig text only.

Nothing from the Linux tree is stored here; the patch is computed from the tree the test unpacked.
"""

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

OLD_ROOT = "linux-2.6.9"
NEW_ROOT = "linux-2.6.9-minik"
OLD_STAMP = "2004-10-19 06:00:00.000000000 +0900"
NEW_STAMP = "2005-08-26 10:00:00.000000000 +0900"
EPOCH = "1970-01-01 09:00:00.000000000 +0900"

KCONFIG_ANCHOR = b'source "init/Kconfig"\n'
# The options the minik patch adds (what the mkdump authors' configuration shows under "General setup").
KCONFIG_OPTIONS = b"""\
config DUMP_MINI_KERNEL
	bool "Make dump mini kernel"
	help
	  Build this kernel as the mkdump mini kernel (stand-in for the minik patch).

config X86_PAE
	bool "Run the mini kernel on PAE mode (default)"
	depends on DUMP_MINI_KERNEL
	default y
"""
KCONFIG_ADDITION = b'\nmenu "General setup"\n\n' + KCONFIG_OPTIONS + b"\nendmenu\n"
NEW_FILE = "Documentation/mkdump-minik-standin.txt"
NEW_FILE_TEXT = b"""Mini kernel dump: stand-in for minik-2.6.9-1.0-update1.patch.

The real patch turns this tree into the mkdump mini kernel; the stand-in only adds its
Kconfig options and comments, so that the patch stage can be tested on the real tree.
"""

ID_RE = re.compile(rb"\$Id(?::[^$\n]*)?\$")
ORDINARY = b"/* mkdump minik stand-in: an ordinary hunk */\n"


@dataclass(frozen=True)
class KeywordFile:
    path: str
    patch_id: bytes         # the $Id$ expansion the patch's old side carries
    new_id: bytes | None    # the expansion the patch's new side carries (None: the Id line stays as patch_id)
    added: bytes | None     # a real line added right after the $Id$ line's comment line (None: keyword-only)


KEYWORD_FILES = (
    KeywordFile("arch/x86_64/kernel/head.S", b"$Id: head.S,v 1.1.1.1 2005/01/13 03:47:00 minik Exp $",
                b"$Id: head.S,v 1.2 2005/08/26 10:00:00 minik Exp $", None),
    KeywordFile("arch/x86_64/kernel/setup.c", b"$Id: setup.c,v 1.1.1.1 2005/01/13 03:47:00 minik Exp $",
                None, b" *  Mini kernel dump: setup for the dump mini kernel (stand-in).\n"),
    KeywordFile("arch/x86_64/kernel/setup64.c", b"$Id: setup64.c,v 1.1.1.1 2005/01/13 03:47:00 minik Exp $",
                b"$Id: setup64.c,v 1.3 2005/08/26 10:00:00 minik Exp $", None),
    KeywordFile("arch/x86_64/boot/compressed/head.S",
                b"$Id: head.S,v 1.1.1.1 2005/01/13 03:47:00 minik Exp $",
                b"$Id: head.S,v 1.4 2005/08/26 10:00:00 minik Exp $",
                b" *  Mini kernel dump: load address of the mini kernel (stand-in).\n"),
)
KCONFIG_FILES = ("arch/i386/Kconfig", "arch/x86_64/Kconfig")


@dataclass(frozen=True)
class MinikStandin:
    patch: bytes
    keyword_hunks: dict     # (path, hunk number within the file) -> "keyword-skipped" | "keyword-applied"
    files: tuple            # every path the patch touches, in patch order


def split_lines(data):
    # Only b"\n" ends a line: kernel sources contain form feeds, which bytes.splitlines() would split at.
    if data and not data.endswith(b"\n"):
        raise ValueError("the stand-in expects files that end with a newline")
    return re.findall(rb"[^\n]*\n", data)


def _range(start, length):
    if length == 1:
        return f"{start + 1}"
    return f"{start if length == 0 else start + 1},{length}"


def unified_hunks(old, new, context=3):
    """The hunks of `diff -u` between two lists of byte lines, as (header-less body lines, old range, new range)
    and the opcodes they came from. Uses difflib's grouping, which is `diff -u`'s for these edits."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    hunks = []
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        body = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                body += [b" " + line for line in old[a1:a2]]
                continue
            body += [b"-" + line for line in old[a1:a2]]
            body += [b"+" + line for line in new[b1:b2]]
        header = f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n".encode()
        hunks.append((header, body, (i1, i2)))
    return hunks


def file_diff(path, old, new, *, created=False):
    """One `diff -urN` file section (bytes) and its hunks' old-line ranges."""
    hunks = unified_hunks(old, new)
    out = [f"diff -urN {OLD_ROOT}/{path} {NEW_ROOT}/{path}\n".encode(),
           f"--- {OLD_ROOT}/{path}\t{EPOCH if created else OLD_STAMP}\n".encode(),
           f"+++ {NEW_ROOT}/{path}\t{NEW_STAMP}\n".encode()]
    for header, body, _ in hunks:
        out.append(header)
        out.extend(body)
    return b"".join(out), [r for _, _, r in hunks]


def _ordinary_site(lines, after):
    """Index after the first blank line past `after`: a place where an added comment line is harmless."""
    for i in range(after, len(lines)):
        if lines[i] == b"\n":
            return i + 1
    raise ValueError("no blank line to anchor an ordinary hunk")


def build_minik_standin(tree):
    """The stand-in patch for the real 2.6.9 tree at `tree` (-p1), with the hunks that must be keyword-tolerated."""
    tree = Path(tree)
    sections = []
    keyword_hunks = {}
    files = []
    for kf in KEYWORD_FILES:
        real = split_lines((tree / kf.path).read_bytes())
        id_index = next(i for i, line in enumerate(real) if ID_RE.search(line))
        patch_old = list(real)
        patch_old[id_index] = ID_RE.sub(lambda m: kf.patch_id, real[id_index])
        new = list(patch_old)
        if kf.new_id is not None:
            new[id_index] = ID_RE.sub(lambda m: kf.new_id, real[id_index])
        site = _ordinary_site(new, id_index + 60)
        new.insert(site, ORDINARY)
        if kf.added is not None:
            new.insert(id_index + 1, kf.added)
        text, ranges = file_diff(kf.path, patch_old, new)
        sections.append(text)
        files.append(kf.path)
        for number, (i1, i2) in enumerate(ranges, 1):
            if i1 <= id_index < i2:
                keyword_hunks[(kf.path, number)] = "keyword-skipped" if kf.added is None else "keyword-applied"
    for path in KCONFIG_FILES:
        old = (tree / path).read_bytes()
        if old.count(KCONFIG_ANCHOR) != 1:
            raise ValueError(f"{path} does not look like 2.6.9's: no single {KCONFIG_ANCHOR!r}")
        new = old.replace(KCONFIG_ANCHOR, KCONFIG_ANCHOR + KCONFIG_ADDITION)
        sections.append(file_diff(path, split_lines(old), split_lines(new))[0])
        files.append(path)
    sections.append(file_diff(NEW_FILE, [], split_lines(NEW_FILE_TEXT), created=True)[0])
    files.append(NEW_FILE)
    if sorted(path for path, _ in keyword_hunks) != sorted(kf.path for kf in KEYWORD_FILES):
        raise ValueError(f"{tree} does not look like a 2.6.9 tree: a $Id$ hunk is missing")
    return MinikStandin(b"".join(sections), keyword_hunks, tuple(files))


def make_minik_standin(tree):
    """The stand-in minik patch (bytes, apply with -p1) for the real 2.6.9 tree at `tree`."""
    return build_minik_standin(tree).patch
