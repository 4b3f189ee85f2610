"""The patch stage's pure core: patch series, keyword-aware hunk placement, check-everything-then-write.

Placement is GNU patch 2.7's (locate_hunk/apply_hunk in patch.c) line for line: each hunk is tried at its stated
line plus the offset found for the previous hunk of the same file, then at +1, -1, +2, -2, ... within the lines
not yet consumed by earlier hunks; a hunk with less leading than trailing context can only sit at the start of the
file, one with less trailing context only at its end. Context is matched against the file as it was before this
file section, as GNU patch does. So wherever `patch --fuzz=0` applies a patch, the result here is the same bytes.

Only where that exact search fails does the keyword rule apply: a line carrying an RCS/CVS keyword matches a line
that is equal after both have every keyword contracted to `$Kw$`. A hunk whose changes are all such keyword lines
(a `$Id$` moved from one expansion to another) is skipped; a hunk with real changes keeps the file's own text on
every keyword line. Nothing else is tolerated, and fuzz (off unless asked for) is reported hunk by hunk.
"""

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mkdump import unidiff
from mkdump.errors import MkdumpError
from mkdump.fsutil import tree_file_mode
from mkdump.logs import log_default

KEYWORDS = ("Id", "Header", "Revision", "Date", "Author", "Source", "RCSfile", "Log", "Locker", "State", "Name")
_KEYWORD_RE = re.compile(rb"\$(" + "|".join(KEYWORDS).encode() + rb")(?::[^$\n]*)?\$")
_SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_ARCH_RE = re.compile(r"[A-Za-z0-9_]+")


def contract_keywords(line):
    """`line` with every expanded `$Kw: ... $` written as the bare `$Kw$`."""
    if b"$" not in line:
        return line
    return _KEYWORD_RE.sub(rb"$\1$", line)


def has_keyword(line):
    return b"$" in line and _KEYWORD_RE.search(line) is not None


# ---------------------------------------------------------------------------------------------------------------
# Series files

@dataclass(frozen=True)
class SeriesEntry:
    ref: str            # the entry as written: "source:NAME[/MEMBER]" or a path relative to patches/
    kind: str           # "source" or "file"
    source: str | None  # source name for kind "source"
    member: str | None  # member of an unpacked archive source, or None for the fetched file itself
    path: str | None    # path relative to patches/ for kind "file"
    strip: int          # -p level
    lineno: int


def _check_relative(value, where, what):
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise MkdumpError(f"{where}: {what} {value!r} must be a plain relative path (no leading '/', no '.' or '..' "
                          "components); fix the series entry")


def parse_series(text, *, arch, filename, arches=None):
    """The entries of a series file that apply to `arch`, in order.

    One entry per line: `source:NAME`, `source:NAME/MEMBER` or a path relative to patches/, then options `-pN`
    (default 1) and `arch=A,B` (default: every arch). `#` starts a comment. `arches`, when given, lists the arch
    names an `arch=` option may use, so a misspelt arch is an error instead of a silently skipped patch.
    Raises MkdumpError naming `filename:line` for a bad line.
    """
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{filename}:{lineno}"
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        ref, *options = line.split()
        strip = None
        entry_arches = None
        for opt in options:
            m = re.fullmatch(r"-p(\d+)", opt)
            if m and strip is None:
                strip = int(m.group(1))
            elif opt.startswith("arch=") and entry_arches is None:
                entry_arches = opt[len("arch="):].split(",")
                for a in entry_arches:
                    if not _ARCH_RE.fullmatch(a) or (arches is not None and a not in arches):
                        known = f" (known: {', '.join(sorted(arches))})" if arches is not None else ""
                        raise MkdumpError(f"{where}: unknown arch {a!r} in {opt!r}{known}; fix the series entry")
            else:
                raise MkdumpError(f"{where}: unexpected option {opt!r} (allowed once each: -pN, arch=LIST); "
                                  "fix the series entry")
        if ref.startswith("source:"):
            source, sep, member = ref[len("source:"):].partition("/")
            if not _SOURCE_NAME_RE.fullmatch(source):
                raise MkdumpError(f"{where}: {ref!r} does not name a source (expected source:NAME or "
                                  "source:NAME/MEMBER); fix the series entry")
            if sep:
                _check_relative(member, where, "archive member")
            entry = SeriesEntry(ref, "source", source, member if sep else None, None,
                                1 if strip is None else strip, lineno)
        else:
            _check_relative(ref, where, "patch path")
            entry = SeriesEntry(ref, "file", None, None, ref, 1 if strip is None else strip, lineno)
        if entry_arches is None or arch in entry_arches:
            entries.append(entry)
    return entries


# ---------------------------------------------------------------------------------------------------------------
# Results

@dataclass
class HunkResult:
    index: int                       # 1-based within its file section
    header: str
    status: str                      # "applied", "keyword-skipped", "keyword-applied" or "rejected"
    line: int = 0                    # where the hunk's old lines start in the file (before this section)
    offset: int = 0                  # line offset from the stated position, GNU patch's sense
    fuzz: int = 0
    keyword_lines: list = field(default_factory=list)   # (file line, file text, patch text) tolerated
    expected: list = field(default_factory=list)        # rejects: (stated line number, expected text)
    found: list = field(default_factory=list)           # rejects: (line number, text, matches?) closest lines
    reason: str = ""

    def to_dict(self):
        d = {"index": self.index, "header": self.header, "status": self.status}
        if self.status != "rejected":
            d.update(line=self.line, offset=self.offset, fuzz=self.fuzz)
        if self.keyword_lines:
            d["keyword_lines"] = [{"line": n, "file": _text(f), "patch": _text(p)} for n, f, p in self.keyword_lines]
        if self.reason:
            d["reason"] = self.reason
        return d


def _text(line):
    # Kernel sources are latin-1; every byte maps to one character, so the report round-trips exactly.
    return line.decode("latin-1").rstrip("\n") if isinstance(line, bytes) else line


@dataclass
class FileResult:
    path: str
    action: str                      # "modify", "create" or "delete"
    hunks: list = field(default_factory=list)
    error: str = ""                  # a reject of the whole section (missing file, file exists, ...)

    @property
    def rejected(self):
        return bool(self.error) or any(h.status == "rejected" for h in self.hunks)

    def to_dict(self):
        d = {"path": self.path, "action": self.action, "hunks": [h.to_dict() for h in self.hunks]}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class PatchResult:
    name: str
    strip: int
    files: list = field(default_factory=list)

    def hunks(self, status=None):
        return [(f.path, h) for f in self.files for h in f.hunks if status is None or h.status == status]

    def to_dict(self):
        return {"name": self.name, "strip": self.strip, "files": [f.to_dict() for f in self.files],
                "counts": _counts(self)}


def _counts(patch):
    c = {"files": len(patch.files), "applied": 0, "keyword-skipped": 0, "keyword-applied": 0, "rejected": 0,
         "fuzzed": 0, "offset": 0}
    for _, h in patch.hunks():
        c[h.status] += 1
        c["fuzzed"] += h.fuzz > 0
        c["offset"] += h.status != "rejected" and h.offset != 0
    c["rejected"] += sum(1 for f in patch.files if f.error)
    return c


def _show(text):
    text = text.rstrip(b"\n")
    if text.endswith(b"\r"):
        text = text[:-1] + b"\\r"     # else a line differing only in its CRLF ending looks the same
    return text.decode("utf-8", "backslashreplace")


class PatchReport:
    """What a series run did, per patch, file and hunk. `.text` for people, `.to_dict()` for JSON."""

    def __init__(self, patches):
        self.patches = patches

    @property
    def rejects(self):
        return [(p, f, h) for p in self.patches for f in p.files
                for h in ([None] if f.error else []) + [h for h in f.hunks if h.status == "rejected"]]

    def tolerated(self):
        """(patch name, path, hunk index, status) of every keyword-tolerated hunk."""
        return [(p.name, path, h.index, h.status) for p in self.patches
                for path, h in p.hunks() if h.status.startswith("keyword-")]

    def to_dict(self):
        return {"ok": not self.rejects, "patches": [p.to_dict() for p in self.patches]}

    @property
    def text(self):
        out = []
        for p in self.patches:
            c = _counts(p)
            out.append(f"patch {p.name} (-p{p.strip}): {c['files']} file(s); hunks: {c['applied']} applied, "
                       f"{c['keyword-applied']} applied with keyword tolerance, {c['keyword-skipped']} skipped as "
                       f"keyword-only, {c['rejected']} rejected; {c['offset']} at an offset, {c['fuzzed']} fuzzed")
            for f in p.files:
                out.append(f"  {f.path} ({f.action})")
                if f.error:
                    out.append(f"    REJECTED: {f.error}")
                for h in f.hunks:
                    out.extend("    " + line for line in _hunk_lines(h))
        return "\n".join(out) + "\n"


def _hunk_lines(h):
    head = f"hunk #{h.index} {h.header}: "
    if h.status == "rejected":
        lines = [head + "REJECTED" + (f": {h.reason}" if h.reason else "")]
        lines.extend("  " + line for line in _comparison(h))
        return lines
    where = f"at line {h.line}" + (f" (offset {h.offset:+d})" if h.offset else "")
    if h.fuzz:
        where += f", FUZZ {h.fuzz} (its first/last {h.fuzz} context line(s) were not checked)"
    verb = {"applied": "applied", "keyword-applied": "applied, keyword lines keep the file's text",
            "keyword-skipped": "skipped: its only changes are CVS keyword lines"}[h.status]
    lines = [head + verb + " " + where]
    for n, ftext, ptext in h.keyword_lines:
        lines.append(f"  line {n}: file has {_show(ftext)!r}, patch expected {_show(ptext)!r}")
    return lines


def _comparison(h):
    lines = ["expected (old side of the hunk):"]
    lines.extend(f"  {n:6d}  {_show(t)}" for n, t in h.expected)
    if h.found:
        same = sum(1 for _, _, ok in h.found if ok)
        lines.append(f"closest lines found in the file ({same} of {len(h.expected)} match, '!' marks a difference):")
        lines.extend(f"  {n:6d}{' ' if ok else '!'} {_show(t)}" for n, t, ok in h.found)
    else:
        lines.append("closest lines found in the file: none (the file is empty)")
    return lines


class PatchRejected(MkdumpError):
    """A series does not apply. str() names the first rejected hunk; `.report` is the full text of the run and
    `.details` the PatchReport (for `.to_dict()`). The tree has not been touched."""

    def __init__(self, report):
        self.details = report
        self.report = report.text
        patch, f, h = report.rejects[0]
        more = len(report.rejects) - 1
        tail = f" ({more} more reject(s) in the full report)" if more else ""
        if h is None:
            msg = f"patch {patch.name} does not apply to {f.path}: {f.error}{tail}"
        else:
            first = (f"patch {patch.name} does not apply: hunk #{h.index} {h.header} of {f.path}: "
                     f"{h.reason or 'its old lines match nowhere in the file'}{tail}; fix or refresh the patch, "
                     "or drop it from the series")
            msg = "\n".join([first] + ["  " + line for line in _comparison(h)])
        super().__init__(msg)


# ---------------------------------------------------------------------------------------------------------------
# One file section, GNU patch's way

class _Reject(Exception):
    pass


class _Placement:
    """Per-file state of GNU patch: input lines, how far output has consumed them, the running offset."""

    def __init__(self, lines):
        self.input = lines
        self.frozen = 0            # last_frozen_line
        self.in_offset = 0
        self.out = []
        self.after_newline = True
        self._contracted = None

    def contracted(self):
        if self._contracted is None:
            self._contracted = [contract_keywords(line) for line in self.input]
        return self._contracted

    def locate(self, hunk, pattern, fuzz, file_lines):
        """GNU patch's locate_hunk: the 1-based input line where `pattern` (the hunk's old side) goes, or 0."""
        first_guess = hunk.first + self.in_offset
        pat_lines = len(pattern)
        prefix, suffix = hunk.prefix_context, hunk.suffix_context
        context = max(prefix, suffix)
        prefix_fuzz = fuzz + prefix - context
        suffix_fuzz = fuzz + suffix - context
        n = len(file_lines)
        max_where = n - (pat_lines - suffix_fuzz) + 1
        min_where = self.frozen + 1 - (prefix - prefix_fuzz)
        max_pos = max_where - first_guess
        max_neg = first_guess - min_where
        max_offset = max(max_pos, max_neg)
        if not pat_lines:
            return first_guess
        if first_guess <= max_neg:
            max_neg = first_guess - 1

        def match(offset, pf, sf):
            start = first_guess + offset + pf
            end = first_guess + offset + pat_lines - sf - 1      # inclusive, 1-based
            if start > end:
                return True                                      # fuzz left nothing to compare
            if start < 1 or end > n:
                return False
            return file_lines[start - 1:end] == pattern[pf:pat_lines - sf]

        if prefix_fuzz < 0 and hunk.first <= 1:
            if suffix_fuzz < 0 and (pat_lines != n or prefix < self.frozen):
                return 0
            offset = 1 - first_guess
            if self.frozen <= prefix and offset <= max_pos and match(offset, 0, suffix_fuzz):
                self.in_offset += offset
                return first_guess + offset
            return 0
        if prefix_fuzz < 0:
            prefix_fuzz = 0
        if suffix_fuzz < 0:
            offset = first_guess - (n - pat_lines + 1)
            if offset <= max_neg and match(-offset, prefix_fuzz, 0):
                self.in_offset -= offset
                return first_guess - offset
            return 0
        # Where the stated line lies outside the window, 2.7 starts at the first distance that reaches it.
        min_offset = (first_guess - max_where if max_pos < 0 else first_guess - min_where if max_neg < 0 else 0)
        for offset in range(min_offset, max_offset + 1):
            if offset <= max_pos and match(offset, prefix_fuzz, suffix_fuzz):
                self.in_offset += offset
                return first_guess + offset
            if offset <= max_neg and match(-offset, prefix_fuzz, suffix_fuzz):
                self.in_offset -= offset
                return first_guess - offset
        return 0

    def _copy_till(self, last):
        if self.frozen > last:
            raise _Reject("it would go before lines an earlier hunk already changed (misordered hunks)")
        while self.frozen < last:
            self.frozen += 1
            if self.frozen <= len(self.input):
                s = self.input[self.frozen - 1]
                if not self.after_newline:
                    self.out.append(b"\n")
                self.out.append(s)
                self.after_newline = s.endswith(b"\n")

    def apply(self, lines, where):
        """GNU patch's apply_hunk for `lines` ((tag, text) pairs), old side starting at input line `where`."""
        saved = (len(self.out), self.frozen, self.after_newline)
        try:
            self._apply(lines, where)
        except _Reject:
            del self.out[saved[0]:]
            self.frozen, self.after_newline = saved[1], saved[2]
            raise

    def _apply(self, lines, where):
        old = [tag for tag, _ in lines if tag != b"+"]
        new = [(tag, text) for tag, text in lines if tag != b"-"]
        where -= 1
        o = nw = 0
        while o < len(old):
            if old[o] == b"-":
                self._copy_till(where + o)
                self.frozen += 1
                o += 1
            elif nw >= len(new):
                break
            elif new[nw][0] == b"+":
                self._copy_till(where + o)
                self.out.append(new[nw][1])
                self.after_newline = new[nw][1].endswith(b"\n")
                nw += 1
            else:
                o += 1
                nw += 1
        if nw < len(new) and new[nw][0] == b"+":
            self._copy_till(where + o)
            while nw < len(new) and new[nw][0] == b"+":
                if not self.after_newline:
                    self.out.append(b"\n")
                self.out.append(new[nw][1])
                self.after_newline = new[nw][1].endswith(b"\n")
                nw += 1

    def finish(self):
        if self.frozen < len(self.input):
            self._copy_till(len(self.input))
        return b"".join(self.out)


def _keyword_pairs(lines):
    """`lines` with each removed keyword line paired to an added line equal to it after keyword contraction
    (in order, within one run of changes) turned into a context line. Context lines keep the old text, so on
    output the file's own expansion survives."""
    result = []
    i = 0
    while i < len(lines):
        if lines[i][0] == b" ":
            result.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j][0] != b" ":
            j += 1
        removed = [t for tag, t in lines[i:j] if tag == b"-"]
        added = [t for tag, t in lines[i:j] if tag == b"+"]
        ri = ai = 0
        for r_pos, r in enumerate(removed):
            if not has_keyword(r):
                continue
            key = contract_keywords(r)
            for a_pos in range(ai, len(added)):
                if has_keyword(added[a_pos]) and contract_keywords(added[a_pos]) == key:
                    result.extend((b"-", t) for t in removed[ri:r_pos])
                    result.extend((b"+", t) for t in added[ai:a_pos])
                    result.append((b" ", r))
                    ri, ai = r_pos + 1, a_pos + 1
                    break
        result.extend((b"-", t) for t in removed[ri:])
        result.extend((b"+", t) for t in added[ai:])
        i = j
    return result


def _closest(state, pattern, first_guess):
    """The window of the file most like `pattern` (keyword-aware), nearest the stated line on ties."""
    lines = state.contracted()
    pat = [contract_keywords(p) for p in pattern]
    n, m = len(lines), len(pat)
    if not n:
        return []
    best = None
    for start in range(1, max(1, n - m + 1) + 1):
        score = sum(1 for k in range(min(m, n - start + 1)) if lines[start - 1 + k] == pat[k])
        key = (score, -abs(start - first_guess))
        if best is None or key > best[0]:
            best = (key, start)
    start = best[1]
    return [(start + k, state.input[start - 1 + k], lines[start - 1 + k] == pat[k])
            for k in range(min(m, n - start + 1))]


def _why_not_there(state, hunk, pattern, found):
    """Why a hunk whose lines do occur in the file was still not placed there (empty when they do not occur)."""
    if not pattern or len(found) != len(pattern) or not all(ok for _, _, ok in found):
        return ""
    at = found[0][0]
    if hunk.prefix_context < hunk.suffix_context and hunk.first <= 1:
        return (f"has fewer leading than trailing context lines, so it belongs at the start of the file, but its "
                f"lines are at line {at}")
    if hunk.suffix_context < hunk.prefix_context:
        return (f"has fewer trailing than leading context lines, so it belongs at the end of the file, but its "
                f"lines are at line {at}")
    return f"its lines are at line {at}, which an earlier hunk of this file already passed (hunks out of order)"


def _lf(lines):
    return [line[:-2] + b"\n" if line.endswith(b"\r\n") else line for line in lines]


def _line_endings(state, hunk, pattern, fuzz, crlf_dropped):
    """Why a hunk that would apply if CRLF and LF were the same was not placed (empty when it would not)."""
    start_offset = state.in_offset
    where = state.locate(hunk, _lf(pattern), fuzz, _lf(state.input))
    state.in_offset = start_offset
    if not where or where <= 0:
        return ""
    at = f"its lines are at line {where} if line endings are ignored"
    if any(line.endswith(b"\r\n") for line in state.input[where - 1:where - 1 + len(pattern)]):
        dropped = " (the patch is in CRLF, and its CRs are dropped as GNU patch drops them)" if crlf_dropped else ""
        return f"{at}: the file's lines end in CRLF, the patch's in LF{dropped}"
    return f"{at}: the patch's lines end in CRLF, the file's in LF"


def _place_hunk(state, hunk, index, fuzz, crlf_dropped=False):
    header = hunk.header.decode("utf-8", "backslashreplace")
    pattern = hunk.old_lines
    context = max(hunk.prefix_context, hunk.suffix_context)
    kw_lines = None
    for f in range(min(fuzz, context) + 1):
        start_offset = state.in_offset
        where = state.locate(hunk, pattern, f, state.input)
        if where:
            lines, status = hunk.lines, "applied"
            break
        state.in_offset = start_offset
        if any(has_keyword(p) for p in pattern):
            where = state.locate(hunk, [contract_keywords(p) for p in pattern], f, state.contracted())
            if where:
                lines = _keyword_pairs(hunk.lines)
                status = ("keyword-skipped" if all(tag == b" " for tag, _ in lines) else "keyword-applied")
                kw_lines = [(where + k, state.input[where - 1 + k], p) for k, p in enumerate(pattern)
                            if 0 < where + k <= len(state.input) and has_keyword(p)
                            and state.input[where - 1 + k] != p]
                break
            state.in_offset = start_offset
    else:
        found = _closest(state, pattern, hunk.first + state.in_offset)
        reason = (_why_not_there(state, hunk, pattern, found)
                  or _line_endings(state, hunk, pattern, min(fuzz, context), crlf_dropped))
        return HunkResult(index, header, "rejected", expected=list(enumerate(pattern, hunk.first)), found=found,
                          reason=reason)
    if where <= 0:
        return HunkResult(index, header, "rejected", reason="its position lies before the start of the file",
                          expected=list(enumerate(pattern, hunk.first)), found=_closest(state, pattern, 1))
    result = HunkResult(index, header, status, line=where, offset=state.in_offset, fuzz=f,
                        keyword_lines=kw_lines or [])
    if status != "keyword-skipped":
        try:
            state.apply(lines, where)
        except _Reject as e:
            return HunkResult(index, header, "rejected", reason=str(e), expected=list(enumerate(pattern, hunk.first)),
                              found=_closest(state, pattern, where))
    return result


# ---------------------------------------------------------------------------------------------------------------
# The tree, in memory until everything applies

class _Overlay:
    def __init__(self, root):
        self.root = Path(root)
        self.files = {}            # path -> [data or None, mode or None, original data or None, original mode]

    def get(self, path):
        if path not in self.files:
            full = self.root / path
            if full.is_file():
                data, mode = full.read_bytes(), full.stat().st_mode & 0o7777
                self.files[path] = [data, mode, data, mode]
            else:
                self.files[path] = [None, None, None, None]
        return self.files[path]

    def obstacle(self, path):
        """Why `path` cannot be read or written as a regular file (empty when it can)."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            entry = self.files.get(parent)
            if (entry is not None and entry[0] is not None) or (entry is None and (self.root / parent).is_file()):
                return f"{parent} is a file, so {path} cannot be created below it"
        full = self.root / path
        if full.is_symlink():
            return "it is a symbolic link; the patch stage patches regular files only"
        if full.exists() and not full.is_file():
            return "it exists but is not a regular file"
        return ""

    def changes(self):
        return [(p, e) for p, e in sorted(self.files.items()) if (e[0], e[1]) != (e[2], e[3])]

    def commit(self, log):
        umask = os.umask(0)
        os.umask(umask)
        changes = self.changes()
        for path, (data, _, _, _) in changes:
            if data is None:
                full = self.root / path
                full.unlink()
                parent = full.parent
                while parent != self.root and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
        for path, (data, mode, _, _) in changes:
            if data is None:
                continue
            full = self.root / path
            full.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=full.parent, prefix=f".{full.name}.", suffix=".mkdump-tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(tmp, mode if mode is not None else 0o666 & ~umask)
                os.replace(tmp, full)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        log(f"patch: wrote {sum(e[0] is not None for _, e in changes)} file(s), "
            f"removed {sum(e[0] is None for _, e in changes)} under {self.root}")


def _apply_file(fs, fp, patch_name, strip, fuzz):
    names = [n for n in (fp.old_name, fp.new_name) if n is not None]
    paths = [unidiff.strip_name(n, strip, patch_name=patch_name, lineno=fp.patch_line) for n in names]
    if fp.old_missing:
        path = paths[-1]
    elif fp.new_missing:
        path = paths[0]
    else:
        # Like GNU patch, prefer the old name, then the new one, whichever exists.
        path = next((p for p in paths if fs.get(p)[0] is not None), paths[0])
    action = "delete" if fp.new_missing else "create" if fp.old_missing else "modify"
    if fp.new_mode is not None and stat.S_ISLNK(fp.new_mode):
        # GNU patch makes the link; we refuse it. A link the patch stage made could lead anywhere: whether its
        # target stays inside the tree depends on every other link on disk (unpack resolves the finished tree to
        # know), and every later section of the series could write through it. The series need none: kbuild makes
        # the tree's own links (include/asm) when it builds.
        return FileResult(path, action, error=f"the patch makes it a symbolic link (git mode {fp.new_mode:06o}), "
                                              "and the patch stage writes regular files only; remove that section "
                                              "from the patch")
    obstacle = fs.obstacle(path)
    if obstacle:
        return FileResult(path, action, error=obstacle)
    entry = fs.get(path)
    creating = fp.old_missing or (entry[0] is None and len(fp.hunks) == 1 and fp.hunks[0].old_len == 0
                                  and fp.hunks[0].old_start == 0)
    action = "create" if creating else "delete" if fp.new_missing else "modify"
    result = FileResult(path, action)
    if creating and entry[0]:
        result.error = "the patch creates this file, but it already exists and is not empty"
        return result
    if not creating and entry[0] is None:
        result.error = "the file does not exist in the tree"
        return result
    state = _Placement(unidiff.split_lines(entry[0] or b""))
    for index, hunk in enumerate(fp.hunks, 1):
        result.hunks.append(_place_hunk(state, hunk, index, fuzz, fp.crlf))
    if result.rejected:
        return result
    data = state.finish()
    if fp.new_missing:
        if data:
            result.error = "the patch deletes this file, but lines the patch does not know about would remain"
            return result
        entry[0] = entry[1] = None
        return result
    entry[0] = data
    if fp.new_mode is not None:
        # A patch is no more trusted than an archive: `new file mode 104777` must not make a setuid,
        # world-writable file in the tree.
        entry[1] = tree_file_mode(fp.new_mode)
    return result


def apply_series(tree, patches, *, fuzz=0, log=None):
    """Apply `patches` ((display name, patch bytes, -p level), in order) to the directory `tree`.

    Every hunk of every patch is checked first, in memory (later patches see earlier patches' results); files are
    written (each to a temporary file in its directory, then renamed; modes kept) only if all apply. `fuzz` lets a
    hunk ignore up to that many context lines at its edges, as `patch --fuzz` does, and every fuzzed hunk is
    reported. Returns a PatchReport. Raises PatchRejected with the tree untouched when anything rejects, and
    MkdumpError for a malformed patch.
    """
    log = log or log_default
    fs = _Overlay(tree)
    results = []
    for name, data, strip in patches:
        result = PatchResult(name, strip)
        for fp in unidiff.parse_patch(data, name=name):
            result.files.append(_apply_file(fs, fp, name, strip, fuzz))
        results.append(result)
        c = _counts(result)
        log(f"patch: {name}: {c['files']} file(s), {c['applied'] + c['keyword-applied']} hunk(s) applied, "
            f"{c['keyword-skipped']} keyword-only skipped, {c['keyword-applied']} keyword-tolerated, "
            f"{c['fuzzed']} fuzzed, {c['rejected']} rejected")
    report = PatchReport(results)
    if report.rejects:
        raise PatchRejected(report)
    fs.commit(log)
    return report
