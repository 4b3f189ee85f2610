"""Unified diffs as `diff -urN` and git write them, read as bytes.

The reading follows GNU patch 2.7: hunk bodies are read by the counts in their `@@` header, a
`\\ No newline at end of file` marker is honoured only after the last old or new line, an empty line inside a
hunk is a context line whose leading space was eaten, and a side is "nonexistent" when it is `/dev/null`, carries
the epoch timestamp that `diff -N` writes for an absent file, or is a git new/deleted file. Everything between
file sections ("Only in ...", "diff -urN ...", "Index: ...", mail text) is ignored, as GNU patch ignores it.
"""

import calendar
import re
from dataclasses import dataclass, field

from mkdump.errors import MkdumpError

_HUNK_RE = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_STAMP_RE = re.compile(rb"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:\s*([+-])(\d\d):?(\d\d))?")
_CTIME_EPOCH_RE = re.compile(rb"\w{3} Jan\s+1 00:00:00(?:\.0+)? 1970")
_MODE_RE = re.compile(rb"[0-7]{6}")
_GIT_UNSUPPORTED = (b"rename from ", b"rename to ", b"copy from ", b"copy to ", b"GIT binary patch")
_C_ESCAPES = {b"n": b"\n", b"t": b"\t", b"\\": b"\\", b'"': b'"', b"a": b"\a", b"b": b"\b", b"f": b"\f",
              b"r": b"\r", b"v": b"\v"}


class PatchFormatError(MkdumpError):
    """The patch text itself is malformed (not a question of whether it fits the tree)."""


@dataclass
class Hunk:
    header: bytes                 # the "@@ ... @@" line, without its newline
    old_start: int                # numbers exactly as written in the header
    old_len: int
    new_start: int
    new_len: int
    lines: list                   # (tag, text) with tag in b" -+"; text keeps its b"\n" unless marked otherwise
    patch_line: int               # 1-based line of the header in the patch

    @property
    def first(self):
        """GNU patch's p_first: an empty old side means "insert after old_start", i.e. before old_start + 1."""
        return self.old_start + 1 if self.old_len == 0 else self.old_start

    @property
    def old_lines(self):
        return [t for tag, t in self.lines if tag != b"+"]

    @property
    def new_lines(self):
        return [t for tag, t in self.lines if tag != b"-"]

    @property
    def prefix_context(self):
        n = 0
        for tag, _ in self.lines:
            if tag != b" ":
                return n
            n += 1
        return n

    @property
    def suffix_context(self):
        n = 0
        for tag, _ in reversed(self.lines):
            if tag != b" ":
                return n
            n += 1
        return n


@dataclass
class FilePatch:
    old_name: bytes | None        # raw names from the headers; None for /dev/null
    new_name: bytes | None
    old_missing: bool             # the old side does not exist: the patch creates the file
    new_missing: bool             # the new side does not exist: the patch deletes the file
    patch_line: int               # 1-based line where the file section starts
    git: bool = False
    new_mode: int | None = None   # git "new file mode" / "new mode", file type bits included
    crlf: bool = False            # the hunks' lines were read without the CR of their CRLF endings
    hunks: list = field(default_factory=list)


def split_lines(data):
    """Lines of `data`, each with its b"\\n" (the last may lack it); only b"\\n" ends a line."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _unquote(s):
    """A git/diff C-quoted name "..." to its bytes."""
    out = bytearray()
    i = 1
    while i < len(s):
        c = s[i:i + 1]
        if c == b'"':
            return bytes(out), s[i + 1:]
        if c == b"\\" and i + 1 < len(s):
            nxt = s[i + 1:i + 2]
            if nxt in _C_ESCAPES:
                out += _C_ESCAPES[nxt]
                i += 2
                continue
            if re.fullmatch(rb"[0-7]", nxt) and re.fullmatch(rb"[0-7]{3}", s[i + 1:i + 4]):
                out.append(int(s[i + 1:i + 4], 8))
                i += 4
                continue
        out += c
        i += 1
    return None, b""


def _name_and_stamp(rest):
    """Split the text after "--- " into (name, timestamp text)."""
    rest = rest.rstrip(b"\r\n")
    if rest.startswith(b'"'):
        name, tail = _unquote(rest)
        if name is not None:
            return name, tail.strip()
    if b"\t" in rest:
        name, _, stamp = rest.partition(b"\t")
        return name.rstrip(b" "), stamp.strip()
    name, _, stamp = rest.partition(b" ")
    return name, stamp.strip()


def _is_epoch(stamp):
    m = _STAMP_RE.match(stamp)
    if m:
        y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
        seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        if m.group(7):
            tz = int(m.group(8)) * 3600 + int(m.group(9)) * 60
            seconds -= tz if m.group(7) == b"+" else -tz
        return seconds == 0
    return bool(_CTIME_EPOCH_RE.match(stamp))


def _git_names(rest):
    """(a-name, b-name) from the text after "diff --git "."""
    rest = rest.rstrip(b"\r\n")
    if rest.startswith(b'"'):
        a, tail = _unquote(rest)
        tail = tail.lstrip(b" ")
        b = _unquote(tail)[0] if tail.startswith(b'"') else tail
        return a, b
    if rest.endswith(b'"'):
        i = rest.rfind(b' "')
        return rest[:i], _unquote(rest[i + 1:])[0]
    # Unquoted names may contain spaces; git writes the same path twice, so split where both halves agree.
    n = len(rest)
    if n % 2 == 1 and rest[n // 2:n // 2 + 1] == b" ":
        a, b = rest[:n // 2], rest[n // 2 + 1:]
        if a.partition(b"/")[2] == b.partition(b"/")[2]:
            return a, b
    a, _, b = rest.partition(b" ")
    return a, b


def _git_mode(text):
    """The mode of a git header, or None where GNU patch's fetchmode reads none (it wants six octal digits and
    otherwise leaves the mode alone)."""
    text = text.lstrip()
    return int(text, 8) if _MODE_RE.fullmatch(text) else None


def _fail(name, lineno, what):
    raise PatchFormatError(f"patch {name}, line {lineno}: {what}; the patch file is damaged or not a unified diff, "
                           "replace it with an intact copy")


def _read_hunk(lines, i, name, strip_cr):
    """Parse the hunk whose header is lines[i]; return (Hunk, index after it). `strip_cr`: read each line ending
    in CRLF as ending in LF."""
    header = lines[i].rstrip(b"\r\n")
    m = _HUNK_RE.match(header)
    if not m:
        _fail(name, i + 1, f"malformed hunk header {header.decode('latin-1')!r}")
    old_start = int(m.group(1))
    old_len = int(m.group(2)) if m.group(2) is not None else 1
    new_start = int(m.group(3))
    new_len = int(m.group(4)) if m.group(4) is not None else 1
    hunk = Hunk(header, old_start, old_len, new_start, new_len, [], i + 1)
    old_seen = new_seen = 0
    i += 1
    while old_seen < old_len or new_seen < new_len:
        if i >= len(lines):
            _fail(name, i, f"the patch ends inside the hunk {header.decode('latin-1')!r}")
        line = lines[i]
        i += 1
        if strip_cr and line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        if line in (b"\n", b"\r\n") or line.startswith(b"\t"):
            tag, text = b" ", line           # an editor ate the leading space of a context line
        else:
            tag, text = line[:1], line[1:]
        if tag not in (b" ", b"-", b"+"):
            _fail(name, i, f"unexpected line {line.rstrip().decode('latin-1')!r} inside the hunk "
                           f"{header.decode('latin-1')!r}")
        last_old = last_new = False
        if tag != b"+":
            old_seen += 1
            last_old = old_seen == old_len
            if old_seen > old_len:
                _fail(name, i, f"more old lines than the header {header.decode('latin-1')!r} announces")
        if tag != b"-":
            new_seen += 1
            last_new = new_seen == new_len
            if new_seen > new_len:
                _fail(name, i, f"more new lines than the header {header.decode('latin-1')!r} announces")
        if (last_old or last_new) and i < len(lines) and lines[i].startswith(b"\\"):
            i += 1
            if text.endswith(b"\n"):
                text = text[:-1]
        if not text:
            _fail(name, i, "an empty line without newline inside a hunk")
        hunk.lines.append((tag, text))
    if all(tag == b" " for tag, _ in hunk.lines):
        _fail(name, hunk.patch_line, f"the hunk {header.decode('latin-1')!r} changes nothing")
    return hunk, i


def parse_patch(data, *, name="patch"):
    """All file sections of a unified diff, in order.

    Raises PatchFormatError (a MkdumpError) naming the patch and line for malformed text, for git renames, copies
    and binary diffs (which this stage does not apply), and for a patch with no file section at all.
    """
    lines = split_lines(data)
    files = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fp = None
        if line.startswith(b"diff --git "):
            a, b = _git_names(line[len(b"diff --git "):])
            fp = FilePatch(a, b, False, False, i + 1, git=True)
            i += 1
            while i < len(lines) and not lines[i].startswith((b"diff ", b"--- ", b"@@ ")):
                ext = lines[i].rstrip(b"\r\n")
                if ext.startswith(_GIT_UNSUPPORTED) or (ext.startswith(b"Binary files ") and ext.endswith(b"differ")):
                    _fail(name, i + 1, "a git rename, copy or binary change, which the patch stage cannot apply "
                                       "(write it as a plain diff)")
                if ext.startswith(b"new file mode "):
                    fp.old_missing = True
                    fp.new_mode = _git_mode(ext[len(b"new file mode "):])
                elif ext.startswith(b"deleted file mode "):
                    fp.new_missing = True
                elif ext.startswith(b"new mode "):
                    fp.new_mode = _git_mode(ext[len(b"new mode "):])
                elif not ext.startswith((b"old mode ", b"index ", b"similarity index ", b"dissimilarity index ")):
                    break
                i += 1
            if fp.old_missing:
                fp.old_name = None
            if fp.new_missing:
                fp.new_name = None
        if i + 1 < len(lines) and lines[i].startswith(b"--- ") and lines[i + 1].startswith(b"+++ "):
            old, old_stamp = _name_and_stamp(lines[i][4:])
            new, new_stamp = _name_and_stamp(lines[i + 1][4:])
            if fp is None:
                fp = FilePatch(old, new, False, False, i + 1)
            if old == b"/dev/null" or (not fp.git and _is_epoch(old_stamp)):
                fp.old_missing = True
            if new == b"/dev/null" or (not fp.git and _is_epoch(new_stamp)):
                fp.new_missing = True
            fp.old_name = None if old == b"/dev/null" else old
            fp.new_name = None if new == b"/dev/null" else new
            # GNU patch's rule, per file section: when its "+++" line ends in CRLF, every line of its hunks that
            # ends in CRLF is read as ending in LF (a patch gone through a DOS editor or mailer); otherwise CRs
            # are content (a diff of files with CRLF lines). Files with CRLF lines then need a patch without.
            fp.crlf = lines[i + 1].endswith(b"\r\n")
            i += 2
        if fp is None:
            i += 1
            continue
        while i < len(lines) and lines[i].startswith(b"@@ "):
            hunk, i = _read_hunk(lines, i, name, fp.crlf)
            fp.hunks.append(hunk)
        if not fp.git and not fp.hunks:
            _fail(name, fp.patch_line, "a file header with no hunk after it")
        if fp.old_missing and fp.new_missing:
            _fail(name, fp.patch_line, "a file section whose both sides are absent")
        files.append(fp)
    if not files:
        raise PatchFormatError(f"patch {name} contains no unified diff (no '---'/'+++' file header with hunks); "
                               "check that the series names the right file")
    return files


def strip_name(raw, strip, *, patch_name, lineno):
    """The tree-relative path (str) for a raw header name with `strip` leading components removed, as -p does.

    Repeated slashes count as one, like GNU patch. Raises PatchFormatError for a name with too few components, an
    absolute result, or a `..` component (the patch would write outside the tree).
    """
    rest = raw
    for _ in range(strip):
        cut = rest.find(b"/")
        if cut < 0:
            raise PatchFormatError(f"patch {patch_name}, line {lineno}: the file name {raw.decode('latin-1')!r} has "
                                   f"fewer than {strip} leading directories to strip; fix the -p level in the series")
        rest = rest[cut + 1:].lstrip(b"/")
    parts = [p for p in rest.split(b"/") if p not in (b"", b".")]
    if not parts or rest.startswith(b"/") or b".." in parts:
        raise PatchFormatError(f"patch {patch_name}, line {lineno}: the file name {raw.decode('latin-1')!r} leaves "
                               f"the tree after stripping {strip} directories; fix the -p level or the patch")
    return b"/".join(parts).decode("utf-8", "surrogateescape")
