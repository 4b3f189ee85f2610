"""A network trap for tests: every Python started with this directory on PYTHONPATH fails each attempt to reach
the network, and appends one line per attempt to the file named by $MKDUMP_NET_TRAP, so a test can assert that
a build made none (tests/test_offline.py; support/nettrap_run.py starts processes under it).

It also appends its process id to $MKDUMP_NET_TRAP.loaded, so a test can tell that the trap was really in place:
an empty record from a process that never loaded it would prove nothing. Unix-domain sockets are left alone: they
are local IPC, which a network namespace does not stop either.
"""
import errno
import importlib.machinery
import importlib.util
import os
import socket
import sys

_RECORD = os.environ.get("MKDUMP_NET_TRAP")


def _append(path, line):
    # One write on an O_APPEND file: lines of concurrent processes do not interleave.
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _attempt(what, detail):
    _append(_RECORD, f"{os.getpid()} {what} {detail!r}")


def _refused(what):
    return OSError(errno.ENETUNREACH, f"refused by the network trap of the tests ({what})")


def _module_trap(name, error):
    def trapped(*args, **kwargs):
        _attempt(name, args)
        raise error(name)
    trapped.__name__ = name
    setattr(socket, name, trapped)


def _method_trap(name):
    original = getattr(socket.socket, name)

    def trapped(self, *args):
        if self.family == socket.AF_UNIX:
            return original(self, *args)
        _attempt(f"socket.{name}", args)
        raise _refused(f"socket.{name}")
    trapped.__name__ = name
    setattr(socket.socket, name, trapped)


def _install():
    # A failed name lookup is what an offline machine sees first, and what the fetcher does not retry.
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        _module_trap(name, lambda what: socket.gaierror(socket.EAI_NONAME, f"refused by the network trap of the tests ({what})"))
    _module_trap("create_connection", _refused)
    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        _method_trap(name)
    _append(_RECORD + ".loaded", str(os.getpid()))


def _chain():
    """Run the sitecustomize this file shadows (Debian ships one), so the process differs only by the trap."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


if _RECORD:
    _install()
_chain()
