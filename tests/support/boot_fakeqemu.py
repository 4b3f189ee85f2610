"""A stand-in for qemu-system-*: an executable script that prints a given console text, then exits, waits for
ever (a hung kernel) or prints more after a delay. It records its argument list so tests can check it.

The script answers `-machine help` with a fixed list, as QEMU does, so machine fallback can be tested."""
import json
import os
import sys
from pathlib import Path

from mkdump import arch as arches

SCRIPT = r'''#!{python}
import json, shutil, sys, time
spec = json.load(open({spec!r}))
if sys.argv[1:] == ["-machine", "help"]:
    print("Supported machines are:")
    for name in spec["machines"]:
        print(f"{{name:20}} some machine")
    sys.exit(0)
with open(spec["argv_file"], "w") as f:
    json.dump(sys.argv[1:], f)
argv = sys.argv[1:]
if spec["keep_initrd"] and "-initrd" in argv:
    shutil.copyfile(argv[argv.index("-initrd") + 1], spec["keep_initrd"])
early = spec["early_chunks"] is not None and "earlyprintk=" in argv[argv.index("-append") + 1]
for chunk in spec["early_chunks"] if early else spec["chunks"]:
    time.sleep(chunk["delay"])
    sys.stdout.buffer.write(chunk["text"].encode())
    sys.stdout.buffer.flush()
sys.stderr.write(spec["stderr"])
if spec["hang"]:
    time.sleep(3600)
sys.exit(spec["exit"])
'''


def make(tmp_path, chunks, *, hang=False, exit_code=0, stderr="", machines=("pc", "pc-i440fx-7.0"),
         early_chunks=None, keep_initrd=None):
    """Write the fake QEMU and a directory of arch files whose [qemu] tables point at it; return (that directory,
    argv_file). The arch files are the project's with their [qemu] tables (the last in each file) replaced.

    chunks: a list of (delay_seconds, text) printed in order; early_chunks, if given, replace them when the
    kernel command line holds earlyprintk= (as a kernel that dies early only speaks with earlyprintk).
    keep_initrd: a path the fake copies its -initrd file to (the caller's copy is gone after the boot)."""
    tmp_path = Path(tmp_path)
    spec = tmp_path / "fakeqemu.json"
    argv_file = tmp_path / "fakeqemu-argv.json"
    early = None if early_chunks is None else [{"delay": d, "text": t} for d, t in early_chunks]
    spec.write_text(json.dumps({"chunks": [{"delay": d, "text": t} for d, t in chunks], "early_chunks": early,
                                "hang": hang,
                                "exit": exit_code, "stderr": stderr, "machines": list(machines),
                                "argv_file": str(argv_file),
                                "keep_initrd": None if keep_initrd is None else str(keep_initrd)}))
    script = tmp_path / "fake-qemu"
    script.write_text(SCRIPT.format(python=sys.executable, spec=str(spec)))
    os.chmod(script, 0o755)
    arch_dir = tmp_path / "arch"
    arch_dir.mkdir()
    table = f'''
binary = "{script}"
package = "qemu-system-x86"
machine = "pc-i440fx-7.0"
machine_fallback = "pc"
accel = "tcg"
cpu = "qemu64"
memory_mb = 64
console = "ttyS0"
baud = 115200
earlyprintk = "earlyprintk=serial,ttyS0,115200"
timeout_seconds = 20
grace_seconds = 1
args = ["-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot"]
'''
    qemu = {"x86_64": f"[qemu]{table}\n[qemu.minik]\nmemory_mb = 8\n", "i386": f"[qemu]{table}"}
    for name, tables in qemu.items():
        real = (arches.ARCH_DIR / f"{name}.toml").read_text()
        (arch_dir / f"{name}.toml").write_text(real[:real.index("\n[qemu]\n") + 1] + tables)
    return arch_dir, argv_file


def argv(argv_file):
    return json.loads(Path(argv_file).read_text())
