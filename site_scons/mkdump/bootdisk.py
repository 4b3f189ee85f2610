"""The disk of the system-kernel boot proof: which emulated controller a configuration drives, the modules a
distribution's initrd would load for it (in dependency order), a real ext3 image, and the /plan our /init follows.

A user's system kernel usually reaches its root disk through modules (RHEL4: sym53c8xx or ata_piix, sd_mod,
scsi_mod, jbd, ext3, all loaded from the initrd). The proof does the same with the modules gcc 12 built: it loads
them, waits for the disk, mounts it read-only and reads a file we put there with mke2fs.
"""
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mkdump import initramfs, kbuild, tomlfile
from mkdump.errors import MkdumpError

ROOT = Path(__file__).resolve().parents[2]
DISKS_TOML = ROOT / "kernel" / "boot-disks.toml"
PROOF_FILE = "mkdump-proof.txt"
MOUNT_POINT = "/mnt"


@dataclass(frozen=True)
class Disk:
    name: str
    why: str
    symbols: tuple      # every one must be y or m in the kernel's .config
    modules: tuple      # what to load when built as modules (a built-in one has no .ko and is skipped)
    device: str         # the block device node our /init opens
    rdev: tuple         # (major, minor) of that node
    args: tuple         # QEMU arguments; {image} is the disk image
    wait_seconds: int
    qemu_device: str = None     # the QEMU device model of the controller
    minik_unproven: str = None  # why the mini kernel's dump disk proof cannot use it, if it cannot


def load_disks(path=DISKS_TOML):
    data = tomlfile.load(path, "the boot disks", fix="restore kernel/boot-disks.toml")
    disks = []
    for d in data.get("disk", []):
        try:
            disks.append(Disk(d["name"], d["why"], tuple(d["symbols"]), tuple(d["modules"]), d["device"],
                              tuple(d["rdev"]), tuple(d["args"]), int(d.get("wait_seconds", 10)),
                              d.get("qemu_device"), d.get("minik_unproven")))
        except KeyError as e:
            raise MkdumpError(f"{path}: a [[disk]] lacks {e.args[0]}; add it (see the keys at the top).") from None
    return disks, tuple(data.get("filesystem_modules", ()))


def choose_disk(config_values, disks, *, built_in=False):
    """The first disk whose every symbol the configuration builds (y or m; y only with built_in), or None."""
    wanted = ("y",) if built_in else ("y", "m")
    for disk in disks:
        if all(config_values.get(s) in wanted for s in disk.symbols):
            return disk
    return None


# --- module dependencies -----------------------------------------------------------------------------------

def module_paths(tree):
    """{module name: path} of every .ko under a built kernel tree (names as the loader sees them: '-' is '_')."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if f.endswith(".ko"):
                found[f[:-3].replace("-", "_")] = os.path.join(dirpath, f)
    return found


def _module_symbols(path):
    """(the symbols a module uses, the symbols it exports)."""
    from mkdump.elfcheck import _Elf, kernel_exports
    with _Elf(path) as f:
        undefined = {sym.name for sym in f.symbols()[1:] if sym.shndx == "SHN_UNDEF" and sym.name}
    return undefined, kernel_exports(path)


def load_order(wanted, paths, kernel_exports, module_symvers=None):
    """The modules to load, dependencies first, so that each finds every symbol it uses.

    wanted: module names; one without a .ko in `paths` is built in and needs nothing. kernel_exports: what vmlinux
    exports. Which module exports a symbol comes from Module.symvers (modpost's list) when given, else from the
    modules themselves. Raises MkdumpError naming a symbol nothing exports.
    """
    exporter = {}
    if module_symvers is not None and os.path.isfile(module_symvers):
        with open(module_symvers, encoding="latin-1") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] != "vmlinux":
                    exporter[fields[1]] = os.path.basename(fields[2]).replace("-", "_")
    else:
        for name, path in paths.items():
            for sym in _module_symbols(path)[1]:
                exporter.setdefault(sym, name)
    order, visiting = [], set()

    def visit(name, needed_by):
        if name in order or name not in paths:
            return
        if name in visiting:
            raise MkdumpError(f"the modules {needed_by} and {name} need each other's symbols; the kernel's modules "
                              "cannot be loaded one after the other.")
        visiting.add(name)
        undefined, _ = _module_symbols(paths[name])
        for sym in sorted(undefined - kernel_exports):
            dep = exporter.get(sym)
            if dep is None:
                raise MkdumpError(f"module {name} ({paths[name]}) uses {sym}, which neither the kernel nor any of "
                                  "its modules exports; the module cannot load.")
            if dep != name:
                visit(dep, name)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), "the boot proof")
    return order


# --- the disk image and the plan ----------------------------------------------------------------------------

def make_ext3_image(path, content, *, entries=(), size_kib=8192):
    """A real ext3 filesystem made by Debian's mke2fs (e2fsprogs), holding PROOF_FILE with `content` and
    `entries` (initramfs.Entry: files, directories, device nodes), so it can also be a root filesystem.

    128-byte inodes and no features past ext3's: 2.6.9's ext3 mounts nothing newer. The timestamps come from
    E2FSPROGS_FAKE_TIME (SOURCE_DATE_EPOCH's role for e2fsprogs), so equal inputs give equal images. Device nodes
    are made with debugfs, which needs no privileges.
    """
    path = Path(path)
    src = path.parent / (path.name + ".d")
    src.mkdir(parents=True, exist_ok=True)
    (src / PROOF_FILE).write_text(content)
    nodes = []
    for entry in entries:
        target = src / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        elif entry.kind == "file":
            target.write_bytes(entry.data)
            target.chmod(entry.mode)
        else:
            # debugfs' mknod takes a name in its current directory (a path would become the name itself).
            parent, _, base = entry.name.rpartition("/")
            kind, bits = ("c", 0o020000) if entry.kind == "chardev" else ("b", 0o060000)
            nodes += [f"cd /{parent}", f"mknod {base} {kind} {entry.rdev[0]} {entry.rdev[1]}",
                      f"sif {base} mode 0{bits | entry.mode:o}", "cd /"]
    epoch = os.environ.get("SOURCE_DATE_EPOCH", str(kbuild.DEFAULT_SOURCE_DATE_EPOCH))
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=epoch)
    cmd = ["mke2fs", "-q", "-F", "-t", "ext3", "-I", "128", "-b", "1024", "-O",
           "^metadata_csum,^64bit,^huge_file,^dir_nlink,^extra_isize,^orphan_file,^metadata_csum_seed",
           "-E", "hash_seed=6d6b6475-6d70-2d62-7569-6c642d626f6f,root_owner=0:0", "-U", "clear",
           "-d", os.fspath(src), os.fspath(path), f"{size_kib}k"]
    try:
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError:
        raise MkdumpError("mke2fs was not found: install Debian's e2fsprogs package.") from None
    if proc.returncode != 0:
        raise MkdumpError(f"mke2fs could not make the boot disk {path} (`{' '.join(cmd)}`): "
                          f"{proc.stderr.strip()}")
    if nodes:
        requests = path.parent / (path.name + ".debugfs")
        requests.write_text("\n".join(nodes) + "\n")
        proc = subprocess.run(["debugfs", "-w", "-f", os.fspath(requests), os.fspath(path)], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0 or "rror" in proc.stderr or "not found" in proc.stderr:
            raise MkdumpError(f"debugfs could not make the device nodes on the boot disk {path} ({requests}): "
                              f"{proc.stderr.strip()}")
    return path


def plan_text(disk, modules, fs_type="ext3", *, root=False):
    """/plan for our /init: load the modules (the initramfs holds them as /modules/<name>.ko), wait for the
    disk, mount it read-only, read the proof file. With root the kernel mounted the disk as / itself: read it."""
    if root:
        return f"cat /{PROOF_FILE}\n"
    lines = [f"insmod /modules/{name}.ko" for name in modules]
    lines.append(f"wait {disk.device} {disk.wait_seconds}")
    lines.append(f"mount {disk.device} {MOUNT_POINT} {fs_type}")
    lines.append(f"cat {MOUNT_POINT}/{PROOF_FILE}")
    return "\n".join(lines) + "\n"


def qemu_args(disk, image):
    return [a.replace("{image}", os.fspath(image)) for a in disk.args]


_INSMOD = re.compile(r"mkdump-init: insmod /modules/(\S+)\.ko returned (-?\d+)")
_WAIT = re.compile(r"mkdump-init: wait (\S+) returned (-?\d+)")
_MOUNT = re.compile(r"mkdump-init: mount (\S+) returned (-?\d+)")
_CAT = re.compile(r"mkdump-init: cat (\S+)(?:: (.*)| returned (-?\d+))$")


def plan_facts(lines):
    """What /init said about each plan step: {"insmod": {name: ret}, "wait": ret, "mount": ret, "cat": text or
    a negative errno}; a step it never reached is absent."""
    facts = {"insmod": {}}
    for line in lines:
        if m := _INSMOD.search(line):
            facts["insmod"][m.group(1)] = int(m.group(2))
        elif m := _WAIT.search(line):
            facts["wait"] = int(m.group(2))
        elif m := _MOUNT.search(line):
            facts["mount"] = int(m.group(2))
        elif m := _CAT.search(line):
            facts["cat"] = m.group(2) if m.group(2) is not None else int(m.group(3))
    return facts


@dataclass(frozen=True)
class Plan:
    disk: Disk
    text: str
    modules: dict       # module name -> its bytes, in load order
    image: Path
    content: str        # what PROOF_FILE holds
    mount_point: str = MOUNT_POINT
    root: bool = False  # the disk is the root filesystem (a kernel without initrd support)

    @property
    def device(self):
        return self.disk.device

    @property
    def rdev(self):
        return self.disk.rdev

    def qemu_args(self):
        return qemu_args(self.disk, self.image)


def needs_root_disk(config_values):
    """A kernel without initrd support (some arch's 2.6.9 defconfig has none) cannot take our initramfs: its /init
    must come from a root filesystem it mounts by itself."""
    return config_values.get("BLK_DEV_INITRD") != "y"


def prepare(tree, config_values, workdir, *, content, root_entries=None, disks_toml=DISKS_TOML):
    """The disk proof for a built system kernel tree: the disk its configuration drives, the modules to load
    (read from the tree), the ext3 image holding `content`. With root_entries (initramfs entries: /init and what
    it loads) the disk is the root filesystem and holds them, so driver and ext3 must be built in. MkdumpError
    when the configuration drives no disk QEMU emulates or has no ext3."""
    from mkdump.elfcheck import kernel_exports
    root = root_entries is not None
    disks, fs_modules = load_disks(disks_toml)
    disk = choose_disk(config_values, disks, built_in=root)
    wanted = "y" if root else "y or m"
    if disk is None:
        raise MkdumpError("the system kernel's configuration drives none of the disks QEMU emulates for the boot "
                          f"proof ({', '.join(d.name + ': ' + ' '.join(d.symbols) for d in disks)}"
                          + (", built in: without initrd support (BLK_DEV_INITRD) nothing can load a module "
                             "before the root filesystem" if root else "")
                          + f"); build one of them ({wanted}) to prove it mounts a disk.")
    if config_values.get("EXT3_FS") not in wanted.split(" or "):
        raise MkdumpError("the system kernel's configuration has no ext3 (CONFIG_EXT3_FS), which the boot proof's "
                          f"disk uses; build it ({wanted}).")
    image_path = Path(workdir) / "disk.img"
    if root:
        image = make_ext3_image(image_path, content + "\n", entries=list(root_entries) + [
            initramfs.file("plan", plan_text(disk, [], root=True).encode())])
        return Plan(disk, plan_text(disk, [], root=True), {}, image, content, root=True)
    tree = Path(tree)
    paths = module_paths(tree)
    order = load_order(list(disk.modules) + list(fs_modules), paths, kernel_exports(tree / "vmlinux"),
                       tree / "Module.symvers")
    image = make_ext3_image(image_path, content + "\n")
    return Plan(disk, plan_text(disk, order), {n: Path(paths[n]).read_bytes() for n in order}, image, content)

