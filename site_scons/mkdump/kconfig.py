"""The configure stage: fragments applied to a kernel tree, `make oldconfig`, then an audit that explains.

A configuration is built in four steps, by `configure` calling `plan`, `apply` and `audit`:

1. `plan`: every fragment is parsed and checked against the tree's Kconfig (read with kconfiglib from a normalised
   shadow copy, see `load_kconfig`): syntax, unknown symbols, values of the wrong type, conflicts between
   fragments, and requests the rules forbid are all reported together, before make runs;
2. `apply`: the start configuration is made (`make allnoconfig`, or the user's own .config for the system kernel),
   the requests are applied with kconfiglib and the result is written as `.config`;
3. `apply`: the kernel's own `make oldconfig` normalises it, with stdin at EOF and a timeout, so it can neither
   prompt nor hang;
4. `audit`: every requested value and every rule is compared with the final `.config`; any difference stops the
   build with the symbol, the requested and actual values, the fragment line, the Kconfig definition and the reason
   (unmet dependencies with their values, the symbols that select it, a hidden prompt).

The rules are configs/rules.toml's: one symbol each, or a set only the tree and the options name (`covers`: the
mini kernel's filesystems, the dump driver family). `rule_checks` turns them into the symbols of this tree, and
`check_rules` checks them, on the requests in step 1 and on the final values in step 4.

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

from mkdump import arch as arches
from mkdump import kbuild, options, runner, tomlfile, userconfig
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
    covered_by: str = None      # the `covers` of the rules.toml rule that holds all its symbols (the dump driver)

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


# What dump-drivers.toml may say of a family beyond description and symbols (see the file's head), with its type.
_FAMILY_LISTS = {"major": int, "sources": str, "pci_ids": str, "storage_classes": str, "qemu": str, "aliases": str}


def dump_driver_families(configs_dir):
    """The dump driver families of configs/dump-drivers.toml, in file order, the default family first.

    Returns {family: {"description": str, "symbols": [..], "default": bool, "dev": str or None, and the lists of
    _FAMILY_LISTS ([] when absent)}}. Each symbol must end up =y in the mini kernel (the dump is written by a
    driver that is built in, never a module).
    """
    path = os.path.join(os.fspath(configs_dir), "dump-drivers.toml")
    data = _read_toml(path)
    families = data.get("family", {})
    default = data.get("default")
    if default not in families:
        raise ConfigError(f"{path}: 'default = {default!r}' does not name a [family.*] table; fix the file")
    out, names = {}, set(families)
    for name in [default] + [n for n in families if n != default]:
        fam = families[name]
        symbols = fam.get("symbols")
        if not isinstance(symbols, list) or not symbols or not isinstance(fam.get("description"), str):
            raise ConfigError(f"{path}: [family.{name}] needs a description and a non-empty symbols list")
        entry = {"description": fam["description"], "symbols": list(symbols), "default": name == default,
                 "dev": fam.get("dev")}
        for key, kind in _FAMILY_LISTS.items():
            value = fam.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool)
                                                      for v in value):
                raise ConfigError(f"{path}: [family.{name}] {key} must be a list of "
                                  f"{'numbers' if kind is int else 'strings'}; fix the file")
            entry[key] = list(value)
        for alias in entry["aliases"]:
            if alias in names:
                raise ConfigError(f"{path}: alias {alias!r} of [family.{name}] names another family too; fix the file")
            names.add(alias)
        out[name] = entry
    return out


def disk_symbols_for_major(major, families):
    """The symbols that every family whose disks get block `major` builds in (the disk driver that names such a
    device: IDE disk, SCSI disk, cciss...), sorted; None when no family's disks get that major."""
    common = [set(f["symbols"]) for f in families.values() if major in f["major"]]
    return sorted(set.intersection(*common)) if common else None


def dump_dev_problem(dump_dev, major, config_values, families):
    """One sentence when a mini kernel configured as `config_values` has no driver for a disk of block `major`
    (the dump would find no device at crash time), else None."""
    needed = disk_symbols_for_major(major, families)
    if needed is None:
        majors = sorted({m for f in families.values() for m in f["major"]})
        return (f"dump_dev={dump_dev} has block major {major}, which no dump driver family's disks get "
                f"({', '.join(map(str, majors))}); give a partition of the dump disk (e.g. /dev/sda2 or /dev/hda2).")
    missing = [s for s in needed if config_values.get(s) != "y"]
    if not missing:
        return None
    drive = sorted(n for n, f in families.items() if major in f["major"])
    return (f"dump_dev={dump_dev} is a disk of block major {major}, but the mini kernel does not build in "
            f"{', '.join('CONFIG_' + s for s in missing)}, so the dump would find no such disk; add a family that "
            f"drives it to dump_driver= ({', '.join(drive)}) or give a dump_dev= on a disk it drives.")


def family_names(families):
    """{name a user may give: family}: every family's own name and its aliases."""
    return {**{n: n for n in families}, **{a: n for n, f in families.items() for a in f["aliases"]}}


def _dump_driver_fragments(configs_dir, value):
    """One fragment per family named in the dump_driver= value, each named for its family, so that an audit
    message says which family asked for a symbol."""
    path = os.path.join(os.fspath(configs_dir), "dump-drivers.toml")
    families = dump_driver_families(configs_dir)
    known = family_names(families)
    names = options.split_dump_driver(value)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"dump_driver={value} is not a known dump driver family; choose one of "
                          f"{', '.join(families)} (see scons -h)")
    frags = []
    for given in names:
        family = known[given]
        header = f"[family.{family}]"
        name = f"dump_driver={given}"
        requests = []
        for sym in families[family]["symbols"]:
            line = _line_of(path, header, '"' + sym + '"')
            requests.append(Request(sym, "y", f"{path}:{line} ({name})"))
        frags.append(Fragment(name, tuple(requests), covered_by="dump_driver"))
    return frags


@dataclasses.dataclass(frozen=True)
class Rule:
    """One rule of configs/rules.toml as written there: a `symbol` with its `why` (and what it means when the tree
    does not define it), or the set of symbols `covers` names with `must`, the end of a broken rule's sentence."""
    value: str
    origin: str                 # rules.toml:line
    symbol: str = None
    why: str = None
    undefined: str = None
    covers: str = None
    must: str = None

    def describe(self):
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# What a `covers` rule can hold: sets only the tree and the options name (see _covered).
COVERS = ("filesystems", "dump_driver")


def _rules(configs_dir, kind):
    path = os.path.join(os.fspath(configs_dir), "rules.toml")
    rules = []
    for i, rule in enumerate(_read_toml(path).get(kind, {}).get("rule", [])):
        one = set(rule) - {"undefined"} == {"symbol", "value", "why"}
        many = set(rule) == {"covers", "value", "must"} and rule["covers"] in COVERS
        if not (one or many):
            raise ConfigError(f"{path}: rule {i + 1} of [{kind}] needs a value and either symbol and why (and "
                              f"optionally undefined) or covers (one of {', '.join(COVERS)}) and must; fix the file")
        key = f'symbol = "{rule["symbol"]}"' if one else f'covers = "{rule["covers"]}"'
        rules.append(Rule(origin=f"{path}:{_line_of(path, f'[[{kind}.rule]]', key)}", **rule))
    return rules


def fragments_for(configs_dir, *, arch, kind, dump_driver=None, pae=None, user_fragment=None):
    """The ordered fragment list for one kernel: our files under configs/, generated ones, then the user's.

    minik: minik-common.config, minik-<arch>.config, one fragment per family of the comma-separated dump_driver
    (the default family when None), the PAE choice (arches whose file has [config.pae]: pae True/False, None means
    its default), then user_fragment (overrides=True).
    system: system-<arch>.config, then user_fragment. Paths are returned for files, Fragment objects for the rest.
    """
    configs_dir = os.fspath(configs_dir)
    if kind not in KINDS:
        raise ConfigError(f"kernel kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if kind == "minik":
        out = [os.path.join(configs_dir, "minik-common.config"), os.path.join(configs_dir, f"minik-{arch}.config")]
        if dump_driver is None:
            dump_driver = next(iter(dump_driver_families(configs_dir)))
        out += _dump_driver_fragments(configs_dir, dump_driver)
        choice = arches.load(arch).pae if arch in arches.names() else None
        if pae is not None and choice is None:
            with_pae = ", ".join(a.name for a in arches.load_all() if a.pae)
            raise ConfigError(f"pae= applies to {with_pae} only (the README's Pentium M note), not to arch={arch}; "
                              "drop the pae option")
        if choice is not None:
            # Asking for the default explicitly makes it part of the audit.
            pae = choice.default if pae is None else pae
            value = "y" if pae else "n"
            name = f"pae={'yes' if pae else 'no'}"
            out.append(Fragment(name, (Request(choice.symbol, value, f"option {name}"),)))
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


# ------------------------------------------------------------------------------------------------ rules

@dataclasses.dataclass(frozen=True)
class Check:
    """A rule of rules.toml applied to one symbol of this tree."""
    symbol: str
    rule: Rule
    option: str = None          # what chose a covers rule's symbols ({option} in its text)

    @property
    def value(self):
        return self.rule.value

    @property
    def reason(self):
        """Why the symbol must have the value: a symbol rule's why, a covers rule's whole sentence."""
        return self.rule.why if self.rule.symbol else self.rule.must.replace("{option}", self.option or "")

    @property
    def must(self):
        """The end of a broken rule's sentence: '..., but ' + must."""
        if self.rule.symbol:
            return f"must be {self.value}: {self.reason} (rule at {self.rule.origin})"
        return self.reason


def _covered(covers, kconf, tree, fragments):
    """The symbols a covers rule holds in this tree, each with the option that chose it (None: no option did);
    a symbol two dump driver families share is held for each (the first one's name is the one a problem shows)."""
    if covers == "filesystems":
        return [(name, None) for name in filesystem_symbols(kconf, tree)]
    # A symbol this tree does not define is reported as an unknown request (_merge), with its fragment line.
    return [(r.symbol, f.name) for f in fragments if f.covered_by == covers for r in f.requests
            if r.symbol in kconf.syms and kconf.syms[r.symbol].nodes]


def rule_checks(rules, kconf, tree, arch, fragments):
    """The rules as the symbols of this tree they hold. A symbol rule whose symbol the tree does not define means
    the tree is not what the rule is about: ConfigError, with the rule's `undefined` text when it has one."""
    checks = []
    for rule in rules:
        if rule.covers is not None:
            checks += [Check(name, rule, option) for name, option in _covered(rule.covers, kconf, tree, fragments)]
            continue
        sym = kconf.syms.get(rule.symbol)
        if sym is None or not sym.nodes:
            if rule.undefined:
                raise ConfigError(f"CONFIG_{rule.symbol} is not defined by any Kconfig file of {tree} "
                                  f"(arch={arch}): {rule.undefined}")
            raise ConfigError(f"CONFIG_{rule.symbol}, named by the rule at {rule.origin}, is not defined for "
                              f"arch={arch} in {tree}; this tree is not the expected Linux 2.6.9")
        checks.append(Check(rule.symbol, rule))
    return checks


def check_rules(checks, kconf, values, origins=None):
    """{symbol: problem text} for every symbol whose value in `values` breaks a rule (the first rule, in order).

    Before make runs, `values` are the requested ones and `origins` where each was asked for; a symbol nobody asks
    for is not checked yet. After oldconfig, `values` are the final ones of every checked symbol (no origins), and
    each problem says why Kconfig gave that value.
    """
    problems = {}
    for check in checks:
        if check.symbol in problems or check.symbol not in values:
            continue
        sym, value = kconf.syms[check.symbol], values[check.symbol]
        if _same(sym, check.value, value):
            continue
        got = f"requested {value} at {origins[check.symbol]}" if origins is not None else f"actual {value}"
        problems[check.symbol] = (f"  CONFIG_{check.symbol}: {got}, but {check.must}\n      defined at "
                                  f"{_defined_at(sym)}" + ("" if origins is not None
                                                           else "; " + explain(kconf, sym, check.value)))
    return problems


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


def _load_base_config(kconf, path, arch, rules_path, checks, log):
    """Load the user's own .config into kconf; return what of it this tree does not take, and what changes.

    The file must be a 2.6.9 configuration for `arch` (userconfig.check_header) with what the system kernel's
    rules ask (`checks`; one sentence naming the option otherwise). A distribution's file names symbols vanilla
    2.6.9 does not define (RHEL4: DISKDUMP, NETDUMP, TUX, ...) and values a symbol cannot take here: those lines
    are left out, as oldconfig would drop them, but listed with their line numbers; values Kconfig lowers or raises
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
    for check in checks:
        sym = kconf.syms[check.symbol]
        if not _same(sym, check.value, _val(sym)):
            line = line_of.get(check.symbol)
            raise ConfigError(f"the system_config file {path} has CONFIG_{check.symbol}={_val(sym)}"
                              f"{f' (line {line})' if line else ''}, but it must be {check.value}: {check.reason}; "
                              f"set CONFIG_{check.symbol}={check.value} in it")
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


@dataclasses.dataclass(frozen=True)
class Plan:
    """What configure decided before make runs: the tree's Kconfig, the merged requests, the rules."""
    tree: str
    arch: str
    kind: str
    kconf: kconfiglib.Kconfig
    fragments: list
    requested: dict             # symbol -> Request, overrides applied
    overrides: list
    rules: list                 # as written in rules.toml
    checks: list                # the rules as this tree's symbols
    rules_path: str
    base_config: str = None
    obj: str = None             # the object directory the kernel is configured and built in; None: the tree

    @property
    def config(self):
        return os.path.join(self.obj or self.tree, ".config")

    def make_command(self, target, make_args):
        """make `target` for this plan's arch, run in `self.obj or self.tree`: in an object directory on the tree's
        Makefile, as kbuild.make_command does."""
        argv = ["make", f"ARCH={self.arch}", target, *make_args]
        if self.obj:
            argv += ["-f", os.path.join(os.path.abspath(self.tree), "Makefile"),
                     f"KBUILD_SRC={os.path.abspath(self.tree)}"]
        return argv


def plan(tree, *, arch, kind, fragments, base_config=None, configs_dir=None, log=log_default, obj=None):
    """Read the tree's Kconfig, the fragments and the rules; ConfigError lists every request that cannot be made.

    fragments: the list from fragments_for (paths or Fragment objects), merged in order. base_config (system kernel
    only): the user's own .config to start from instead of allnoconfig. configs_dir: where rules.toml is (default:
    the repository's configs/). obj: the object directory that holds the .config (default: the tree).
    """
    tree = os.fspath(tree)
    if kind not in KINDS:
        raise ConfigError(f"kernel kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if base_config is not None and kind != "system":
        raise ConfigError("a base .config (system_config=) applies to the system kernel only")
    if configs_dir is None:
        configs_dir = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    frags = [_as_fragment(f) for f in fragments]
    rules = _rules(configs_dir, kind)
    kconf = load_kconfig(tree, arch)
    checks = rule_checks(rules, kconf, tree, arch, frags)
    requested, overrides, problems = _merge(frags, kconf, log)
    # A request the rules forbid fails now, before make runs, with the rule's reason.
    problems += check_rules(checks, kconf, {s: r.value for s, r in requested.items()},
                            {s: r.origin for s, r in requested.items()}).values()
    if problems:
        _fail(kind, arch, problems, "cannot be made as asked")
    return Plan(tree, arch, kind, kconf, frags, requested, overrides, rules, checks,
                os.path.join(configs_dir, "rules.toml"), os.fspath(base_config) if base_config is not None else None,
                os.fspath(obj) if obj is not None else None)


def apply(plan, *, make_args=(), make=run_make, log=log_default):
    """Write the planned .config and let the kernel's `make oldconfig` normalise it.

    The start is `make allnoconfig`, or the user's .config (then returned: what of it was left out or changed).
    make_args are appended to every make command (CC=..., HOSTCC=...); make: the runner (argv, cwd) -> output.
    Returns (the values written before oldconfig, the user's .config report or None).
    """
    arch_arg = f"ARCH={plan.arch}"
    user_config = None
    if plan.base_config is not None:
        log(f"config: {plan.kind} {plan.arch}: starting from {plan.base_config}")
        user_config = _load_base_config(plan.kconf, plan.base_config, plan.arch, plan.rules_path, plan.checks, log)
    else:
        log(f"config: {plan.kind} {plan.arch}: make {arch_arg} allnoconfig")
        make(plan.make_command("allnoconfig", make_args), plan.obj or plan.tree)
        plan.kconf.load_config(plan.config)
    for req in plan.requested.values():
        plan.kconf.syms[req.symbol].set_value(req.value)
    written = plan.config + ".mkdump-tmp"
    plan.kconf.write_config(written, save_old=False)
    os.replace(written, plan.config)
    before = read_config_values(plan.config)
    log(f"config: {plan.kind} {plan.arch}: make {arch_arg} oldconfig")
    make(plan.make_command("oldconfig", make_args), plan.obj or plan.tree)
    return before, user_config


def audit(plan):
    """Compare the final .config with every request and every rule; return its values.

    Any difference is a ConfigError naming the symbol, both values, the fragment line or rule, the Kconfig
    definition and Kconfig's reason; the .config is then renamed .config.rejected, so no later make builds it.
    """
    final = read_config_values(plan.config)
    kconf = plan.kconf
    kconf.load_config(plan.config)      # explain() tells why from the final values
    problems = {}
    for req in plan.requested.values():
        sym = kconf.syms[req.symbol]
        actual = _final_value(final, sym)
        if not _same(sym, req.value, actual):
            problems[req.symbol] = (f"  CONFIG_{req.symbol}: requested {req.value} at {req.origin}, actual "
                                    f"{actual if actual is not None else '(unset)'}\n      defined at "
                                    f"{_defined_at(sym)}; " + explain(kconf, sym, req.value))
    actual = {c.symbol: _final_value(final, kconf.syms[c.symbol]) for c in plan.checks}
    for symbol, text in check_rules(plan.checks, kconf, actual).items():
        problems.setdefault(symbol, text)
    if problems:
        os.replace(plan.config, plan.config + ".rejected")
        _fail(plan.kind, plan.arch, list(problems.values()), "does not hold after make oldconfig",
              note=f"  (the rejected configuration is kept as {plan.config}.rejected)")
    return final


def oldconfig_changes(kconf, before, after):
    """{symbol: {"written", "final"}} for each value oldconfig changed."""
    changed = {}
    for name in sorted(set(before) | set(after)):
        sym = kconf.syms.get(name)
        # conf writes "is not set" lines for invisible symbols that kconfiglib leaves out: both mean n.
        old, new = (before.get(name), after.get(name)) if sym is None else \
            (_final_value(before, sym), _final_value(after, sym))
        if old != new:
            changed[name] = {"written": old, "final": new}
    return changed


def summary(plan, *, final, changed, user_config):
    """The JSON-able record of an audited configuration (the config stamp, and the manifest's configs)."""
    audited = sorted(set(plan.requested) | {c.symbol for c in plan.checks})
    return {
        "kind": plan.kind,
        "arch": plan.arch,
        "base_config": plan.base_config,
        "user_config": user_config,
        "fragments": [f.describe() for f in plan.fragments],
        "requested": {k: {"value": r.value, "origin": r.origin} for k, r in sorted(plan.requested.items())},
        "overrides": plan.overrides,
        "rules": [r.describe() for r in plan.rules],
        "filesystem_symbols": [c.symbol for c in plan.checks if c.rule.covers == "filesystems"],
        "audited": {k: _final_value(final, plan.kconf.syms[k]) for k in audited},
        "oldconfig_changed": changed,
        # Not the file's own hash: 2.6.9's conf dates the header, and stamps and the manifest must be reproducible.
        "values_sha256": config_values_sha256(plan.config),
    }


def configure(tree, *, arch, kind, fragments, make_args=(), log=None, base_config=None, configs_dir=None,
              make=run_make, obj=None):
    """Write tree/.config (obj/.config with an object directory `obj`) for `kind` ("minik" or "system") on
    `arch` and audit it; return the summary.

    plan, then apply, then audit (see each for its arguments). Raises ConfigError with every problem explained.
    """
    log = log or log_default
    started = time.monotonic()
    planned = plan(tree, arch=arch, kind=kind, fragments=fragments, base_config=base_config,
                   configs_dir=configs_dir, log=log, obj=obj)
    if obj is not None:
        os.makedirs(obj, exist_ok=True)
    written, user_config = apply(planned, make_args=make_args, make=make, log=log)
    final = audit(planned)
    changed = oldconfig_changes(planned.kconf, written, final)
    if changed:
        log(f"config: make oldconfig changed {len(changed)} value(s): {', '.join(changed)}")
    result = summary(planned, final=final, changed=changed, user_config=user_config)
    log(f"config: {kind} {arch}: audited {len(result['audited'])} symbols, all as requested "
        f"({round(time.monotonic() - started, 2)} s)")
    return result


def audit_saved(tree, *, arch, kind, fragments, config_path, configs_dir=None):
    """The rules a configuration saved outside the build (scons menuconfig) breaks, as the build would report
    them, and the tree's Kconfig it was read with: ([problem text], kconf). `fragments` are the ones the build
    applies, for the rules that depend on them (the dump driver's symbols)."""
    p = plan(tree, arch=arch, kind=kind, fragments=fragments, configs_dir=configs_dir, log=lambda msg: None)
    saved = read_config_values(config_path)
    p.kconf.load_config(config_path)
    actual = {c.symbol: _final_value(saved, p.kconf.syms[c.symbol]) for c in p.checks}
    return list(check_rules(p.checks, p.kconf, actual).values()), p.kconf
