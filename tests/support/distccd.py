"""A distcc server on loopback for the tests: started on a free port, stopped by its process group.

Debian's distccd runs only compilers masqueraded in /usr/lib/distcc (gcc, x86_64-linux-gnu-gcc, ... are), and
started as root it drops to the user `distccd` (it refuses to keep root), which must be able to reach and write its
log file: so the server's files live in a directory of their own under the system's temporary directory (pytest's
are private to the user running the tests).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distccd:
    def __init__(self, client_state):
        self.state = Path(client_state)
        self.workdir = None
        self.log_path = None
        self.port = None
        self.proc = None

    def start(self):
        self.state.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="mkdump-distccd-"))
        self.workdir.chmod(0o755)
        self.log_path = self.workdir / "distccd.log"
        self.log_path.touch()
        self.log_path.chmod(0o666)
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [shutil.which("distccd"), "--daemon", "--no-detach", "--listen", "127.0.0.1", "--port", str(self.port),
             "--allow", "127.0.0.1", "--jobs", "2", "--log-file", str(self.log_path), "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while "listening on" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"distccd did not start on 127.0.0.1:{self.port}:\n{log}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc is not None:
            # The daemon preforks workers into the session it leads: end that process group, and only that.
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def client_env(self):
        """The client's settings: this server only, and no local fallback that could hide a failure."""
        return {"DISTCC_HOSTS": f"127.0.0.1:{self.port}", "DISTCC_FALLBACK": "0", "DISTCC_SKIP_LOCAL_RETRY": "1",
                "DISTCC_DIR": str(self.state)}

    def log(self):
        return self.log_path.read_text(errors="replace")

    def jobs(self):
        """(status, source file) of each job the server ran, from its log's job summaries."""
        return re.findall(r"\(dcc_job_summary\) client: \S+ (\w+) .* (\S+)$", self.log(), re.MULTILINE)
