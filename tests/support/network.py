"""Ways to run a build with no network, and to see that it tried none.

    trap = NetTrap(tmp_path / "trap")           # Python-level: socket calls fail and are recorded
    r = run_scons(project, "offline=1", env=trap.env())
    assert trap.attempts() == [] and trap.loaded()

    prefix, why = netns_prefix()                # kernel-level: a network namespace whose only interface is a
    r = run_scons(project, "offline=1", prefix=prefix)   # loopback that is down; covers every subprocess
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

TRAP_DIR = Path(__file__).resolve().parent / "nettrap"


class NetTrap:
    """The record of tests/support/nettrap/sitecustomize.py for the processes started with env()."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.record = self.workdir / "attempts"
        self.clear()

    def env(self):
        path = [str(TRAP_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {"PYTHONPATH": os.pathsep.join(path), "MKDUMP_NET_TRAP": str(self.record)}

    def clear(self):
        for p in (self.record, self.record.with_name(self.record.name + ".loaded")):
            p.unlink(missing_ok=True)

    def attempts(self):
        """One line per attempt: "<pid> <call> <arguments>"."""
        return self.record.read_text().splitlines() if self.record.exists() else []

    def loaded(self):
        """The process ids that loaded the trap."""
        marker = self.record.with_name(self.record.name + ".loaded")
        return [int(l) for l in marker.read_text().split()] if marker.exists() else []


# Run inside the namespace: exits 0 only if its one interface is the loopback and a port on 127.0.0.1 where a
# server listens cannot be reached (so the loopback is down too), printing the error the attempt met.
_PROBE = """
import socket, sys
names = [name for _, name in socket.if_nameindex()]
if names != ["lo"]:
    sys.exit("interfaces: " + " ".join(names))
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
except OSError as e:
    print(e)
    sys.exit(0)
sys.exit("127.0.0.1 is reachable")
"""


def probe(prefix, port):
    """Run the probe under `prefix` against a loopback `port` where a server listens; the CompletedProcess."""
    return subprocess.run([*prefix, sys.executable, "-c", _PROBE, str(port)], text=True, capture_output=True,
                          timeout=60)


def netns_prefix(port):
    """(command prefix, None) that runs a program in a new network namespace, or (None, why not).

    As root `unshare --net`; otherwise `unshare -rn` (a user namespace maps us to root in it), which needs
    unprivileged user namespaces. The namespace is accepted only if the probe cannot reach `port` on 127.0.0.1,
    where a server of the test's listens.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "unshare (util-linux) is not installed"
    prefixes = ([[unshare, "--net", "--"]] if os.geteuid() == 0 else []) + [[unshare, "-rn", "--"]]
    why = []
    for prefix in prefixes:
        r = probe(prefix, port)
        if r.returncode == 0:
            return prefix, None
        lines = (r.stderr or r.stdout).strip().splitlines()
        why.append(f"`unshare {' '.join(prefix[1:-1])}`: {lines[-1] if lines else f'exit status {r.returncode}'}")
    return None, "no network namespace is available here (" + "; ".join(why) + ")"


def run_scons(project, *args, env=None, prefix=(), timeout=600):
    """Like support.project.scons, with an optional command prefix (e.g. from netns_prefix)."""
    e = dict(os.environ)
    e.pop("SOURCE_DATE_EPOCH", None)
    e.update(env or {})
    return subprocess.run([*prefix, sys.executable, "-m", "SCons", *args], cwd=project, env=e, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          timeout=timeout)
