"""The load script: README.mkdump's "Run Mini Kernel Dump" steps 1-2 as a POSIX sh script for the target machine.

The README's steps are `insmod mkexec.ko` and five `echo ... > /proc/mkexec/<entry>` lines with caveats that are easy
to get wrong by hand: the memory size must be a multiple of 4 MB and is written minus 1 on some arches (the arch
file's [minik] mem_minus_mb); the dump device
is a number with the major in the high 12 bits and the minor in the low 20. Here the values are validated at build
time and baked into the script as defaults; the script validates the same way any override given on its own
command line, so nothing unchecked reaches /proc/mkexec.

The script's options: --mem MB, --dump-dev DEV, --param STRING, --path FILE, --module FILE, --dry-run, --help.
It runs insmod only when /proc/mkexec is absent, exits 2 with one line on stderr for any refused value, and reads
the environment variable MKDUMP_PROC as the /proc root (default /proc), so tests can run it against a scratch
directory.

Device names are encoded from the static 2.6 numbering (Documentation/devices.txt): IDE disks hda..hdt, SCSI disks
sda..sdiv. The script on the target reads a /dev node's numbers with stat instead.
"""
import re
import string

from . import arch as arches
from .errors import MkdumpError

MAJOR_BITS = 12
MINOR_BITS = 20
# Beyond this no mini kernel makes sense (the README suggests 4 or 8), and the script's shell arithmetic stays small.
MAX_MEM_MB = 1 << 20

# devices.txt: IDE interfaces 0..9, two disks each (minor 0 and 64), 63 partitions per disk.
IDE_MAJORS = (3, 22, 33, 34, 56, 57, 88, 89, 90, 91)
IDE_PARTITIONS = 63
# devices.txt: SCSI disks 0-15 on major 8, 16-127 on 65-71, 128-255 on 128-135; 16 minors each, 15 partitions.
SD_MAJORS = (8, 65, 66, 67, 68, 69, 70, 71, 128, 129, 130, 131, 132, 133, 134, 135)
SD_PARTITIONS = 15

_DEV_FORMS = "a /dev/hdXN or /dev/sdXN name, MAJOR:MINOR in decimal, or 0xHEX (major << 20 | minor)"


def script_name(arch):
    """The installed name of the load script for `arch`."""
    _check_arch(arch)
    return f"mkdump-load-{arch}"


def _check_arch(arch):
    """The arch's facts (mkdump.arch); every arch mkdump builds has a load procedure."""
    if arch not in arches.names():
        raise MkdumpError(f"arch {arch!r} has no mkexec load procedure; use one of {', '.join(arches.names())}")
    return arches.load(arch)


def _sd_index(letters):
    """sda=0 ... sdz=25, sdaa=26 ...: bijective base 26, as the 2.6 sd driver names its disks."""
    index = 0
    for c in letters:
        index = index * 26 + (ord(c) - ord("a") + 1)
    return index - 1


def _name_to_numbers(value):
    name = value[5:] if value.startswith("/dev/") else value
    m = re.fullmatch(r"hd([a-t])([1-9][0-9]*)?", name)
    if m:
        disk = ord(m.group(1)) - ord("a")
        part = int(m.group(2) or 0)
        if part > IDE_PARTITIONS:
            raise MkdumpError(f"dump_dev {value!r}: an IDE disk has partitions 1-{IDE_PARTITIONS}; pick one of those")
        return IDE_MAJORS[disk // 2], (disk % 2) * 64 + part
    m = re.fullmatch(r"sd([a-z]+)([1-9][0-9]*)?", name)
    if m:
        disk = _sd_index(m.group(1))
        part = int(m.group(2) or 0)
        if disk >= 16 * len(SD_MAJORS):
            raise MkdumpError(f"dump_dev {value!r}: 2.6.9 names SCSI disks sda to sdiv only (256 disks); "
                              "give MAJOR:MINOR instead")
        if part > SD_PARTITIONS:
            raise MkdumpError(f"dump_dev {value!r}: a SCSI disk has partitions 1-{SD_PARTITIONS}; pick one of those")
        return SD_MAJORS[disk // 16], (disk % 16) * 16 + part
    raise MkdumpError(f"dump_dev {value!r} is not a device name known here (hda-hdt, sda-sdiv, with an optional "
                      f"partition number); give it as MAJOR:MINOR (see `ls -l {value}` on the target) or 0xHEX")


def _check_numbers(value, major, minor):
    if major >= 1 << MAJOR_BITS:
        raise MkdumpError(f"dump_dev {value!r}: major {major} does not fit in {MAJOR_BITS} bits (below "
                          f"{1 << MAJOR_BITS}); check the device number")
    if minor >= 1 << MINOR_BITS:
        raise MkdumpError(f"dump_dev {value!r}: minor {minor} does not fit in {MINOR_BITS} bits (below "
                          f"{1 << MINOR_BITS}); check the device number")
    if major == 0:
        raise MkdumpError(f"dump_dev {value!r} has major 0, which is no block device; give the dump partition")


def encode_dump_dev(value):
    """The dump device as mkexec wants it: major << 20 | minor.

    `value` is a name ("/dev/sdb2" or "sdb2", hd[a-t] and sd[a-z]+ with an optional partition), "MAJOR:MINOR" in
    decimal, or "0xHEX". Raises MkdumpError for anything else, numbers out of range, major 0, unknown names and
    partitions beyond what the disk type has.
    """
    if not isinstance(value, str):
        raise MkdumpError(f"dump_dev {value!r} must be a string: {_DEV_FORMS}")
    m = re.fullmatch(r"0[xX]([0-9a-fA-F]+)", value)
    if m:
        if len(m.group(1).lstrip("0")) > 8:
            raise MkdumpError(f"dump_dev {value!r} has more than 32 bits (12-bit major, 20-bit minor); "
                              "check the number")
        number = int(m.group(1), 16)
        major, minor = number >> MINOR_BITS, number & ((1 << MINOR_BITS) - 1)
    elif ":" in value:
        m = re.fullmatch(r"(0|[1-9][0-9]*):(0|[1-9][0-9]*)", value)
        if not m:
            raise MkdumpError(f"dump_dev {value!r}: write MAJOR:MINOR as two decimal numbers without leading "
                              "zeros, e.g. 8:18")
        major, minor = int(m.group(1)), int(m.group(2))
    else:
        major, minor = _name_to_numbers(value)
    _check_numbers(value, major, minor)
    return major << MINOR_BITS | minor


def format_dump_dev(number):
    """The text written to /proc/mkexec/dumpdev, as in the README's example `echo "0x800012"`."""
    return f"0x{number:x}"


def mem_value(arch, mem_mb):
    """What goes into /proc/mkexec/mem for a mini kernel of `mem_mb` MB: a multiple of 4, at least 4, less the
    arch file's [minik] mem_minus_mb (the README's "real value minus 1")."""
    facts = _check_arch(arch)
    if isinstance(mem_mb, bool) or not isinstance(mem_mb, int):
        raise MkdumpError(f"minik_mem {mem_mb!r} must be a whole number of MB (a multiple of 4, e.g. 8)")
    if mem_mb < 4 or mem_mb % 4:
        raise MkdumpError(f"minik_mem {mem_mb} MB: the mini kernel memory must be a multiple of 4 MB and at least 4 "
                          "(README.mkdump); 4 or 8 is enough")
    if mem_mb >= MAX_MEM_MB:
        raise MkdumpError(f"minik_mem {mem_mb} MB is more than 1 TiB, which no mini kernel needs; "
                          "README.mkdump says 4 or 8 is enough")
    return mem_mb - facts.mem_minus_mb


def _check_parameters(parameters, limit):
    if parameters is None:
        return ""
    if not isinstance(parameters, str):
        if not all(isinstance(p, str) for p in parameters):
            raise MkdumpError(f"mini kernel parameters {parameters!r} must be strings")
        parameters = " ".join(parameters)
    if "\n" in parameters or "\0" in parameters:
        raise MkdumpError(f"mini kernel parameters {parameters!r} hold a newline or NUL; give one line")
    if len(parameters.encode()) > limit:
        raise MkdumpError(f"mini kernel parameters are {len(parameters.encode())} bytes; 2.6.9's command line holds "
                          f"at most {limit}, so shorten them")
    return parameters


def _check_path(what, path):
    if not isinstance(path, str) or not path.startswith("/") or "\n" in path or "\0" in path:
        raise MkdumpError(f"{what} {path!r} must be an absolute path on the target machine, on one line")
    return path


def _sh_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


_TEMPLATE = string.Template(r"""#!/bin/sh
# $name: load the mkdump mini kernel (README.mkdump, "Run Mini Kernel Dump", steps 1 and 2).
# Generated by mkdump-build. The defaults below were validated when it was built; options given here are validated
# the same way before anything is written.
#
# Environment: MKDUMP_PROC is the /proc root to use (default /proc); tests point it at a scratch directory.
set -u

me=$${0##*/}
MEM_BIAS=$bias
MEM=$mem
DUMP_DEV=$dump_dev
PARAM=$param
IMAGE=$image
MODULE=$module
DRY_RUN=0
PROC=$${MKDUMP_PROC:-/proc}
NL='
'

usage() {
	cat <<EOF
usage: $$me [--mem MB] [--dump-dev DEV] [--param STRING] [--path FILE] [--module FILE] [--dry-run]
  --mem MB        mini kernel memory in MB, a multiple of 4, at least 4 (default $$MEM)$mem_note
  --dump-dev DEV  dump device: /dev/NAME (its numbers are read with stat), MAJOR:MINOR in decimal,
                  or 0xHEX = major << 20 | minor (default $$DUMP_DEV)
  --param STRING  kernel parameters for the mini kernel, one line, at most $max_param bytes (default '$$PARAM')
  --path FILE     the mini kernel image vmlinux.bin (default $$IMAGE)
  --module FILE   mkexec.ko, loaded with insmod unless $$PROC/mkexec exists (default $$MODULE)
  --dry-run       validate, then print what would be run and written; change nothing
EOF
}

die() {
	printf '%s: %s\n' "$$me" "$$*" >&2
	exit 2
}

need_value() {
	[ $$# -ge 2 ] || die "$$1 needs a value (try --help)"
}

while [ $$# -gt 0 ]; do
	case $$1 in
	--mem) need_value "$$@"; MEM=$$2; shift 2 ;;
	--mem=*) MEM=$${1#*=}; shift ;;
	--dump-dev) need_value "$$@"; DUMP_DEV=$$2; shift 2 ;;
	--dump-dev=*) DUMP_DEV=$${1#*=}; shift ;;
	--param) need_value "$$@"; PARAM=$$2; shift 2 ;;
	--param=*) PARAM=$${1#*=}; shift ;;
	--path) need_value "$$@"; IMAGE=$$2; shift 2 ;;
	--path=*) IMAGE=$${1#*=}; shift ;;
	--module) need_value "$$@"; MODULE=$$2; shift 2 ;;
	--module=*) MODULE=$${1#*=}; shift ;;
	--dry-run) DRY_RUN=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$$1' (try --help)" ;;
	esac
done

# A decimal number without leading zeros (the shell would read 010 as octal) and short enough for its arithmetic.
is_decimal() {
	case $$1 in
	0) return 0 ;;
	''|0*|*[!0-9]*) return 1 ;;
	esac
	[ $${#1} -le 9 ]
}

check_mem() {
	is_decimal "$$MEM" || die "--mem '$$MEM' is not a number of MB; give a multiple of 4, at least 4 (e.g. 8)"
	if [ "$$MEM" -lt 4 ] || [ $$((MEM % 4)) -ne 0 ]; then
		die "--mem $$MEM: the mini kernel memory must be a multiple of 4 MB and at least 4; 4 or 8 is enough"
	fi
	[ "$$MEM" -lt $max_mem ] || die "--mem $$MEM MB is more than 1 TiB, which no mini kernel needs"
}

# Sets DEVNUM to the 0x form of major << 20 | minor.
encode_dev() {
	dev=$$1
	case $$dev in
	0[xX]*)
		hex=$${dev#0[xX]}
		case $$hex in
		''|*[!0-9a-fA-F]*) die "--dump-dev '$$dev' is not a hexadecimal number" ;;
		esac
		while [ $${#hex} -gt 1 ] && [ "$${hex#0}" != "$$hex" ]; do hex=$${hex#0}; done
		[ $${#hex} -le 8 ] || die "--dump-dev '$$dev' has more than 32 bits (12-bit major, 20-bit minor)"
		num=$$((0x$$hex))
		major=$$((num >> 20))
		minor=$$((num & 1048575))
		;;
	*:*)
		major=$${dev%%:*}
		minor=$${dev#*:}
		if ! is_decimal "$$major" || ! is_decimal "$$minor"; then
			die "--dump-dev '$$dev': write MAJOR:MINOR as two decimal numbers without leading zeros, e.g. 8:18"
		fi
		;;
	*)
		case $$dev in
		/*) node=$$dev ;;
		*) node=/dev/$$dev ;;
		esac
		[ -b "$$node" ] || die "--dump-dev '$$dev': $$node is not a block device here; give /dev/NAME, MAJOR:MINOR or 0xHEX"
		numbers=$$(stat -L -c '%t %T' "$$node") || die "--dump-dev '$$dev': cannot read the device numbers of $$node with stat"
		major=$$((0x$${numbers% *}))
		minor=$$((0x$${numbers#* }))
		;;
	esac
	[ "$$major" -lt 4096 ] || die "--dump-dev '$$dev': major $$major does not fit in 12 bits (below 4096)"
	[ "$$minor" -lt 1048576 ] || die "--dump-dev '$$dev': minor $$minor does not fit in 20 bits (below 1048576)"
	[ "$$major" -ne 0 ] || die "--dump-dev '$$dev' has major 0, which is no block device; give the dump partition"
	DEVNUM=$$(printf '0x%x' $$((major << 20 | minor)))
}

check_line() {
	case $$2 in
	*"$$NL"*) die "$$1 holds a newline; give one line" ;;
	esac
}

check_mem
[ -n "$$DUMP_DEV" ] || die "no dump device was set when this script was built; give --dump-dev /dev/NAME, MAJOR:MINOR or 0xHEX"
encode_dev "$$DUMP_DEV"
check_line --param "$$PARAM"
[ $$(printf '%s' "$$PARAM" | wc -c) -le $max_param ] || die "--param is longer than $max_param bytes, the 2.6.9 command line limit"
check_line --path "$$IMAGE"
case $$IMAGE in
/*) ;;
*) die "--path '$$IMAGE' must be an absolute path" ;;
esac
[ -f "$$IMAGE" ] && [ -r "$$IMAGE" ] || die "--path $$IMAGE: no readable mini kernel image there"

run() {
	if [ "$$DRY_RUN" = 1 ]; then
		printf '%s\n' "$$*"
		return
	fi
	"$$@" || die "'$$*' failed"
}

put() {
	entry=$$PROC/mkexec/$$1
	if [ "$$DRY_RUN" = 1 ]; then
		printf 'echo "%s" > %s\n' "$$2" "$$entry"
		return
	fi
	[ -e "$$entry" ] || die "$$entry is missing: the loaded mkexec module is not the one this script was made for"
	printf '%s\n' "$$2" > "$$entry" || die "writing '$$2' to $$entry failed"
}

if [ -d "$$PROC/mkexec" ]; then
	[ "$$DRY_RUN" = 1 ] || printf '%s: %s exists, mkexec is loaded already\n' "$$me" "$$PROC/mkexec"
else
	if [ "$$DRY_RUN" != 1 ]; then
		[ -f "$$MODULE" ] || die "--module $$MODULE: no such file"
	fi
	run insmod "$$MODULE"
	[ "$$DRY_RUN" = 1 ] || [ -d "$$PROC/mkexec" ] || die "insmod $$MODULE succeeded but $$PROC/mkexec did not appear"
fi
put mem $$((MEM - MEM_BIAS))
put dumpdev "$$DEVNUM"
[ -z "$$PARAM" ] || put parameter "$$PARAM"
put path "$$IMAGE"
put stats 1
[ "$$DRY_RUN" = 1 ] || printf '%s: mini kernel %s loaded (%s MB, dump device %s)\n' "$$me" "$$IMAGE" "$$MEM" "$$DEVNUM"
""")


def render_load_script(*, arch, mem_mb, dump_dev, parameters, vmlinux_bin_path, module_path):
    """The load script's text, with validated values baked in as defaults. Same inputs, same bytes.

    dump_dev None bakes in no device: the script then insists on --dump-dev.

    Raises MkdumpError when a value would be refused (see mem_value, encode_dump_dev; parameters must be one line
    of at most 255 bytes; both paths absolute).
    """
    mem_value(arch, mem_mb)
    facts = _check_arch(arch)
    # COMMAND_LINE_SIZE counts the terminating NUL.
    max_param = facts.command_line_size - 1
    dump_dev_text = "" if dump_dev is None else format_dump_dev(encode_dump_dev(dump_dev))
    parameters = _check_parameters(parameters, max_param)
    return _TEMPLATE.substitute(
        name=script_name(arch),
        bias=facts.mem_minus_mb,
        mem=mem_mb,
        dump_dev=_sh_quote(dump_dev_text),
        param=_sh_quote(parameters),
        image=_sh_quote(_check_path("vmlinux.bin path", vmlinux_bin_path)),
        module=_sh_quote(_check_path("mkexec.ko path", module_path)),
        mem_note=f"; written minus {facts.mem_minus_mb} on {arch}" if facts.mem_minus_mb else "",
        max_mem=MAX_MEM_MB,
        max_param=max_param,
    )
