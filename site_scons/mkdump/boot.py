"""Boot proofs: run a built 2.6.9 kernel under QEMU (software emulation) and read its serial console.

Every QEMU option comes from the [qemu] tables of kernel/arch/<arch>.toml. A boot is bounded in time: QEMU is
stopped at the timeout, or a few seconds after the console shows the kernel's last words (panic, power down) if it
does not exit by itself.
"""
import errno
import hashlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mkdump import arch as arches
from mkdump import bootdisk, initramfs, runner
from mkdump.kbuild import build_env, job_slots
from mkdump.errors import Interrupted, MkdumpError
from mkdump.logs import log_default

ROOT = Path(__file__).resolve().parents[2]
MODULE_SOURCE = ROOT / "kernel" / "boot-test" / "module"
MODULE_NAME = "mkdump_boot_test"

# Kept in step with kernel/boot-test/module/mkdump_boot_test.c and kernel/boot-test/init.c.
MODULE_MARKER = "mkdump-boot-test-module: init ran"
INIT_PREFIX = "mkdump-init:"

KINDS = ("minik", "system")
TAIL_LINES = 25

# The line each kind of boot must reach. The mini kernel is booted with neither a root disk nor an initrd, so the
# furthest it can get is the root mount. The system kernel runs our /init, which reports init_module's result.
LATE_POINTS = {
    "minik": [r"Kernel panic - not syncing: VFS: Unable to mount root fs\b.*"],
    "system": [re.escape(INIT_PREFIX) + r" init_module returned -?\d+"],
}
# Said by the kernel when it is done one way or another; after these QEMU only has to exit.
FINAL_WORDS = [r"Kernel panic - not syncing", r"^Power down\.", r"System halted\."]
# Failures seen before the late point make the boot a failure even if it got there.
FAULTS = [r"Kernel BUG at", r"^Oops:", r"Unable to handle kernel", r"general protection fault",
          r"invalid operand:", r"Kernel panic - not syncing"]

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-~])")
_BANNER = re.compile(r"Linux version (\S+) \((.*)")
_MEMORY = re.compile(r"Memory: (\d+)k/(\d+)k available")
_INIT_MODULE = re.compile(re.escape(INIT_PREFIX) + r" init_module returned (-?\d+)")

# What mkexec's init creates (README.mkdump, "Run Mini Kernel Dump": the load script writes to each of them).
# Kept in step with mkexec_entries in kernel/boot-test/init.c.
MKEXEC_PROC_ENTRIES = tuple(f"/proc/mkexec/{name}" for name in ("mem", "dumpdev", "parameter", "path", "stats"))
_MKEXEC_ABSENT = re.compile(re.escape(INIT_PREFIX) + r" no /mkexec\.ko in the initramfs")
_MKEXEC_UNREADABLE = re.compile(re.escape(INIT_PREFIX) + r" cannot read /mkexec\.ko: error (-?\d+)")
_MKEXEC_INIT_MODULE = re.compile(re.escape(INIT_PREFIX) + r" /mkexec\.ko init_module returned (-?\d+)")
_PROC_MOUNT = re.compile(re.escape(INIT_PREFIX) + r" mount proc on /proc returned (-?\d+)")
_PROC_ENTRY = re.compile(re.escape(INIT_PREFIX) + r" (/proc/mkexec/\w+) (?:present|missing: error (-?\d+))$")
_POWER_OFF = re.compile(re.escape(INIT_PREFIX) + r" powering off")
# The loader names the module in its complaints ("mkexec: Unknown symbol ...", "mkexec: version magic ...").
_MKEXEC_KERNEL_SAYS = re.compile(r"^(?:<\d>)?mkexec: ")


class BootError(MkdumpError):
    """A boot proof failed. str() is the sentence, then the console tail; .result is the BootResult."""

    def __init__(self, sentence, result=None):
        self.sentence = sentence
        self.result = result
        self.tail = console_tail(result.console) if result is not None else ""
        text = sentence
        if result is not None:
            text += f"\n--- last console lines ({result.exit_reason} after {result.seconds:.1f} s) ---\n"
            text += self.tail or "(the console stayed empty)"
        super().__init__(text)


@dataclass
class BootResult:
    console: str          # the serial console, normalised: "\n" line ends, no terminal escapes
    exit_reason: str      # "exited" (QEMU ended by itself), "stopped" (after the final words), "timeout"
    seconds: float
    returncode: int = None
    command: list = field(default_factory=list)
    qemu_stderr: str = ""
    append: str = ""

    def lines(self):
        return console_lines(self.console)


def normalise_console(raw):
    """Console bytes or text to plain lines: CRLF and lone CR become LF, terminal escapes go, a partial last
    line is kept as it is."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    text = _ANSI.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or ch >= " ")


def console_lines(text):
    return [line.rstrip() for line in text.split("\n")]


def console_tail(text, lines=TAIL_LINES):
    kept = [line for line in console_lines(text) if line.strip()]
    return "\n".join(kept[-lines:])


def load_qemu_config(arch, kind=None, *, arch_dir=arches.ARCH_DIR):
    """The QEMU settings for arch (and kernel kind): its arch file's [qemu] overlaid with [qemu.<kind>]."""
    return arches.load(arch, arch_dir).qemu_settings(kind)


_machine_cache = {}


def machines_known(binary):
    """The machine type names this QEMU binary supports, or None if it cannot be asked."""
    if binary not in _machine_cache:
        try:
            proc = subprocess.run([binary, "-machine", "help"], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=30)
            names = {line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()}
            _machine_cache[binary] = names if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            _machine_cache[binary] = None
    return _machine_cache[binary]


def choose_machine(config, known):
    """The configured machine if this QEMU knows it (or cannot tell), else the configured fallback."""
    machine = config["machine"]
    if known is not None and machine not in known and config.get("machine_fallback"):
        return config["machine_fallback"]
    return machine


def kernel_append(config, append, *, earlyprintk=False):
    """The kernel command line: the serial console first, then what the caller asks for."""
    parts = [f"console={config['console']},{config['baud']}"]
    if earlyprintk:
        parts.append(config["earlyprintk"])
    parts.append(append)
    return " ".join(p for p in parts if p)


def qemu_command(config, kernel_image, *, append, memory_mb=None, initrd=None, machine=None, smp=1, extra=()):
    """The QEMU argument list (no shell) for one boot; extra: further arguments (a disk)."""
    cmd = [config["binary"],
           "-machine", f"{machine or config['machine']},accel={config['accel']}"]
    if config.get("cpu"):
        cmd += ["-cpu", config["cpu"]]
    cmd += ["-m", str(memory_mb if memory_mb is not None else config["memory_mb"])]
    if smp > 1:
        cmd += ["-smp", str(smp)]
    cmd += list(config["args"]) + list(extra)
    cmd += ["-kernel", os.fspath(kernel_image), "-append", append]
    if initrd is not None:
        cmd += ["-initrd", os.fspath(initrd)]
    return cmd


def _stop(proc):
    """End QEMU: SIGTERM lets it close its files, SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def boot(arch, kernel_image, *, append, memory_mb=None, initrd=None, timeout=None, log=None, kind=None,
         earlyprintk=False, console_log=None, arch_dir=arches.ARCH_DIR, smp=1, extra=()):
    """Boot kernel_image under QEMU and return what its console said.

    memory_mb and timeout default to the arch file's [qemu] (or [qemu.<kind>]). console_log, if given, receives
    the raw console as it arrives (useful when a boot hangs). Raises MkdumpError if QEMU is missing or the image
    does not exist; a kernel that misbehaves is not an error here (see expect_boot).
    """
    log = log or log_default
    config = load_qemu_config(arch, kind, arch_dir=arch_dir)
    kernel_image = Path(kernel_image)
    if not kernel_image.is_file():
        raise MkdumpError(f"the kernel image {kernel_image} does not exist: build the kernel first.")
    if initrd is not None and not Path(initrd).is_file():
        raise MkdumpError(f"the initrd {initrd} does not exist: build it first.")
    if shutil.which(config["binary"]) is None:
        raise MkdumpError(f"{config['binary']} (named in {arches.load(arch, arch_dir).path}) was not found: "
                          f"install Debian's {config['package']} package.")
    timeout = config["timeout_seconds"] if timeout is None else timeout
    full_append = kernel_append(config, append, earlyprintk=earlyprintk)
    machine = choose_machine(config, machines_known(config["binary"]))
    cmd = qemu_command(config, kernel_image, append=full_append, memory_mb=memory_mb, initrd=initrd,
                       machine=machine, smp=smp, extra=extra)
    log(f"boot {arch}: {kernel_image.name} under {config['binary']} (bounded to {timeout:g} s)")

    final = re.compile("|".join(FINAL_WORDS), re.M)
    raw = bytearray()
    sink = open(console_log, "wb") if console_log else None
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise MkdumpError(f"cannot start {config['binary']}: {e.strerror}; check the QEMU installation.") \
                from None
        deadline = start + timeout
        stop_at = None
        reason = "exited"
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while True:
                    now = time.monotonic()
                    limit = deadline if stop_at is None else min(deadline, stop_at)
                    if now >= limit:
                        reason = "timeout" if now >= deadline else "stopped"
                        break
                    if not sel.select(limit - now):
                        continue
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        # The console closed: QEMU is on its way out; let it finish so its exit status is its own.
                        try:
                            proc.wait(config["grace_seconds"])
                        except subprocess.TimeoutExpired:
                            pass
                        break
                    # Only the lines this chunk touched: normalising the whole console per chunk is quadratic.
                    scan_from = max(raw.rfind(b"\n"), raw.rfind(b"\r")) + 1
                    raw += chunk
                    if sink:
                        sink.write(chunk)
                        sink.flush()
                    if stop_at is None and final.search(normalise_console(bytes(raw[scan_from:]))):
                        stop_at = time.monotonic() + config["grace_seconds"]
        finally:
            _stop(proc)
            proc.stdout.close()
            if sink:
                sink.close()
        seconds = time.monotonic() - start
        err.seek(0)
        stderr = err.read().decode("utf-8", errors="replace")
    result = BootResult(console=normalise_console(bytes(raw)), exit_reason=reason, seconds=seconds,
                        returncode=proc.returncode, command=cmd, qemu_stderr=stderr, append=full_append)
    log(f"boot {arch}: {reason} after {seconds:.1f} s")
    return result


def _find(lines, pattern):
    """Index and match of the first line matching pattern, or (None, None)."""
    rx = re.compile(pattern)
    for i, line in enumerate(lines):
        m = rx.search(line)
        if m:
            return i, m
    return None, None


def _first_fault(lines, start, end):
    """Index of the earliest line in lines[start:end] showing a kernel failure, or None."""
    hits = [i for pattern in FAULTS for i, _ in [_find(lines[start:end], pattern)] if i is not None]
    return start + min(hits) if hits else None


def _errno_text(ret):
    name = errno.errorcode.get(-ret, "")
    return f"{ret} {name}" if name else str(ret)


def mkexec_facts(lines, start=0):
    """What /init said about /mkexec.ko from console line start on: a dict with absent (bool), read_error,
    init_module_returned, proc_mount_returned (ints, None when not said), proc_mkexec ({entry path: 0 when
    present, else open()'s negative errno}) and end (the index after the last such line, start if none)."""
    facts = {"absent": False, "read_error": None, "init_module_returned": None, "proc_mount_returned": None,
             "proc_mkexec": {}, "end": start}
    for i in range(start, len(lines)):
        line = lines[i]
        if _MKEXEC_ABSENT.search(line):
            facts["absent"] = True
        elif m := _MKEXEC_UNREADABLE.search(line):
            facts["read_error"] = int(m.group(1))
        elif m := _MKEXEC_INIT_MODULE.search(line):
            facts["init_module_returned"] = int(m.group(1))
        elif m := _PROC_MOUNT.search(line):
            facts["proc_mount_returned"] = int(m.group(1))
        elif m := _PROC_ENTRY.search(line):
            facts["proc_mkexec"][m.group(1)] = int(m.group(2) or 0)
        else:
            continue
        facts["end"] = i + 1
    return facts


def _expect_mkexec(result, lines, start):
    """The /mkexec.ko part of a system boot, from console line start (after the test module's load) on."""
    facts = mkexec_facts(lines, start)
    if facts["absent"]:
        raise BootError("our /init found no /mkexec.ko in the initramfs: build it with boot_test_entries(..., "
                        "mkexec_ko=...).", result)
    if facts["read_error"] is not None:
        raise BootError(f"our /init could not read /mkexec.ko (error {_errno_text(facts['read_error'])}): the "
                        "initramfs member is damaged or too big for /init's buffer.", result)
    i_off, _ = _find(lines[start:], _POWER_OFF.pattern)
    end = start + i_off if i_off is not None else len(lines)
    i = _first_fault(lines, start, max(end, facts["end"]))
    if i is not None:
        raise BootError(f"the kernel failed at line {i + 1} of its console while loading mkexec.ko: "
                        f"{lines[i].strip()!r}.", result)
    ret = facts["init_module_returned"]
    if ret is None:
        raise BootError("our /init never reported /mkexec.ko's init_module result: it stopped while loading "
                        "mkexec.ko.", result)
    if ret != 0:
        said = "; ".join(line.strip() for line in lines[start:facts["end"]]
                         if _MKEXEC_KERNEL_SAYS.search(line.strip()))
        if "Unknown symbol" in said:
            what = "the system kernel does not export what mkexec.ko uses: apply PATCH/mkexec-v1.patch to it"
        elif "version magic" in said:
            what = "mkexec.ko was built against another kernel: rebuild it against this system kernel"
        else:
            what = "run the check stage on mkexec.ko (ELF class and machine, relocations, vermagic)"
        raise BootError(f"/mkexec.ko init_module returned {_errno_text(ret)}, so the system kernel refused "
                        f"mkexec.ko{' (the kernel said: ' + said + ')' if said else ''}; {what}.", result)
    passed = ["mkexec init_module returned 0"]
    mount = facts["proc_mount_returned"]
    if mount is None:
        raise BootError("our /init never reported mounting proc after loading mkexec.ko.", result)
    if mount != 0:
        raise BootError(f"mounting proc on /proc returned {_errno_text(mount)}: the system kernel needs "
                        "CONFIG_PROC_FS=y for mkexec's /proc/mkexec interface.", result)
    seen = facts["proc_mkexec"]
    missing = [f"{path} ({_errno_text(seen[path]) if path in seen else 'not checked'})"
               for path in MKEXEC_PROC_ENTRIES if seen.get(path) != 0]
    if missing:
        raise BootError(f"mkexec.ko loaded but {', '.join(missing)} did not appear: its init did not create the "
                        "/proc/mkexec entries the load script writes to.", result)
    passed.append(f"mkexec proc entries: {' '.join(MKEXEC_PROC_ENTRIES)} present")
    return passed


def expect_boot(result, *, kind, expect_memory_kb=None, memory_slack_kb=1024, expect_version="2.6.9",
                late_points=None, module_token=None, expect_mkexec=False):
    """Check a boot's console; return the checks that passed, one line each; raise BootError on the first failure.

    Checks: the banner names expect_version; the "Memory: <free>k/<total>k available" line, with total at most
    expect_memory_kb and at most memory_slack_kb below it (firmware keeps a little of the top); the kind's late
    point, with no oops, BUG or other panic before it. For kind="system": init_module returned 0 and the test
    module's init printed its marker (with module_token, if given); with expect_mkexec, also that /mkexec.ko's
    init_module returned 0 with no kernel failure on the way, proc mounted, and every MKEXEC_PROC_ENTRIES entry
    opened.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kernel kind {kind!r}")
    lines = result.lines()
    passed = []
    if not result.console.strip():
        qemu_said = result.qemu_stderr.strip()
        raise BootError("the kernel printed nothing on the serial console"
                        + (f" and QEMU said: {qemu_said}" if qemu_said else "")
                        + "; boot it again with earlyprintk (boot(..., earlyprintk=True), which appends "
                        "earlyprintk=serial,ttyS0,115200) to see an early failure.", result)

    i_banner, m = _find(lines, _BANNER.pattern)
    if m is None:
        raise BootError("the console shows no 'Linux version' banner: the kernel did not start (the output is the "
                        "firmware's or the boot loader's); rerun with earlyprintk=True.", result)
    version = m.group(1)
    if version != expect_version and not version.startswith(expect_version):
        raise BootError(f"the banner names Linux {version}, not {expect_version}: the wrong kernel image was "
                        "booted.", result)
    passed.append(f"banner: {lines[i_banner][m.start():].strip()}")

    i_mem, m = _find(lines, _MEMORY.pattern)
    if m is None:
        raise BootError("the kernel never reported its memory (no 'Memory: ...k/...k available' line): it stopped "
                        "before mem_init.", result)
    free_kb, total_kb = int(m.group(1)), int(m.group(2))
    if expect_memory_kb is not None:
        if not expect_memory_kb - memory_slack_kb <= total_kb <= expect_memory_kb:
            raise BootError(f"the kernel reports {total_kb}k of memory, but it was given {expect_memory_kb}k "
                            f"(accepted: {expect_memory_kb - memory_slack_kb}k to {expect_memory_kb}k): check the "
                            "mem= option and QEMU's -m.", result)
        passed.append(f"memory: {free_kb}k/{total_kb}k available, given {expect_memory_kb}k")
    else:
        passed.append(f"memory: {free_kb}k/{total_kb}k available")

    patterns = late_points if late_points is not None else LATE_POINTS[kind]
    i_late = None
    for pattern in patterns:
        i, m = _find(lines, pattern)
        if m is not None and (i_late is None or i < i_late):
            i_late = i
    i = _first_fault(lines, 0, i_late if i_late is not None else len(lines))
    if i is not None:
        raise BootError(f"the kernel failed at line {i + 1} of its console: {lines[i].strip()!r}.", result)
    if i_late is None:
        how = {"timeout": "QEMU was stopped at the time limit", "stopped": "QEMU was stopped after the kernel "
               "gave up", "exited": "QEMU exited"}[result.exit_reason]
        raise BootError(f"the {kind} kernel never reached its late point ({' or '.join(patterns)}); {how}.",
                        result)
    passed.append(f"late point: {lines[i_late].strip()}")

    if kind == "system":
        i, m = _find(lines, _INIT_MODULE.pattern)
        if m is None:
            raise BootError("our /init never reported init_module's result: it did not run or stopped early.",
                            result)
        ret = int(m.group(1))
        if ret != 0:
            name = errno.errorcode.get(-ret, "")
            # The console does not say the arch: every arch file's hint for a refused module, named by arch.
            hints = [f"on {a.name} {a.module_refused_hint}" for a in arches.load_all() if a.module_refused_hint]
            hint = f" ({'; '.join(hints)})" if ret == -8 and hints else ""
            raise BootError(f"init_module returned {ret} {name}: the system kernel refused the test module{hint}.",
                            result)
        passed.append("init_module returned 0")
        marker = MODULE_MARKER + (f" token={module_token}" if module_token is not None else "")
        i, m = _find(lines, re.escape(marker))
        if m is None:
            raise BootError(f"the test module's init did not print {marker!r}: init_module claimed success but the "
                            "module's init did not run.", result)
        passed.append(f"module init: {lines[i].strip()}")
    if expect_mkexec:
        if kind != "system":
            raise ValueError("only a system boot loads mkexec.ko")
        i_ret, _ = _find(lines, _INIT_MODULE.pattern)
        passed += _expect_mkexec(result, lines, i_ret + 1)
    return passed


_CPUS_UP = re.compile(r"Brought up (\d+) CPUs")


def expect_cpus(result, cpus):
    """The kernel brought up every CPU QEMU gave it (init/main.c: "Brought up N CPUs")."""
    i, m = _find(result.lines(), _CPUS_UP.pattern)
    if m is None:
        raise BootError(f"the kernel never said how many CPUs it brought up (no 'Brought up N CPUs' line) with "
                        f"-smp {cpus}: it is not an SMP kernel or stopped before smp_init.", result)
    if int(m.group(1)) != cpus:
        raise BootError(f"the kernel brought up {m.group(1)} of the {cpus} CPUs QEMU gave it: the secondary CPU "
                        "did not start.", result)
    return [f"cpus: {result.lines()[i].strip()}"]


def expect_plan(result, plan):
    """Each step of the disk plan succeeded: every module loaded, the disk appeared, ext3 mounted, the file read
    back with the content we wrote."""
    lines = result.lines()
    facts = bootdisk.plan_facts(lines)
    passed = []
    for name in plan.modules:
        ret = facts["insmod"].get(name)
        if ret is None:
            raise BootError(f"our /init never reported loading the module {name}: it stopped before.", result)
        if ret != 0:
            said = "; ".join(line.strip() for line in lines if re.match(rf"(?:<\d>)?{re.escape(name)}: ", line.strip()))
            raise BootError(f"loading the module {name} returned {_errno_text(ret)}"
                            + (f" (the kernel said: {said})" if said else "")
                            + f"; it was built by gcc 12 for the disk {plan.disk.name}.", result)
    if plan.modules:
        passed.append(f"modules loaded in order: {' '.join(plan.modules)}")
    steps = (("wait", f"the disk {plan.device} ({plan.disk.why}) never appeared"),
             ("mount", f"mounting {plan.device} as ext3 on {plan.mount_point} failed"))
    for step, what in () if plan.root else steps:
        ret = facts.get(step)
        if ret is None:
            raise BootError(f"our /init never reported the '{step}' step of the disk plan: it stopped before.",
                            result)
        if ret != 0:
            raise BootError(f"{what}: error {_errno_text(ret)}.", result)
    passed.append(f"disk: {plan.disk.name}, {plan.device} mounted as ext3" + (" (the root filesystem)" if plan.root
                                                                             else ""))
    got = facts.get("cat")
    if got != plan.content:
        raise BootError(f"reading {bootdisk.PROOF_FILE} from the disk gave "
                        f"{_errno_text(got) if isinstance(got, int) else repr(got)}, not {plan.content!r}.",
                        result)
    passed.append(f"file read back from the disk: {plan.content!r}")
    return passed


def _expect_or_diagnose(result, run, **checks):
    """expect_boot; if the kernel printed no banner, boot once more with earlyprintk so the error shows why
    (an early panic such as 'Cannot find space for the kernel page tables' is otherwise silent)."""
    try:
        return expect_boot(result, **checks)
    except BootError as e:
        if _BANNER.search(result.console) or "earlyprintk=" in result.append:
            raise
        early = run(earlyprintk=True)
        if not early.console.strip():
            raise
        raise BootError(e.sentence + " Booted again with earlyprintk; that console follows.", early) from None


def _report(arch, kind, result, checks, extra):
    report = {"arch": arch, "kind": kind, "seconds": round(result.seconds, 2), "exit_reason": result.exit_reason,
              "append": result.append, "command": result.command, "checks": checks}
    report.update(extra)
    return report


def minik_append(arch, mem_mb, dump_dev, *, arch_dir=arches.ARCH_DIR):
    """The README's step-4 command line: mem= less the arch file's [minik] mem_minus_mb (where 2.6.9 adds the
    first megabyte to mem=, the README asks for "the real value minus 1")."""
    mem_arg = mem_mb - arches.load(arch, arch_dir).mem_minus_mb
    return f"mem={mem_arg}M dump_dev={dump_dev} panic=1"


# Said by 2.6.9's check_timer() when the timer ticks it waits for during a calibrated busy loop do not come. Under
# QEMU's TCG the loop runs at whatever speed the host gives it at that moment, so on a busy host it can end before
# the ticks do (the same kernel then boots on the next try; -icount makes timing steady but hangs SMP boots).
EMULATION_TIMING = re.compile(r"IO-APIC \+ timer doesn't work")
BOOT_ATTEMPTS = 3


def _boot_steadily(run, log):
    """run() until its console is not a timer check that emulation timing defeated, at most BOOT_ATTEMPTS times;
    returns the result and how many boots were retried for that reason."""
    log = log or log_default
    for attempt in range(BOOT_ATTEMPTS):
        result = run()
        if not EMULATION_TIMING.search(result.console) or attempt == BOOT_ATTEMPTS - 1:
            return result, attempt
        log("boot: the kernel's timer check failed under emulation on a busy host (IO-APIC + timer doesn't "
            "work); booting again")
    raise AssertionError("unreachable")


def checked_boot(run, log, **checks):
    """Boot with run() as steadily as emulation allows (_boot_steadily), then check the console (expect_boot,
    with an earlyprintk boot for a silent failure). Returns (result, the passed checks, boots retried)."""
    result, retried = _boot_steadily(run, log)
    return result, _expect_or_diagnose(result, run, **checks), retried


def reported_memory_kb(console):
    """The memory the kernel says it has available (its 'Memory: ...k/...k available' line), or None."""
    m = _MEMORY.search(console)
    return int(m.group(1)) if m else None


def prove_minik(arch, bzimage, *, mem_mb=8, dump_dev="0x300000", memory_mb=None, timeout=None, log=None,
                console_log=None, arch_dir=arches.ARCH_DIR):
    """Boot the mini kernel stand-alone as README step 4 does (mem=, dump_dev=) in a machine of memory_mb
    (default: the arch file's [qemu.minik], the 8 MiB the mini kernel really gets) and check the banner, that the
    memory it reports is at most mem_mb (and not much less), and the root-mount panic. Returns a JSON-able
    report; raises BootError (or MkdumpError for a missing QEMU or image)."""
    memory_mb = memory_mb or load_qemu_config(arch, "minik", arch_dir=arch_dir)["memory_mb"]

    def run(earlyprintk=False):
        return boot(arch, bzimage, append=minik_append(arch, mem_mb, dump_dev, arch_dir=arch_dir),
                    memory_mb=memory_mb, timeout=timeout, log=log, kind="minik", console_log=console_log,
                    arch_dir=arch_dir, earlyprintk=earlyprintk)

    result, checks, retried = checked_boot(run, log, kind="minik", expect_memory_kb=mem_mb * 1024)
    return _report(arch, "minik", result, checks, {"memory_mb": memory_mb, "mem_mb": mem_mb,
                                                   "timer_check_retries": retried})


def module_token(module_bytes):
    """A token the kernel has never seen, fixed by the module's bytes so the initramfs stays reproducible."""
    return hashlib.sha256(module_bytes).hexdigest()[:16]


def _read_module(path, what):
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise MkdumpError(f"cannot read the {what} {path}: {e.strerror}; build it first.") from None


def prove_system(arch, bzimage, module_ko, *, toolchain_cc, extra_module=None, timeout=None, log=None,
                 console_log=None, workdir=None, arch_dir=arches.ARCH_DIR, smp=1, disk_tree=None,
                 config_values=None, serial_console=True):
    """Boot the system kernel with an initramfs holding our /init and module_ko; pass only if init_module
    returned 0 and the module's init printed its marker with our token. With extra_module (a built mkexec.ko),
    /init then loads it with no parameters, as the README's insmod does; the boot passes only if its init_module
    also returned 0 and the /proc/mkexec entries appeared, and the report gains "mkexec" with those facts.
    smp > 1: QEMU gets that many CPUs and the kernel must bring them all up. disk_tree (the built system tree)
    with its config_values: an ext3 disk on a controller the configuration drives is attached, and /init loads the
    disk's and ext3's modules from the tree in dependency order, mounts it and reads a file back (bootdisk).
    serial_console=False (a configuration without SERIAL_8250_CONSOLE, such as some arch's defconfig): the kernel
    keeps its early serial console for the whole boot and /init writes through the kernel log.
    Returns a JSON-able report; raises BootError, or MkdumpError for a missing input."""
    module_bytes = _read_module(module_ko, "boot-test module")
    token = module_token(module_bytes)
    mkexec_bytes = None if extra_module is None else _read_module(extra_module, "mkexec module")
    with tempfile.TemporaryDirectory(prefix="mkdump-boot-", dir=workdir) as tmp:
        init_path = initramfs.build_init(arch, toolchain_cc=toolchain_cc, out_path=Path(tmp) / "init", log=log)
        entries = initramfs.boot_test_entries(init_path.read_bytes(), module_bytes, f"token={token}", mkexec_bytes,
                                              via_kmsg=not serial_console)
        content = f"mkdump boot proof {token}"
        config = load_qemu_config(arch, "system", arch_dir=arch_dir)
        append = "panic=1" if serial_console else f"{config['earlyprintk']},keep panic=1"
        plan = initrd = None
        image = b""
        if disk_tree is not None and bootdisk.needs_root_disk(config_values):
            # No initrd support: the disk holds /init and everything it loads, and the kernel mounts it as /.
            plan = bootdisk.prepare(disk_tree, config_values, tmp, content=content, root_entries=entries)
            append += f" root={plan.device} ro init=/init"
        else:
            if disk_tree is not None:
                plan = bootdisk.prepare(disk_tree, config_values, tmp, content=content)
                entries += initramfs.plan_entries(plan)
            image = initramfs.gzip_bytes(initramfs.newc_archive(entries))
            initrd = Path(tmp) / "initramfs.cpio.gz"
            initrd.write_bytes(image)

        def run(earlyprintk=False):
            return boot(arch, bzimage, append=append, initrd=initrd, timeout=timeout, log=log, kind="system",
                        console_log=console_log, arch_dir=arch_dir, earlyprintk=earlyprintk, smp=smp,
                        extra=plan.qemu_args() if plan is not None else ())

        memory_mb = config["memory_mb"]
        result, checks, retried = checked_boot(run, log, kind="system", module_token=token,
                                               expect_memory_kb=memory_mb * 1024,
                                               expect_mkexec=extra_module is not None)
        if smp > 1:
            checks += expect_cpus(result, smp)
        if plan is not None:
            checks += expect_plan(result, plan)
    extra = {"initramfs_bytes": len(image), "module_token": token, "smp": smp, "timer_check_retries": retried}
    if plan is not None:
        extra["disk"] = {"name": plan.disk.name, "device": plan.device, "modules": list(plan.modules),
                         "root": plan.root}
    if extra_module is not None:
        lines = result.lines()
        i_ret, _ = _find(lines, _INIT_MODULE.pattern)
        facts = mkexec_facts(lines, i_ret + 1)
        extra["mkexec"] = {"module": os.fspath(extra_module), "bytes": len(mkexec_bytes),
                           "sha256": hashlib.sha256(mkexec_bytes).hexdigest(),
                           "init_module_returned": facts["init_module_returned"],
                           "proc_mount_returned": facts["proc_mount_returned"],
                           "proc_mkexec_present": [p for p in MKEXEC_PROC_ENTRIES
                                                   if facts["proc_mkexec"].get(p) == 0]}
    return _report(arch, "system", result, checks, extra)


def build_test_module(tree, out_dir, *, make_args, jobs=1, log=None):
    """Build the boot-test module against a configured, built kernel tree, 2.6.9 external-module style
    (make -C tree <make_args> SUBDIRS=<dir> modules). make_args carries ARCH= and CC=. Returns the .ko path; make's
    output is in <out_dir>.log."""
    log = log or log_default
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(MODULE_SOURCE, out_dir)
    log_path = out_dir.with_name(out_dir.name + ".log")
    slots, cmd, header = job_slots(jobs, ["make", "-C", os.fspath(tree), *make_args, f"SUBDIRS={out_dir}",
                                          "modules"])
    log(f"boot-test: building the test module against {tree} (log: {log_path})")
    done = runner.run(cmd, cwd=None, env=build_env(), log_path=log_path, log_header="$ " + header, jobs=slots)
    if done.stopped == "interrupt":
        raise Interrupted(f"building the boot-test module against {tree} was interrupted (make was stopped by "
                          f"{done.interrupted_by}); run again.")
    ko = out_dir / f"{MODULE_NAME}.ko"
    if done.returncode != 0 or not ko.is_file():
        tail = "\n".join("".join(done.lines).strip().splitlines()[-20:])
        raise MkdumpError(f"building the boot-test module against {tree} failed with `{header}`: build "
                          f"the kernel's modules first (full log: {log_path}). Last output:\n{tail}")
    return ko
