"""Whether a process group still has live members, read from /proc (a zombie waiting for its parent is not live)."""
import os
import time


def members(pgid):
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry))
    return alive


def gone_within(pgid, seconds):
    deadline = time.monotonic() + seconds
    while members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
