"""The pure pieces of benchmarks/run: figures and goals, the table and JSON, the machine description, the by-hand
command list derived from our series, reading SCons' --debug=time output and make's logs, the one-line edit of a
patch, and du's output. No timing happens here.
"""
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Optional

# ----------------------------------------------------------------------------------------------- figures and goals


def median(values):
    """The median of a non-empty sequence of numbers (the mean of the middle two for an even count)."""
    values = list(values)
    if not values:
        raise ValueError("median of no values")
    return statistics.median(values)


@dataclass(frozen=True)
class Goal:
    """A goal on a figure: `op` is "<" or "<=" (on a number) or "excludes" (a list of names that must not
    contain any of `limit`, a tuple of prefixes)."""
    op: str
    limit: object
    text: str

    def met(self, value):
        if value is None:
            return None
        if self.op == "<":
            return value < self.limit
        if self.op == "<=":
            return value <= self.limit
        if self.op == "excludes":
            return not any(name.startswith(prefix) for name in value for prefix in self.limit)
        raise ValueError(f"unknown goal operator {self.op!r}")


# The issue-15 goals on this 2-core machine (the unpack goal is issue 7's). Each figure that has a goal takes it from
# here, so the table, the JSON and README's Performance section name the same limits.
GOALS = {
    # ours / the same steps by hand 0.90x, written as the overhead the figures report
    "cold": Goal("<=", -10.0, "<= -10 % (0.90x)"),
    "noop": Goal("<=", 0.2, "<= 0.2 s"),
    "config_stages": Goal("excludes", ("unpack", "patch"), "neither unpack nor patch"),
    "config_time": Goal("<=", 2.2, "<= 2.2 s"),
    "edit": Goal("<=", 0.15, "<= 0.15x"),
    "unpack": Goal("<=", 1.5, "<= 1.5x"),
    "ccache": Goal("<=", 0.30, "<= 0.30x"),
    "disk": Goal("<=", 0.6, "<= 0.60x"),
}


@dataclass
class Figure:
    key: str
    label: str
    value: object = None          # a number, a list of names, or None when not measured
    unit: str = ""                # "s", "%", "x" or "" (lists)
    runs: list = field(default_factory=list)   # every measured value the median came from
    goal: Optional[Goal] = None
    note: str = ""                # why not measured, or what the value leaves out

    @property
    def met(self):
        return self.goal.met(self.value) if self.goal else None

    def value_text(self):
        if self.value is None:
            return "not measured"
        if isinstance(self.value, (list, tuple)):
            return ", ".join(self.value) if self.value else "(none)"
        text = _number(self.value, self.unit)
        if len(self.runs) > 1:
            text += f" (median of {len(self.runs)}: {_number(min(self.runs), self.unit)}" \
                    f"..{_number(max(self.runs), self.unit)})"
        return text

    def to_dict(self):
        return {"key": self.key, "label": self.label, "value": self.value, "unit": self.unit, "runs": self.runs,
                "goal": self.goal.text if self.goal else None, "met": self.met, "note": self.note}


def _number(value, unit):
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:g}{unit}"


def ratio(numerator, denominator):
    return None if numerator is None or not denominator else numerator / denominator


def overhead_percent(ours, theirs):
    r = ratio(ours, theirs)
    return None if r is None else (r - 1) * 100


def format_table(figures):
    """The figures as a plain text table: figure | value | goal | met?; notes indented under their row."""
    head = ("figure", "value", "goal", "met?")
    rows = [(f.label, f.value_text(), f.goal.text if f.goal else "", _met_text(f.met)) for f in figures]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(3)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths + [0])).rstrip(),
           "  ".join("-" * w for w in widths + [4])]
    for f, r in zip(figures, rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths + [0])).rstrip())
        if f.note:
            out.append("    " + f.note)
    return "\n".join(out) + "\n"


def _met_text(met):
    return {True: "yes", False: "NO", None: "-"}[met]


def report_json(figures, *, machine, options):
    return json.dumps({"machine": machine, "options": options, "figures": [f.to_dict() for f in figures]},
                      indent=2) + "\n"


# ----------------------------------------------------------------------------------------------- the machine


def _first_line(argv):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    except OSError:
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def parse_cpuinfo(text):
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


def parse_meminfo_gib(text):
    m = re.search(r"^MemTotal:\s*(\d+) kB", text, re.M)
    return round(int(m.group(1)) / (1 << 20), 1) if m else None


def machine_info():
    """CPU model, cores, RAM, kernel, compiler and make versions, load average and the date, for the report."""
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": parse_cpuinfo(read("/proc/cpuinfo")) or platform.processor() or None,
        "cores": os.cpu_count(),
        "ram_gib": parse_meminfo_gib(read("/proc/meminfo")),
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "gcc": _first_line(["gcc", "--version"]),
        "make": _first_line(["make", "--version"]),
        "ccache": _first_line(["ccache", "--version"]),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def format_machine(m):
    return (f"date     {m['date']}\n"
            f"machine  {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['kernel']}\n"
            f"tools    {m['gcc']}; {m['make']}; {m['ccache'] or 'no ccache'}; Python {m['python']}\n"
            f"load     {' '.join(str(x) for x in m['loadavg'])} (1, 5, 15 min) at the start\n")


# ----------------------------------------------------------------------------------------------- by hand

@dataclass(frozen=True)
class Step:
    phase: str          # "unpack+patch", "config", "build" or "mkexec": the stages ours are grouped into too
    argv: tuple
    cwd: str
    ok: tuple = (0,)    # exit statuses that count as success

    def shell(self):
        return f"(cd {shlex.quote(self.cwd)} && {shlex.join(self.argv)})"


def by_hand_steps(*, arch, work, linux_archive, mkexec_archive, series, source_files, patches_dir, our_configs,
                  config_args, build_args, mkexec_args, jobs, make_targets, release):
    """The README recipe done by hand with tar, cp, patch, make oldconfig and make, doing what our pipeline does.

    series: {"minik": [SeriesEntry...], "system": [...]} as parse_series gives them for `arch`; source_files:
    {source name: fetched file}; our_configs: {kind: the .config our config stage produced}; config_args,
    build_args ({kind: [...]}) and mkexec_args: the make variables our config, kbuild and mkexec stages pass (the
    toolchain's, with the prefix maps of the by-hand trees); make_targets: {kind: kbuild targets}; release: the
    system kernel's release.
    The pristine tree is unpacked once and copied per kernel tree, as our pipeline does. An upstream patch
    (`source:` entry) may exit 1: its CVS $Id$ hunks reject, which the mkdump README says to ignore.
    """
    pristine = os.path.join(work, "src")
    mkexec_src = os.path.join(work, "mkexec-src")
    steps = [Step("unpack+patch", ("mkdir", "-p", pristine, mkexec_src), work),
             Step("unpack+patch", ("tar", "xf", linux_archive, "-C", pristine, "--strip-components=1"), work),
             Step("unpack+patch", ("tar", "xf", mkexec_archive, "-C", mkexec_src, "--strip-components=1"), work)]
    for kind in ("minik", "system"):
        tree = os.path.join(work, kind)
        steps.append(Step("unpack+patch", ("cp", "-a", pristine, tree), work))
        for e in series[kind]:
            if e.kind == "source":
                path = os.path.join(mkexec_src, e.member) if e.member else source_files[e.source]
                ok = (0, 1)
            else:
                path = os.path.join(patches_dir, e.path)
                ok = (0,)
            steps.append(Step("unpack+patch", ("patch", f"-p{e.strip}", "--batch", "--forward", "-i", path), tree,
                              ok))
    for kind in ("minik", "system"):
        tree = os.path.join(work, kind)
        steps.append(Step("config", ("cp", our_configs[kind], os.path.join(tree, ".config")), tree))
        steps.append(Step("config", ("make", f"ARCH={arch}", "oldconfig", *config_args), tree))
    for kind in ("minik", "system"):
        tree = os.path.join(work, kind)
        steps.append(Step("build", ("make", f"-j{jobs}", *build_args[kind], "V=1", *make_targets[kind]), tree))
    mkexec = os.path.join(work, "mkexec")
    steps += [Step("mkexec", ("cp", "-a", mkexec_src, mkexec), work),
              Step("mkexec", ("ln", "-s", f"asm-{arch}", os.path.join(mkexec, "include", "asm")), work),
              Step("mkexec", ("make", f"ARCH={arch}", f"KVER={release}", f"KDIR={os.path.join(work, 'system')}",
                              f"KMODDIR=/lib/modules/{release}/extra", *mkexec_args), mkexec)]
    return steps


# ----------------------------------------------------------------------------------------------- our stages

_TIME_RE = re.compile(r"^Command execution time: (.+): ([0-9.]+) seconds$", re.M)

# Our stages grouped like the by-hand steps; the rest is what only the pipeline does.
PHASES = (("fetch", "fetch"), ("unpack-", "unpack+patch"), ("patch-", "unpack+patch"), ("toolchain", "toolchain"),
          ("config-", "config"), ("build-", "build"), ("mkexec", "mkexec"), ("check", "check+publish"),
          ("mkdump-load-", "check+publish"), ("manifest", "check+publish"))


def stage_times(scons_stdout):
    """{stage name: seconds} from `scons --debug=time` output; a stage is its target's file name without .json
    (fetch stamps become fetch-<source>). With stages running at once SCons names the check stage by any of its
    targets, which are the files it publishes in out/: all of them are "check"."""
    times = {}
    for target, seconds in _TIME_RE.findall(scons_stdout):
        name = os.path.basename(target)
        name = name[:-5] if name.endswith(".json") else name
        if os.path.basename(os.path.dirname(target)) == "fetch":
            name = "fetch-" + name
        elif os.path.basename(os.path.dirname(target)) in ("out", "checked") and name != "manifest" \
                and not name.startswith("mkdump-load-"):
            name = "check"
        times[name] = times.get(name, 0.0) + float(seconds)
    return times


def phase_of(stage):
    for prefix, phase in PHASES:
        if stage.startswith(prefix):
            return phase
    return "other"


def phase_times(stages):
    phases = {}
    for name, seconds in stages.items():
        phase = phase_of(name)
        phases[phase] = phases.get(phase, 0.0) + seconds
    return phases


# ----------------------------------------------------------------------------------------------- ccache

def parse_ccache_stats(text):
    """`ccache --print-stats` (name<TAB>value lines) as {name: int}; other lines are ignored."""
    stats = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep and value.strip().isdigit():
            stats[name.strip()] = int(value)
    return stats


def ccache_counts(stats):
    """(hits, misses) of compilations ccache could cache."""
    hits = stats.get("direct_cache_hit", 0) + stats.get("preprocessed_cache_hit", 0)
    return hits, stats.get("cache_miss", 0)


# ----------------------------------------------------------------------------------------------- edit one patch

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def add_line_to_first_hunk(patch_text, line):
    """patch_text with `line` added to its first hunk, right after the hunk's first added line and with that
    line's indentation, and the hunk header's new-side count one more: the patch then writes one more line into the
    file it changes. Returns (the new text, the path that hunk's file header names after its first directory).
    Raises ValueError when the patch has no hunk, or its first hunk adds no line."""
    lines = patch_text.splitlines(keepends=True)
    target = None
    for i, text in enumerate(lines):
        if text.startswith("+++ "):
            target = text[4:].split("\t")[0].strip()
        m = _HUNK_RE.match(text.rstrip("\n"))
        if m:
            break
    else:
        raise ValueError("the patch has no hunk")
    old_start, old_count, new_start, new_count, rest = m.groups()
    new_count = 1 if new_count is None else int(new_count)
    old = old_start if old_count is None else f"{old_start},{old_count}"
    header = f"@@ -{old} +{new_start},{new_count + 1} @@{rest}\n"
    # The hunk's lines by its counts (a removed "-- x" line looks like a file header).
    left_old, left_new = (1 if old_count is None else int(old_count)), new_count
    for j in range(i + 1, len(lines)):
        if left_old <= 0 and left_new <= 0:
            break
        body = lines[j]
        kind = body[:1] if body[:1] in ("+", "-", "\\") else " "
        left_old -= kind in (" ", "-")
        left_new -= kind in (" ", "+")
        if kind == "+":
            indent = re.match(r"[ \t]*", body[1:]).group(0)
            lines[i] = header
            lines.insert(j + 1, f"+{indent}{line}\n")
            path = target.split("/", 1)[1] if target and "/" in target else target
            return "".join(lines), path
    raise ValueError("the first hunk of the patch adds no line")


_COMPILE_RE = re.compile(r"\s-c\s+-o\s+(\S+?\.o)(?=[\s'\"]|$)", re.M)


def recompiled_objects(make_output):
    """The objects a make compiled, each once, sorted: from kbuild's progress lines (CC, AS) or, under V=1, from
    the compile commands (-c -o), which 2.6.9 echoes more than once and, with CONFIG_MODVERSIONS, points at
    .tmp_<name>.o. An external module's objects (absolute paths, in a temporary build directory) go by their
    base names."""
    names = set(compiled_objects(make_output))
    names |= {re.sub(r"(^|/)\.tmp_", r"\1", o) for o in _COMPILE_RE.findall(make_output)}
    return sorted(os.path.basename(o) if os.path.isabs(o) else o for o in names)


# ----------------------------------------------------------------------------------------------- disk use

def parse_du_bytes(text):
    """The size in bytes from `du -s -B1 DIR` output ("<bytes><TAB><dir>"); raises ValueError on anything else."""
    lines = text.strip().splitlines()
    if len(lines) != 1:
        raise ValueError(f"du printed {len(lines)} lines, expected one: {text!r}")
    size, sep, _ = lines[0].partition("\t")
    if not sep or not size.isdigit():
        raise ValueError(f"not du -s -B1 output: {lines[0]!r}")
    return int(size)


# --- full configurations (benchmarks/fieldconfigs) -----------------------------------------------------------

# kbuild's quiet lines for an object it compiles: C, assembler, built-in or module.
_COMPILED_RE = re.compile(r"^\s+(?:CC|AS)(?: \[M\])?\s+(\S+\.o)$", re.M)
_FAILED_RE = re.compile(r"\*\*\* \[(?:[^\]:]*:\d+: )?([^\]\s]+\.o)\] Error \d+")


def compiled_objects(make_output):
    """The objects a `make` (without V=1) compiled, in order; .mod.o glue included."""
    return _COMPILED_RE.findall(make_output)


def failed_objects(make_output):
    """The objects `make -k` reported as failed, each once, sorted."""
    return sorted(set(_FAILED_RE.findall(make_output)))


def format_config_table(rows):
    """rows: dicts with config, arch, compiled, failed, modules, cold_s, warm_s (None when not measured)."""
    head = ("configuration", "arch", "compiled", "failed", "modules", "cold", "warm ccache")
    lines = [head]
    for r in rows:
        lines.append((r["config"], r["arch"], str(r["compiled"]), str(r["failed"]), str(r["modules"]),
                      f"{r['cold_s'] / 60:.1f} min" if r.get("cold_s") is not None else "-",
                      f"{r['warm_s'] / 60:.1f} min" if r.get("warm_s") is not None else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
