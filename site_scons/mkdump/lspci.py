"""dump_driver=lspci:FILE: the dump driver families that drive the storage controllers of the target machine.

The user runs `lspci -n` (or `lspci -nn`, with or without -v) on the machine whose memory is to be dumped and
gives us its output. Its storage controllers (PCI class 01xx, and 0c04: Fibre Channel) are matched against the PCI ID tables of the 2.6.9
drivers themselves, read from the pristine source tree: each family's `sources` (configs/dump-drivers.toml) hold
`struct pci_device_id` tables, in any of the forms 2.6.9 writes them (positional fields, designated `.vendor =`
fields, PCI_DEVICE(), PCI_DEVICE_CLASS(), class and mask matches), with constants from include/linux/pci_ids.h and
the files' own #defines; a family whose driver finds its cards with pci_find_device names its IDs in `pci_ids`.
Entries inside `#ifdef CONFIG_X` count when the family sets X, other conditions when the files define them (so
ata_piix's PATA entries, behind libata.h's `#undef ATA_ENABLE_PATA`, do not); an `#if` on anything else is taken
as true, like the 2.6.9 version tests it mostly is.

A controller is matched as the kernel's pci_match_one does; what lspci -n does not print is not held against a
table entry (the subsystem IDs without -v, the class's programming interface without prog-if). One family that
names the controller's vendor:device exactly is chosen (the first in file order: megaraid and megaraid-legacy know
some of the same cards and cannot be built together); when only tables that take a whole vendor or class match
(aic7xxx and aic79xx both take every Adaptec SCSI controller), every such family is chosen. A USB controller
(0c03) brings usb-storage in only when no other storage controller is driven: a machine's USB ports are rarely
where its dump disk is, and the result says usb-storage could reach one. A storage controller that no family
drives is named, one sentence each.
"""
import ast
import dataclasses
import os
import re
from typing import Optional

from .errors import MkdumpError

ANY = 0xFFFFFFFF
# Mass storage controllers (01xx) and Fibre Channel host adapters (0c04: QLogic and Fusion FC cards say so).
MASS_STORAGE = "01"
FIBRE_CHANNEL = "0c04"
USB_CONTROLLER = "0c03"

_SLOT = r"(?P<slot>(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])"
# lspci -n: "00:1f.2 0101: 8086:24d1 (rev 02)"
_N_RE = re.compile(_SLOT + r"\s+(?P<cls>[0-9a-fA-F]{4}):\s+(?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})\b")
# lspci -nn: "00:1f.2 IDE interface [0101]: Intel Corporation 82801EB (ICH5) SATA Controller [8086:24d1] (rev 02)"
_NN_RE = re.compile(_SLOT + r"\s.*?\[(?P<cls>[0-9a-fA-F]{4})\]:\s.*\[(?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})\]"
                    r"(?:\s*\(rev [0-9a-fA-F]+\))?(?:\s*\(prog-if (?P<progif>[0-9a-fA-F]{2})\b.*\))?\s*$")
_PROGIF_RE = re.compile(r"\(prog-if (?P<progif>[0-9a-fA-F]{2})\b")
_SUBSYSTEM_RE = re.compile(r"^\s+Subsystem:.*?\[?(?P<ven>[0-9a-fA-F]{4}):(?P<dev>[0-9a-fA-F]{4})\]?\s*$")


class LspciError(MkdumpError):
    pass


@dataclasses.dataclass(frozen=True)
class Device:
    """One PCI function as lspci printed it."""
    slot: str
    cls: str                        # 4 hex digits: base class and subclass
    vendor: int
    device: int
    line: str                       # the line as printed, for messages
    progif: Optional[int] = None
    subvendor: Optional[int] = None
    subdevice: Optional[int] = None

    @property
    def ids(self):
        return f"{self.vendor:04x}:{self.device:04x}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One `struct pci_device_id` entry (or pci_ids pair) of a family's driver."""
    family: str
    vendor: int
    device: int
    subvendor: int = ANY
    subdevice: int = ANY
    cls: int = 0
    class_mask: int = 0
    origin: str = ""                # file:line

    @property
    def exact(self):
        return self.vendor != ANY and self.device != ANY

    def matches(self, dev):
        def one(want, have):
            return want == ANY or have is None or want == have
        if not (one(self.vendor, dev.vendor) and one(self.device, dev.device)
                and one(self.subvendor, dev.subvendor) and one(self.subdevice, dev.subdevice)):
            return False
        mask = self.class_mask if dev.progif is not None else self.class_mask & 0xFFFF00
        have = int(dev.cls, 16) << 8 | (dev.progif or 0)
        return ((self.cls ^ have) & mask) == 0


# ---------------------------------------------------------------------------------------------------- lspci text

def parse(text, name="the lspci output"):
    """The PCI functions of `lspci -n` / `lspci -nn` output (with or without -v). LspciError names the first line
    that is neither a device line nor a -v detail line, and a text without any device."""
    devices, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0].isspace():
            m = _SUBSYSTEM_RE.match(line)
            if m and current is not None:
                devices[-1] = current = dataclasses.replace(
                    current, subvendor=int(m.group("ven"), 16), subdevice=int(m.group("dev"), 16))
            continue
        m = _N_RE.match(line) or _NN_RE.match(line)
        if m is None:
            raise LspciError(f"{name} line {number} ({line.strip()!r}) is not a line of `lspci -n` or `lspci -nn`; "
                             "give the output of `lspci -n` on the target machine, unchanged")
        p = _PROGIF_RE.search(line)
        current = Device(m.group("slot"), m.group("cls").lower(), int(m.group("ven"), 16), int(m.group("dev"), 16),
                         line.strip(), progif=int(p.group("progif"), 16) if p else None)
        devices.append(current)
    if not devices:
        raise LspciError(f"{name} lists no PCI device; give the output of `lspci -n` on the target machine")
    return devices


# ---------------------------------------------------------------------------------------------------- C sources

def _strip_comments(text):
    """The text with comments and string literals blanked, newlines kept (line numbers stay right)."""
    def blank(m):
        s = m.group(0)
        if s.startswith(("/*", "//")):
            return re.sub(r"[^\n]", " ", s)
        return s
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', blank, text, flags=re.S)


_DEFINE_RE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(?![\w(])[ \t]*(.*)$", re.M)
_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.M)


def _defines(text):
    return {m.group(1): m.group(2).strip() for m in _DEFINE_RE.finditer(text)}


def _conditional(directive, rest, config, defined):
    """The value of a conditional directive: True/False (an expression we do not evaluate is True)."""
    rest = rest.strip()
    if directive in ("ifdef", "ifndef"):
        name = rest.split()[0] if rest else ""
        yes = config(name[len("CONFIG_"):]) if name.startswith("CONFIG_") else name in defined
        return yes if directive == "ifdef" else not yes
    m = re.fullmatch(r"(!\s*)?(?:defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)|(CONFIG_\w+))", rest)
    if m:
        name = m.group(2) or m.group(3) or m.group(4)
        yes = config(name[len("CONFIG_"):]) if name.startswith("CONFIG_") else name in defined
        return yes != bool(m.group(1))
    if rest in ("0", "1"):
        return rest == "1"
    return True


def _preprocess(text, config, defined):
    """The lines of text inside conditionals that do not hold blanked (numbers kept)."""
    lines = text.split("\n")
    stack = []              # (this branch active, some branch taken, parent active)
    active = True
    for i, line in enumerate(lines):
        m = re.match(r"[ \t]*#[ \t]*(ifdef|ifndef|if|elif|else|endif)\b(.*)$", line)
        if m:
            directive, rest = m.groups()
            if directive in ("ifdef", "ifndef", "if"):
                value = _conditional(directive, rest, config, defined)
                stack.append((value, value, active))
                active = active and value
            elif stack and directive == "elif":
                _, taken, parent = stack[-1]
                value = not taken and _conditional("if", rest, config, defined)
                stack[-1] = (value, taken or value, parent)
                active = parent and value
            elif stack and directive == "else":
                _, taken, parent = stack[-1]
                stack[-1] = (not taken, True, parent)
                active = parent and not taken
            elif stack:
                active = stack.pop()[2]
            lines[i] = ""
        elif not active:
            lines[i] = ""
    return "\n".join(lines)


class _Values:
    """Integer values of C constant expressions, from #defines (unsigned 32-bit, as the table fields are)."""

    def __init__(self, defines):
        self.defines = defines

    def value(self, expr, seen=()):
        text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr.strip())
        text = re.sub(r"\(\s*(?:unsigned\s+)?(?:int|long|short|u16|u32|__u16|__u32)\s*\)", "", text)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ValueError(expr) from None
        return self._eval(tree.body, expr, seen) & 0xFFFFFFFF

    def _eval(self, node, expr, seen):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in seen or node.id not in self.defines:
                raise ValueError(expr)
            return self.value(self.defines[node.id], seen + (node.id,))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.USub, ast.UAdd)):
            v = self._eval(node.operand, expr, seen)
            return {ast.Invert: lambda: ~v, ast.USub: lambda: -v, ast.UAdd: lambda: v}[type(node.op)]()
        if isinstance(node, ast.BinOp):
            ops = {ast.BitOr: lambda a, b: a | b, ast.BitAnd: lambda a, b: a & b, ast.LShift: lambda a, b: a << b,
                   ast.RShift: lambda a, b: a >> b, ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b}
            if type(node.op) in ops:
                return ops[type(node.op)](self._eval(node.left, expr, seen), self._eval(node.right, expr, seen))
        raise ValueError(expr)


def _split_top(text, sep=","):
    """text split at `sep` outside (), {} and []."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def _braced(text, start):
    """The index just after the brace closing the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced braces")


_TABLE_RE = re.compile(r"\bstruct\s+pci_device_id\s+\w+\s*\[[^\]]*\]\s*(?:__\w+\s*)*=\s*\{")
_FIELDS = ("vendor", "device", "subvendor", "subdevice", "class", "class_mask")


def _entry_fields(body):
    """The fields of one table entry's initializer text: {field: expression}."""
    fields, position = {}, 0
    for item in _split_top(body):
        m = re.fullmatch(r"\.(\w+)\s*=\s*(.+)", item, re.S)
        if m:
            fields[m.group(1)] = m.group(2)
            continue
        m = re.fullmatch(r"(PCI_DEVICE|PCI_DEVICE_CLASS)\s*\((.*)\)", item, re.S)
        if m:
            args = _split_top(m.group(2))
            if m.group(1) == "PCI_DEVICE":
                fields.update(vendor=args[0], device=args[1], subvendor="PCI_ANY_ID", subdevice="PCI_ANY_ID")
            else:
                fields.update({"class": args[0], "class_mask": args[1], "vendor": "PCI_ANY_ID",
                               "device": "PCI_ANY_ID", "subvendor": "PCI_ANY_ID", "subdevice": "PCI_ANY_ID"})
            position = len(_FIELDS)
            continue
        if position < len(_FIELDS):
            fields[_FIELDS[position]] = item
        position += 1
    return fields


def table_entries(text, *, family, path, values, config=lambda symbol: False, defined=()):
    """The entries of every `struct pci_device_id` table in C source `text` (already read)."""
    text = _preprocess(_strip_comments(text), config, set(defined))
    entries = []
    for m in _TABLE_RE.finditer(text):
        end = _braced(text, m.end() - 1)
        pos = m.end()
        while True:
            brace = text.find("{", pos, end - 1)
            if brace < 0:
                break
            close = _braced(text, brace)
            fields = _entry_fields(text[brace + 1:close - 1])
            line = text.count("\n", 0, brace) + 1
            pos = close
            try:
                nums = {k: values.value(fields[k]) if k in fields else 0 for k in _FIELDS}
            except ValueError as e:
                raise LspciError(f"{path}:{line}: the PCI ID table entry's value {str(e).strip()!r} is not a "
                                 "constant known from include/linux/pci_ids.h or the driver's own #defines; "
                                 f"the tree is not the expected Linux 2.6.9 (family {family})") from None
            if not any(nums.values()):
                continue        # the table's terminating entry
            entries.append(Entry(family, nums["vendor"], nums["device"], nums["subvendor"], nums["subdevice"],
                                 nums["class"], nums["class_mask"], f"{path}:{line}"))
    return entries


def _read(path):
    try:
        with open(path, encoding="latin-1") as f:
            return f.read()
    except OSError as e:
        raise LspciError(f"cannot read {path} ({e.strerror}): the kernel tree is incomplete; unpack it again") \
            from None


def family_tables(tree, families):
    """Every family's PCI ID entries, read from the tree: [Entry], in file order of the families."""
    tree = os.fspath(tree)
    base = _defines(_strip_comments(_read(os.path.join(tree, "include", "linux", "pci_ids.h"))))
    base.setdefault("PCI_ANY_ID", "(~0)")
    base.setdefault("PCI_CLASS_STORAGE_SCSI", "0x0100")
    base.setdefault("PCI_CLASS_SERIAL_USB", "0x0c03")
    entries = []
    for family, fam in families.items():
        texts = []
        for rel in fam.get("sources", []):
            path = os.path.join(tree, rel)
            text = _read(path)
            texts.append((rel, text))
            for inc in _INCLUDE_RE.findall(_strip_comments(text)):
                local = os.path.join(os.path.dirname(path), inc)
                if os.path.isfile(local):
                    texts.append((os.path.relpath(local, tree), _read(local)))
        defines = dict(base)
        for _, text in texts:
            defines.update(_defines(_strip_comments(text)))
        values = _Values(defines)
        symbols = set(fam["symbols"])
        own = {rel for rel in fam.get("sources", [])}
        for rel, text in texts:
            if rel in own:
                entries += table_entries(text, family=family, path=rel, values=values,
                                         config=symbols.__contains__, defined=defines)
        for pair in fam.get("pci_ids", []):
            vendor, _, device = pair.partition(":")
            try:
                entries.append(Entry(family, values.value(vendor), values.value(device),
                                     origin=f"dump-drivers.toml pci_ids {pair}"))
            except ValueError:
                raise LspciError(f"configs/dump-drivers.toml: pci_ids {pair!r} of family {family} names a constant "
                                 f"that {', '.join(fam.get('sources', []))} do not define; fix the file") from None
    return entries


# ---------------------------------------------------------------------------------------------------- choosing

@dataclasses.dataclass
class Choice:
    families: list                  # the families chosen, in file order
    driven: list                    # (Device, [family, ...]) for each storage controller a family drives
    unsupported: list               # Devices of class 01xx no family drives
    usb: list                       # USB controllers (usb-storage could reach a disk behind them)
    notes: list                     # sentences for the console

    def summary(self):
        """'ide, scsi-sym53c8xx (8086:24db IDE, 1000:0030 SCSI)'."""
        what = ", ".join(f"{d.ids} {_KIND.get(d.cls, 'storage')}" for d, _ in self.driven)
        return f"{', '.join(self.families)} ({what})" if self.families else "no family"


_KIND = {"0100": "SCSI", "0101": "IDE", "0102": "floppy", "0103": "IPI", "0104": "RAID", "0105": "ATA",
         "0106": "SATA", "0107": "SAS", "0180": "storage", FIBRE_CHANNEL: "FC", USB_CONTROLLER: "USB"}


def _is_controller(dev):
    return dev.cls.startswith(MASS_STORAGE) or dev.cls == FIBRE_CHANNEL


def choose(devices, entries, families, name="the lspci output"):
    """The families that drive the storage controllers of `devices` (see the module's doc for the rules)."""
    order = list(families)
    extra = {c.lower() for f in families.values() for c in f.get("storage_classes", [])}
    by_family = {}
    for e in entries:
        by_family.setdefault(e.family, []).append(e)
    driven, unsupported, usb, notes = [], [], [], []
    for dev in devices:
        if not (_is_controller(dev) or dev.cls in extra):
            continue
        hits = {}
        for family in order:
            for e in by_family.get(family, []):
                if e.matches(dev):
                    hits[family] = hits.get(family, False) or e.exact
        exact = [f for f in order if hits.get(f)]
        pick = exact[:1] if exact else [f for f in order if f in hits]
        if _is_controller(dev):
            if pick:
                driven.append((dev, pick))
                if len(exact) > 1:
                    notes.append(f"{dev.ids} ({dev.slot}) is known to {', '.join(exact)}; chose {exact[0]}")
            else:
                unsupported.append(dev)
                notes.append(f"the storage controller {dev.ids} in {name} ('{dev.line}') is driven by no dump "
                             "driver family of Linux 2.6.9, so the mini kernel cannot reach a disk behind it")
        elif pick:
            usb.append((dev, pick))
    if usb and not driven:
        driven += usb
    elif usb:
        notes.append(f"usb-storage could reach a USB disk behind {', '.join(d.ids for d, _ in usb)}; name the "
                     "families with dump_driver= (adding usb-storage) if the dump disk is a USB disk")
    chosen = {f for _, fams in driven for f in fams}
    return Choice([f for f in order if f in chosen], driven, unsupported, [d for d, _ in usb], notes)


def resolve(path, tree, families):
    """dump_driver=lspci:FILE: read FILE, match it against the tree's driver tables: a Choice with at least one
    family, or LspciError saying why none can be chosen."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise LspciError(f"dump_driver=lspci:{path}: cannot read the file ({e.strerror}); give the output of "
                         "`lspci -n` on the target machine") from None
    name = f"dump_driver=lspci:{path}"
    choice = choose(parse(text, name), family_tables(tree, families), families, name)
    if not choice.families:
        why = "; ".join(choice.notes) or "it lists no storage controller (PCI class 01xx or 0c04)"
        raise LspciError(f"{name}: no dump driver family drives a storage controller of this machine ({why}); "
                         "name the families with dump_driver=FAMILY[,FAMILY] instead (scons -h lists them)")
    return choice
