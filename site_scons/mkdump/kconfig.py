"""The configure stage: fragments applied to a kernel tree, `make oldconfig`, then an audit that explains.

A configuration is built in four steps:

1. every fragment is parsed and checked against the tree's Kconfig (read with kconfiglib from a normalised shadow
   copy, see `load_kconfig`): syntax, unknown symbols, values of the wrong type, conflicts between fragments, and
   requests the rules forbid are all reported together, before make runs;
2. the start configuration is made (`make allnoconfig`, or the user's own .config for the system kernel), the
   requests are applied with kconfiglib and the result is written as `.config`;
3. the kernel's own `make oldconfig` normalises it, with stdin at EOF and a timeout, so it can neither prompt nor
   hang;
4. the audit compares every requested value and every rule with the final `.config`; any difference stops the
   build with the symbol, the requested and actual values, the fragment line, the Kconfig definition and the reason
   (unmet dependencies with their values, the symbols that select it, a hidden prompt).

Fragment conflicts: our own fragments must agree with each other (a difference is an error naming both lines).
A fragment marked `overrides=True` (the user's `minik_fragment=`) may change a value set by an earlier fragment;
each override is logged and listed in the summary. It can never override a rule: the rules are checked on the
request itself and again on the final `.config`, and are never silently re-imposed.
"""
import dataclasses
import hashlib
import os
import re
import tempfile
import time

import kconfiglib

from mkdump import kbuild, runner, tomlfile, userconfig
from mkdump.errors import ConfigError, Interrupted, MkdumpError
from mkdump.logs import log_default

KINDS = ("minik", "system")
OLDCONFIG_TIMEOUT = 600
# allnoconfig and oldconfig print a few kilobytes; 2.6.9's conf asking a question it cannot get an answer to prints
# it again forever (gigabytes within minutes), which must neither fill memory nor wait for the timeout.
MAX_MAKE_OUTPUT = 8 << 20

_ASSIGN_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_SOURCE_RE = re.compile(r'^\s*source\s+"?([^"\s]+)"?\s*$')
# 2.6.9 still has 21 `depends X` lines from before `depends on` became the only spelling (zconf accepted both).
_LEGACY_DEPENDS_RE = re.compile(r"^(\s*)depends(\s+)(?!on\b)(\S)")

TRISTATE_NAMES = {0: "n", 1: "m", 2: "y"}


@dataclasses.dataclass(frozen=True)
class Request:
    """One symbol value asked for by one fragment line."""
    symbol: str
    value: str
    origin: str          # "file:line", or a description for generated values


@dataclasses.dataclass(frozen=True)
class Fragment:
    """An ordered set of requests. `path` is the file it was read from (None for generated fragments)."""
    name: str
    requests: tuple
    path: str = None
    overrides: bool = False

    def describe(self):
        d = {"name": self.name, "overrides": self.overrides,
             "requests": {r.symbol: r.value for r in self.requests}}
        if self.path:
            with open(self.path, "rb") as f:
                d["sha256"] = hashlib.sha256(f.read()).hexdigest()
        return d


# ---------------------------------------------------------------------------------------------------- fragments

def parse_fragment(path, *, overrides=False):
    """Read a fragment file: `CONFIG_X=value` and `# CONFIG_X is not set` lines, comments, blank lines.

    Raises ConfigError naming file:line for anything else, and for a symbol set twice in the same file.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the config fragment {path}: {e.strerror}; check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the config fragment {path} is not UTF-8 text; save it as UTF-8") from None
    requests, problems, seen = [], [], {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        origin = f"{path}:{number}"
        m = _ASSIGN_RE.match(text) or _UNSET_RE.match(text)
        if m is None:
            # A comment is skipped, but a line that looks like a mistyped "is not set" line is not.
            if not text or (text.startswith("#") and not re.match(r"#\s*CONFIG_", text)):
                continue
            problems.append(f"{origin}: '{text}' is neither 'CONFIG_NAME=value' nor '# CONFIG_NAME is not set'")
            continue
        symbol = m.group(1)
        value = m.group(2).strip() if m.re is _ASSIGN_RE else "n"
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                problems.append(f"{origin}: CONFIG_{symbol} has an unterminated string value {value}")
                continue
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if symbol in seen and seen[symbol].value != value:
            problems.append(f"{origin}: CONFIG_{symbol}={value} contradicts CONFIG_{symbol}={seen[symbol].value} "
                            f"at {seen[symbol].origin} in the same fragment")
            continue
        req = Request(symbol, value, origin)
        seen[symbol] = req
        requests.append(req)
    if problems:
        raise ConfigError(f"the config fragment {path} has {len(problems)} bad line(s); fix them:\n  "
                          + "\n  ".join(problems))
    return Fragment(path, tuple(requests), path=path, overrides=overrides)


def _as_fragment(item):
    if isinstance(item, Fragment):
        return item
    return parse_fragment(item)


# ---------------------------------------------------------------------------------------- configs/ data files

def _read_toml(path):
    return tomlfile.load(path, "the configuration data", error=ConfigError,
                         fix="restore it from the repository's configs/ directory")


def _line_of(path, section_header, needle):
    """The line number of the first line holding `needle` after `section_header` (for file:line origins)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped == section_header
        elif inside and needle in line:
            return number
    return 0


def dump_driver_families(configs_dir):
    """The dump driver families of configs/dump-drivers.toml, in file order, the default family first.

    Returns {family: {"description": str, "symbols": [..], "default": bool}}. Each symbol must end up =y in the
    mini kernel (the dump is written by a driver that is built in, never a module).
    """
    path = os.path.join(os.fspath(configs_dir), "dump-drivers.toml")
    data = _read_toml(path)
    families = data.get("family", {})
    default = data.get("default")
    if default not in families:
        raise ConfigError(f"{path}: 'default = {default!r}' does not name a [family.*] table; fix the file")
    out = {}
    for name in [default] + [n for n in families if n != default]:
        fam = families[name]
        symbols = fam.get("symbols")
        if not isinstance(symbols, list) or not symbols or not isinstance(fam.get("description"), str):
            raise ConfigError(f"{path}: [family.{name}] needs a description and a non-empty symbols list")
        out[name] = {"description": fam["description"], "symbols": list(symbols), "default": name == default}
    return out


def _dump_driver_fragment(configs_dir, family):
    path = os.path.join(os.fspath(configs_dir), "dump-drivers.toml")
    families = dump_driver_families(configs_dir)
    if family not in families:
        raise ConfigError(f"dump_driver={family} is not a known dump driver family; choose one of "
                          f"{', '.join(families)} (see scons -h)")
    header = f"[family.{family}]"
    name = f"dump_driver={family}"
    requests = []
    for sym in families[family]["symbols"]:
        line = _line_of(path, header, '"' + sym + '"')
        requests.append(Request(sym, "y", f"{path}:{line} ({name})"))
    return Fragment(name, tuple(requests))


def _rules(configs_dir, kind):
    path = os.path.join(os.fspath(configs_dir), "rules.toml")
    rules = []
    for i, rule in enumerate(_read_toml(path).get(kind, {}).get("rule", [])):
        if not {"symbol", "value", "why"} <= set(rule):
            raise ConfigError(f"{path}: rule {i + 1} of [{kind}] needs symbol, value and why; fix the file")
        line = _line_of(path, f"[[{kind}.rule]]", f'symbol = "{rule["symbol"]}"')
        rules.append(Rule(rule["symbol"], rule["value"], rule["why"], f"{path}:{line}"))
    return rules


@dataclasses.dataclass(frozen=True)
class Rule:
    symbol: str
    value: str
    why: str
    origin: str


def fragments_for(configs_dir, *, arch, kind, dump_driver=None, pae=None, user_fragment=None):
    """The ordered fragment list for one kernel: our files under configs/, generated ones, then the user's.

    minik: minik-common.config, minik-<arch>.config, the dump driver family (default family when None), the PAE
    choice (i386 only: pae True/False, None means True, the minik patch's default), then user_fragment
    (overrides=True).
    system: system-<arch>.config, then user_fragment. Paths are returned for files, Fragment objects for the rest.
    """
    configs_dir = os.fspath(configs_dir)
    if kind not in KINDS:
        raise ConfigError(f"kernel kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if kind == "minik":
        out = [os.path.join(configs_dir, "minik-common.config"), os.path.join(configs_dir, f"minik-{arch}.config")]
        if dump_driver is None:
            dump_driver = next(iter(dump_driver_families(configs_dir)))
        out.append(_dump_driver_fragment(configs_dir, dump_driver))
        if pae is not None and arch != "i386":
            raise ConfigError(f"pae= applies to i386 only (the README's Pentium M note), not to arch={arch}; "
                              "drop the pae option")
        if arch == "i386":
            # The minik patch's default is PAE on; asking for it explicitly makes it part of the audit.
            pae = True if pae is None else pae
            value = "y" if pae else "n"
            name = f"pae={'yes' if pae else 'no'}"
            out.append(Fragment(name, (Request("X86_PAE", value, f"option {name}"),)))
    else:
        if dump_driver is not None or pae is not None:
            raise ConfigError("dump_driver= and pae= apply to the mini kernel only; drop them for the system kernel")
        out = [os.path.join(configs_dir, f"system-{arch}.config")]
    for p in out:
        if isinstance(p, str) and not os.path.isfile(p):
            raise ConfigError(f"{p} is missing: arch={arch} has no {kind} configuration in configs/; "
                              "choose a supported arch")
    if user_fragment is not None:
        out.append(parse_fragment(user_fragment, overrides=True))
    return out


# ------------------------------------------------------------------------------------------- Kconfig loading

def _shadow_copy(tree, arch, dest):
    """Copy the Kconfig files reachable from arch/<arch>/Kconfig into dest, normalised for kconfiglib.

    Files are latin-1 (2.6.9 has a few non-ASCII names in help texts); legacy `depends X` is rewritten as
    `depends on X`; `source` statements name the shadow copy by absolute path, so kconfiglib needs no $srctree
    (an environment variable would be shared by concurrent SCons jobs and inherited by their processes). Line
    numbers are kept, so file:line in messages is the tree's own.
    """
    top = f"arch/{arch}/Kconfig"
    todo, done = [top], set()
    while todo:
        rel = todo.pop()
        if rel in done:
            continue
        done.add(rel)
        src = os.path.join(tree, rel)
        try:
            with open(src, encoding="latin-1") as f:
                lines = f.read().split("\n")
        except OSError as e:
            raise ConfigError(f"cannot read {src} ({e.strerror}): the kernel tree is incomplete or arch={arch} "
                              "is not in it; unpack the tree again") from None
        for i, line in enumerate(lines):
            m = _SOURCE_RE.match(line)
            # Help texts may hold a line that reads like a source statement; a file that is truly missing is
            # reported by kconfiglib when it reads the shadow copy.
            if m and os.path.isfile(os.path.join(tree, m.group(1))):
                todo.append(m.group(1))
                line = f'source "{os.path.join(dest, m.group(1))}"'
            lines[i] = _LEGACY_DEPENDS_RE.sub(r"\1depends\2on \3", line)
        out = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    return sorted(done)


def load_kconfig(tree, arch):
    """kconfiglib's view of tree's Kconfig for arch (from a shadow copy), with warnings kept, not printed.

    Every node's filename is relative to the tree (e.g. drivers/ide/Kconfig), as in the kernel's own messages.
    """
    tree = os.fspath(tree)
    with tempfile.TemporaryDirectory(prefix="mkdump-kconfig-") as shadow:
        shadow = os.path.realpath(shadow)
        _shadow_copy(tree, arch, shadow)
        try:
            kconf = kconfiglib.Kconfig(os.path.join(shadow, "arch", arch, "Kconfig"), warn_to_stderr=False,
                                       suppress_traceback=False)
        except kconfiglib.KconfigError as e:
            raise ConfigError(f"the Kconfig files of {tree} cannot be read for arch={arch}: "
                              f"{str(e).replace(shadow + os.sep, '')}") from None
    # kconfiglib shortens paths under $srctree (or the working directory when it is unset); undo either way.
    base = os.path.realpath(kconf.srctree)
    for node in kconf.node_iter():
        full = node.filename if os.path.isabs(node.filename) else os.path.join(base, node.filename)
        node.filename = os.path.relpath(full, shadow)
    return kconf


# ------------------------------------------------------------------------------------------------ explanations

def _val(sym):
    """A symbol's current value as text ('n'/'m'/'y' or the string)."""
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return TRISTATE_NAMES[sym.tri_value]
    return sym.str_value


def _defined_at(sym):
    return ", ".join(f"{n.filename}:{n.linenr}" for n in sym.nodes) or "(no definition)"


def _expr_values(expr):
    """'A (=y), B (=n)' for the symbols of an expression."""
    items = []
    for s in kconfiglib.expr_items(expr):
        if isinstance(s, kconfiglib.Symbol) and not s.is_constant:
            items.append(f"{s.name} (={_val(s)})")
    return ", ".join(dict.fromkeys(items))


def _unmet(expr, need):
    """The top-level `&&` operands of expr whose value is below need, as 'expr (=v)' strings."""
    out = []
    for op in kconfiglib.split_expr(expr, kconfiglib.AND):
        v = kconfiglib.expr_value(op)
        if v < need:
            text = kconfiglib.expr_str(op)
            if isinstance(op, kconfiglib.Symbol):
                out.append(f"{text} (={TRISTATE_NAMES[v]})")
            else:
                out.append(f"{text} [{_expr_values(op)}]")
    return out


def _hidden_prompt(sym, need):
    """Why sym's prompt is not visible at level need: the unmet conditions of its `if` clauses, or ''."""
    hidden = []
    for n in sym.nodes:
        if n.prompt:
            hidden += _unmet(n.prompt[1], need)
    return "its prompt is hidden" + (" (needs " + ", ".join(hidden) + ")" if hidden else "")


def explain(kconf, sym, wanted):
    """Why sym does not have the value `wanted` in kconf's current configuration (one or more clauses)."""
    reasons = []
    tri = sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE) and wanted in ("n", "m", "y")
    want = {"n": 0, "m": 1, "y": 2}[wanted] if tri else 2
    have = sym.tri_value if tri else 0
    prompted = any(n.prompt for n in sym.nodes)
    if want > have or not tri:
        # Raising a value (or setting a string/int) needs the dependencies and a visible prompt.
        unmet = _unmet(sym.direct_dep, want)
        if unmet:
            reasons.append("unmet dependencies: " + ", ".join(unmet)
                           + f" (depends on {kconfiglib.expr_str(sym.direct_dep)})")
        elif not prompted:
            reasons.append("it has no prompt, so only its defaults and selects set it")
        elif sym.visibility < want:
            reasons.append(_hidden_prompt(sym, want))
        if sym.choice is not None and sym.choice.selection not in (None, sym):
            reasons.append(f"it is in a choice where {sym.choice.selection.name} is selected")
        if tri and want == 1 and sym.orig_type == kconfiglib.BOOL:
            reasons.append("it is a bool: m is not possible")
        if not tri and not reasons and sym.ranges:
            reasons.append("allowed range: " + ", ".join(
                f"{kconfiglib.expr_str(lo)}..{kconfiglib.expr_str(hi)}" for lo, hi, _ in sym.ranges))
    else:
        # Lowering a value: something holds it up.
        if want == 1 and kconf.modules.tri_value == 0:
            reasons.append(f"m needs {kconf.modules.name}=y ({kconf.modules.name}=n here), so m becomes y")
        selected_by = [op for op in kconfiglib.split_expr(sym.rev_dep, kconfiglib.OR)
                     if kconfiglib.expr_value(op) > want]
        if selected_by:
            reasons.append("selected by " + ", ".join(
                f"{kconfiglib.expr_str(op)} [{_expr_values(op)}]" for op in selected_by))
        elif sym.choice is not None and sym.choice.selection is sym:
            reasons.append("it is the selected member of its choice; select another member instead")
        elif sym.visibility < have:
            text = _hidden_prompt(sym, have) if prompted else "it has no prompt"
            defaults = [f"default {kconfiglib.expr_str(d)} at {_default_origin(sym, d)}"
                        for d, cond in sym.defaults if kconfiglib.expr_value(cond)]
            reasons.append(text + ", so its default applies" + (f" ({defaults[0]})" if defaults else ""))
    if not reasons:
        reasons.append("Kconfig gives no direct reason; check the symbols it depends on "
                       f"({kconfiglib.expr_str(sym.direct_dep)})")
    return "; ".join(reasons)


def _default_origin(sym, default_expr):
    for n in sym.nodes:
        for d, _ in n.defaults:
            if d is default_expr:
                return f"{n.filename}:{n.linenr}"
    return _defined_at(sym)


# ------------------------------------------------------------------------------------------------ filesystems

_FS_MAKEFILE_RE = re.compile(r"^obj-\$\(CONFIG_([A-Z0-9_]+)\)\s*\+=\s*([\w.-]+)/")
PSEUDO_FS_MENU = "Pseudo filesystems"
NOT_FS_MENUS = ("Native Language Support", "Partition Types")


def _in_menu(node, titles):
    node = node.parent
    while node is not None:
        if node.item == kconfiglib.MENU and node.prompt and node.prompt[0] in titles:
            return True
        node = node.parent
    return False


def filesystem_symbols(kconf, tree):
    """The symbols the 'no filesystem' rule of the mini kernel covers, for this tree and arch.

    A filesystem symbol gates the build of a filesystem's own directory (`obj-$(CONFIG_X) += dir/` in fs/Makefile),
    is defined on this arch with a prompt (so a user could switch it on), and is not in the Kconfig menu
    "Pseudo filesystems" (PROC_FS, SYSFS, TMPFS, RAMFS, ...: allowed) nor in "Native Language Support" or
    "Partition Types" (not filesystems). Options without a prompt (JBD, FAT_FS) follow the filesystems that
    need them, so their filesystem is what gets reported.
    """
    path = os.path.join(os.fspath(tree), "fs", "Makefile")
    try:
        with open(path, encoding="latin-1") as f:
            gated = [m.group(1) for m in map(_FS_MAKEFILE_RE.match, f.read().splitlines()) if m]
    except OSError as e:
        raise ConfigError(f"cannot read {path} ({e.strerror}): the kernel tree is incomplete; unpack it again") \
            from None
    out = []
    for name in dict.fromkeys(gated):
        sym = kconf.syms.get(name)
        if sym is None or not sym.nodes:
            continue
        prompted = [n for n in sym.nodes if n.prompt]
        if not prompted or any(_in_menu(n, (PSEUDO_FS_MENU,) + NOT_FS_MENUS) for n in sym.nodes):
            continue
        out.append(name)
    return out


# ------------------------------------------------------------------------------------------------ .config I/O

def read_config_values(path):
    """{symbol: value} of a .config file (strings unquoted; '# CONFIG_X is not set' is 'n')."""
    values = {}
    with open(path, encoding="latin-1") as f:
        for line in f.read().splitlines():
            m = _ASSIGN_RE.match(line)
            if m:
                v = m.group(2)
                if v.startswith('"') and v.endswith('"') and len(v) >= 2:
                    v = re.sub(r"\\(.)", r"\1", v[1:-1])
                values[m.group(1)] = v
            else:
                m = _UNSET_RE.match(line)
                if m:
                    values[m.group(1)] = "n"
    return values


def config_values_sha256(path):
    """SHA-256 of a .config's value lines (CONFIG_X=.. and # CONFIG_X is not set, in file order).

    2.6.9's conf writes the date into the header comment, so the file's own hash differs on every run; this one is
    the reproducible identity of the configuration.
    """
    with open(path, encoding="latin-1") as f:
        lines = [line for line in f.read().splitlines() if _ASSIGN_RE.match(line) or _UNSET_RE.match(line)]
    return hashlib.sha256("\n".join(lines).encode("latin-1")).hexdigest()


def _final_value(values, sym):
    v = values.get(sym.name)
    if v is None and sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return "n"
    return v


def _same(sym, requested, actual):
    if actual is None:
        return False
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        try:
            return int(requested, 0 if sym.orig_type == kconfiglib.INT else 16) == \
                int(actual, 0 if sym.orig_type == kconfiglib.INT else 16)
        except ValueError:
            return False
    return requested == actual


def _valid_for_type(sym, value):
    t = sym.orig_type
    if t == kconfiglib.BOOL:
        return value in ("n", "y")
    if t == kconfiglib.TRISTATE:
        return value in ("n", "m", "y")
    if t == kconfiglib.INT:
        return re.fullmatch(r"-?\d+", value) is not None
    if t == kconfiglib.HEX:
        return re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", value) is not None
    return t == kconfiglib.STRING


# ------------------------------------------------------------------------------------------------ make

def run_make(argv, cwd, *, timeout=OLDCONFIG_TIMEOUT, max_output=MAX_MAKE_OUTPUT):
    """Run make with stdin at EOF (conf then takes defaults instead of prompting); return its output's last lines.

    make and everything it started (conf) are stopped, as a process group, when it runs longer than `timeout`
    seconds, prints more than `max_output` bytes or scons is interrupted.
    """
    try:
        # kbuild's environment: an outer make's MAKEFLAGS (-n, -k, jobserver) would change what this make does.
        result = runner.run(argv, cwd=cwd, env=kbuild.build_env(), timeout=timeout, max_output=max_output)
    except MkdumpError as e:
        raise ConfigError(str(e)) from None
    command = " ".join(argv)
    out = "".join(result.lines)
    if result.stopped == "interrupt":
        raise Interrupted(f"'{command}' in {cwd} was interrupted (make was stopped by {result.interrupted_by}); "
                          "run again.")
    if result.stopped == "timeout":
        raise ConfigError(f"'{command}' in {cwd} did not finish within {timeout} s (waiting for input?); "
                          "check the kernel tree's scripts/kconfig")
    last = "\n    ".join(out.strip().splitlines()[-15:])
    if result.stopped == "output":
        raise ConfigError(f"'{command}' in {cwd} printed more than {max_output >> 20} MB and was stopped (2.6.9's "
                          "conf repeats a question forever when the .config leaves it open and stdin is empty); "
                          f"check the .config against the tree's Kconfig; its last lines:\n    {last}")
    if result.returncode != 0:
        raise ConfigError(f"'{command}' failed in {cwd} (exit {result.returncode}); its last lines:\n    {last}")
    return out


# ------------------------------------------------------------------------------------------------ configure

def _kind_label(kind, arch):
    return f"the {'mini kernel' if kind == 'minik' else 'system kernel'} configuration for {arch}"


def _fail(kind, arch, problems, what, note=None):
    head = (f"{_kind_label(kind, arch)} {what}: {len(problems)} problem{'s' if len(problems) != 1 else ''}, "
            "listed below; change the fragment lines or options named there")
    raise ConfigError("\n".join([head] + problems + ([note] if note else [])))


def _merge(fragments, kconf, log):
    """Validate every request and merge them in order: {symbol: Request}, overrides list, problems list."""
    merged, overrides, problems = {}, [], []
    for frag in fragments:
        for req in frag.requests:
            sym = kconf.syms.get(req.symbol)
            if sym is None or not sym.nodes:
                problems.append(f"  CONFIG_{req.symbol}: unknown symbol, requested at {req.origin}; "
                                "no Kconfig file of this tree and arch defines it (misspelt, or from another "
                                "kernel version?)")
                continue
            if not _valid_for_type(sym, req.value):
                problems.append(f"  CONFIG_{req.symbol}: value {req.value!r} requested at {req.origin} is not a "
                                f"valid {kconfiglib.TYPE_TO_STR[sym.orig_type]} (defined at {_defined_at(sym)})")
                continue
            prev = merged.get(req.symbol)
            if prev is not None and not _same(sym, prev.value, req.value):
                if frag.overrides:
                    overrides.append({"symbol": req.symbol, "from": prev.value, "from_origin": prev.origin,
                                      "to": req.value, "origin": req.origin})
                    log(f"config: CONFIG_{req.symbol}={req.value} at {req.origin} overrides "
                        f"{prev.value} from {prev.origin}")
                else:
                    problems.append(f"  CONFIG_{req.symbol}: {req.origin} asks for {req.value} but {prev.origin} "
                                    f"asks for {prev.value}; our fragments must agree (only the user fragment may "
                                    "override), remove one of the two lines")
                    continue
            merged[req.symbol] = req
    return merged, overrides, problems


def _rule_problem(rule, actual, kconf):
    sym = kconf.syms[rule.symbol]
    return (f"  CONFIG_{rule.symbol}: actual {actual}, but must be {rule.value}: {rule.why} (rule at {rule.origin})"
            f"\n      defined at {_defined_at(sym)}; " + explain(kconf, sym, rule.value))


def _load_base_config(kconf, path, arch, rules_path, rules, log):
    """Load the user's own .config into kconf; return what of it this tree does not take, and what changes.

    The file must be a 2.6.9 configuration for `arch` (userconfig.check_header) with what the system kernel's
    `rules` ask (one sentence naming the option otherwise). A distribution's file names symbols vanilla 2.6.9 does
    not define (RHEL4: DISKDUMP, NETDUMP, TUX, ...) and values a symbol cannot take here: those lines are left out,
    as oldconfig would drop them, but listed with their line numbers; values Kconfig lowers or raises
    (dependencies, selects) are listed with the reason.
    """
    header = userconfig.read_header(path, rules_path)
    userconfig.check_header(path, header, arch)
    first_warning = len(kconf.warnings)
    try:
        kconf.load_config(path)
    except OSError as e:
        raise ConfigError(f"cannot read the system_config file {path}: {e.strerror}; check the path") from None
    except kconfiglib.KconfigError as e:
        # kconfiglib's only complaint here is undecodable text, with the file's bytes around it.
        reason = str(e).strip().splitlines()[0]
        raise ConfigError(f"the system_config file {path} is not a .config ({reason}); pass the .config of "
                          "a Linux 2.6.9 kernel") from None
    line_of, assignments = {}, {}       # symbol -> line number (set or "is not set"); line number -> its text
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f.read().splitlines(), 1):
            m = _ASSIGN_RE.match(line)
            if m:
                assignments[n] = line
            m = m or _UNSET_RE.match(line)
            if m:
                line_of.setdefault(m.group(1), n)
    unknown = [name for name, value in kconf.missing_syms if value != "n"]
    userconfig.check_unknown_share(path, header, len(unknown), len(assignments))
    for rule in rules:
        sym = kconf.syms[rule.symbol]
        if not _same(sym, rule.value, _val(sym)):
            line = line_of.get(rule.symbol)
            raise ConfigError(f"the system_config file {path} has CONFIG_{rule.symbol}={_val(sym)}"
                              f"{f' (line {line})' if line else ''}, but it must be {rule.value}: {rule.why}; "
                              f"set CONFIG_{rule.symbol}={rule.value} in it")
    left_out = [{"line": line_of[name], "setting": assignments[line_of[name]],
                 "why": f"no Kconfig file of Linux 2.6.9 defines it for {arch}"} for name in unknown]
    # Warnings about a line carry "path:line: "; those from set_value (a bad int or hex) carry no place.
    for w in kconf.warnings[first_warning:]:
        m = re.match(re.escape(path) + r":(\d+): (?:warning: )?(.*)$", w, re.S)
        line = int(m.group(1)) if m else None
        left_out.append({"line": line, "setting": assignments.get(line, ""),
                         "why": (m.group(2) if m else w.replace("warning: ", "", 1)).strip()})
    left_out.sort(key=lambda e: e["line"] or 0)
    changed = []
    for sym in kconf.unique_defined_syms:
        if sym.user_value is None:
            continue
        wanted = TRISTATE_NAMES[sym.user_value] if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE) \
            else sym.user_value
        if not _same(sym, wanted, _val(sym)):
            changed.append({"symbol": sym.name, "line": line_of.get(sym.name), "from": wanted,
                            "to": _val(sym), "why": explain(kconf, sym, wanted)})
    changed.sort(key=lambda c: c["line"] or 0)
    if left_out:
        log(f"config: system {arch}: {len(left_out)} line(s) of {path} left out, that Linux 2.6.9 cannot take "
            f"(e.g. {', '.join(e['setting'].split('=')[0] for e in left_out[:4])})")
    if changed:
        examples = ", ".join(f"{c['symbol']} {c['from']} -> {c['to']}" for c in changed[:4])
        log(f"config: system {arch}: {len(changed)} value(s) of {path} do not hold in this tree (Kconfig "
            f"dependencies or selects), e.g. {examples}")
    return {"path": path, "release": header.release, "left_out": left_out, "changed": changed}


def user_config_report(summary):
    """The text of reports/config-system.txt: every line left out and every value changed, with the reason."""
    user = summary.get("user_config")
    if not user:
        return None
    out = [f"system_config={user['path']} (made for Linux {user['release'] or 'unknown'})", ""]
    out.append(f"{len(user['left_out'])} line(s) left out, which Linux 2.6.9 cannot take:")
    out += [f"  line {e['line'] if e['line'] is not None else '?'}: {e['setting']}: {e['why']}"
            for e in user["left_out"]]
    out += ["", f"{len(user['changed'])} value(s) Kconfig changes in this tree:"]
    out += [f"  line {c['line'] if c['line'] is not None else '?'}: CONFIG_{c['symbol']} {c['from']} -> {c['to']}: "
            f"{c['why']}" for c in user["changed"]]
    return "\n".join(out) + "\n"


def configure(tree, *, arch, kind, fragments, make_args=(), log=None, base_config=None, options=None,
              configs_dir=None, make=run_make):
    """Write tree/.config for `kind` ("minik" or "system") on `arch` and audit it; return a JSON-able summary.

    fragments: the list from fragments_for (paths or Fragment objects), applied in order. make_args are appended
    to every make command (toolchain settings such as CC=..., HOSTCC=...). base_config (system kernel only): the
    user's own .config to start from instead of allnoconfig. options: the user's options, recorded in the summary.
    configs_dir: where rules.toml is (default: the repository's configs/). make: the runner (argv, cwd) -> output,
    replaceable in tests. Raises ConfigError with every problem explained.
    """
    log = log or log_default
    tree = os.fspath(tree)
    if kind not in KINDS:
        raise ConfigError(f"kernel kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if base_config is not None and kind != "system":
        raise ConfigError("a base .config (system_config=) applies to the system kernel only")
    if configs_dir is None:
        configs_dir = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    started = time.monotonic()
    frags = [_as_fragment(f) for f in fragments]
    rules = _rules(configs_dir, kind)

    kconf = load_kconfig(tree, arch)
    for rule in rules:
        sym = kconf.syms.get(rule.symbol)
        if sym is None or not sym.nodes:
            if rule.symbol == "DUMP_MINI_KERNEL":
                raise ConfigError(f"CONFIG_DUMP_MINI_KERNEL is not defined by any Kconfig file of {tree} "
                                  f"(arch={arch}): the minik patch did not apply or is not the expected one; "
                                  "check the patch stage and the minik patch file")
            raise ConfigError(f"CONFIG_{rule.symbol}, named by the rule at {rule.origin}, is not defined for "
                              f"arch={arch} in {tree}; this tree is not the expected Linux 2.6.9")

    merged, overrides, problems = _merge(frags, kconf, log)
    # A request the rules forbid fails now, before make runs, with the rule's reason.
    driver_family = next((f for f in frags if f.name.startswith("dump_driver=")), None)
    driver_symbols = {r.symbol for r in driver_family.requests} if driver_family else set()
    for rule in rules:
        req = merged.get(rule.symbol)
        if req is not None and not _same(kconf.syms[rule.symbol], rule.value, req.value):
            problems.append(f"  CONFIG_{rule.symbol}: requested {req.value} at {req.origin}, but must be "
                            f"{rule.value}: {rule.why} (rule at {rule.origin})"
                            f"\n      defined at {_defined_at(kconf.syms[rule.symbol])}")
    fs_symbols = filesystem_symbols(kconf, tree) if kind == "minik" else []
    for name in fs_symbols:
        req = merged.get(name)
        if req is not None and req.value != "n":
            problems.append(f"  CONFIG_{name}: requested {req.value} at {req.origin}, but the mini kernel must "
                            "have no filesystem (README step 2: 'no filesystem need'; pseudo filesystems such as "
                            "PROC_FS, SYSFS, TMPFS, RAMFS are allowed)"
                            f"\n      defined at {_defined_at(kconf.syms[name])}")
    for name in sorted(driver_symbols):
        req = merged.get(name)
        if req is not None and req.value != "y":
            problems.append(f"  CONFIG_{name}: requested {req.value} at {req.origin}, but the dump driver "
                            f"({driver_family.name}) must be built in (=y), never a module or off: the mini "
                            "kernel has no module loader and must reach the dump disk by itself"
                            f"\n      defined at {_defined_at(kconf.syms[name])}")
    if problems:
        _fail(kind, arch, problems, "cannot be made as asked")

    config = os.path.join(tree, ".config")
    arch_arg = f"ARCH={arch}"
    user_config = None
    if base_config is not None:
        log(f"config: {kind} {arch}: starting from {base_config}")
        user_config = _load_base_config(kconf, os.fspath(base_config), arch,
                                        os.path.join(configs_dir, "rules.toml"), rules, log)
    else:
        log(f"config: {kind} {arch}: make {arch_arg} allnoconfig")
        make(["make", arch_arg, "allnoconfig", *make_args], tree)
        kconf.load_config(config)
    for req in merged.values():
        kconf.syms[req.symbol].set_value(req.value)
    written = config + ".mkdump-tmp"
    kconf.write_config(written, save_old=False)
    os.replace(written, config)
    before = read_config_values(config)

    log(f"config: {kind} {arch}: make {arch_arg} oldconfig")
    make(["make", arch_arg, "oldconfig", *make_args], tree)
    after = read_config_values(config)
    kconf.load_config(config)

    problems = {}
    for req in merged.values():
        sym = kconf.syms[req.symbol]
        actual = _final_value(after, sym)
        if not _same(sym, req.value, actual):
            problems[req.symbol] = (f"  CONFIG_{req.symbol}: requested {req.value} at {req.origin}, actual "
                                    f"{actual if actual is not None else '(unset)'}\n      defined at "
                                    f"{_defined_at(sym)}; " + explain(kconf, sym, req.value))
    for rule in rules:
        sym = kconf.syms[rule.symbol]
        actual = _final_value(after, sym)
        if not _same(sym, rule.value, actual) and rule.symbol not in problems:
            problems[rule.symbol] = _rule_problem(rule, actual, kconf)
    for name in fs_symbols:
        sym = kconf.syms[name]
        actual = _final_value(after, sym)
        if actual != "n" and name not in problems:
            problems[name] = (f"  CONFIG_{name}: actual {actual}, but the mini kernel must have no filesystem "
                              f"(README step 2)\n      defined at {_defined_at(sym)}; " + explain(kconf, sym, "n"))
    if problems:
        # An unaudited .config must not be built by a later `make` in this tree; keep it for inspection.
        os.replace(config, config + ".rejected")
        _fail(kind, arch, list(problems.values()), "does not hold after make oldconfig",
              note=f"  (the rejected configuration is kept as {config}.rejected)")

    audited = sorted(set(merged) | {r.symbol for r in rules} | set(fs_symbols))
    # conf writes "is not set" lines for invisible symbols that kconfiglib leaves out: both mean n.
    changed = {}
    for name in sorted(set(before) | set(after)):
        sym = kconf.syms.get(name)
        old, new = (before.get(name), after.get(name)) if sym is None else \
            (_final_value(before, sym), _final_value(after, sym))
        if old != new:
            changed[name] = {"written": old, "final": new}
    if changed:
        log(f"config: make oldconfig changed {len(changed)} value(s): {', '.join(changed)}")
    seconds = round(time.monotonic() - started, 2)
    log(f"config: {kind} {arch}: audited {len(audited)} symbols, all as requested ({seconds} s)")
    return {
        "kind": kind,
        "arch": arch,
        "options": dict(options or {}),
        "base_config": os.fspath(base_config) if base_config is not None else None,
        "user_config": user_config,
        "fragments": [f.describe() for f in frags],
        "requested": {k: {"value": r.value, "origin": r.origin} for k, r in sorted(merged.items())},
        "overrides": overrides,
        "rules": [dataclasses.asdict(r) for r in rules],
        "filesystem_symbols": fs_symbols,
        "audited": {k: _final_value(after, kconf.syms[k]) for k in audited},
        "oldconfig_changed": changed,
        # Not the file's own hash: 2.6.9's conf dates the header, and stamps and the manifest must be reproducible.
        "values_sha256": config_values_sha256(config),
    }
