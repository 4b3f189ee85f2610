"""A stand-in for the unreachable upstream archive mkexec-2.6.9-1.0-update1.taz.

Shaped after README.mkdump ("Make mkexec") and docs/sources.md: a compressed tar whose single top directory
`mkexec/` holds
  PATCH/mkexec-v1.patch      a patch for the system kernel (here: a new file kernel/mkexec_stub.c exporting
                             mkexec_stub_version(), plus the kernel/Makefile line that builds it)
  Makefile                   `make ARCH=<arch>` at the top runs `make -C kernel`
  kernel/Makefile.base       KVER, KDIR, KMODDIR with defaults that are wrong for this machine, as upstream's were
  kernel/Makefile            a 2.6 external module Makefile that includes Makefile.base
  kernel/mkexec.c            a module creating /proc/mkexec/{mem,dumpdev,parameter,path,stats} and calling the
                             symbol the patch exports, so a build against an unpatched kernel fails at modpost
  include/asm-i386/, include/asm-x86_64/   one header each, reached as <asm/mkexec_arch.h> through the
                             include/asm link the user had to make

The kernel patch is generated against the tree it is meant for, so it applies both to the real 2.6.9 tree and to
the tiny tree from tiny_tree(). Everything written is deterministic (sorted members, fixed owner and mtime).
"""
import bz2
import difflib
import gzip
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

# 2005-08-26, the upstream file's date, so archives are byte-for-byte stable.
MTIME = 1125014400

STUB_C = """\
/*
 * mkexec stand-in: the system kernel side of mkexec. Upstream's patch hooks panic() to start the mini kernel;
 * the stand-in only exports a symbol so that mkexec.ko can be shown to need this patch.
 */
#include <linux/kernel.h>
#include <linux/module.h>

int mkexec_stub_version(void)
{
	return 1;
}
EXPORT_SYMBOL(mkexec_stub_version);
"""

MAKEFILE_LINE = "obj-y += mkexec_stub.o\n"

TOP_MAKEFILE = """\
# mkexec stand-in: README step "make ARCH=i386" runs here.
all:
\t$(MAKE) -C kernel

clean:
\t$(MAKE) -C kernel clean

.PHONY: all clean
"""

KERNEL_MAKEFILE = """\
# mkexec stand-in: a 2.6 external module; kbuild reads this file again with KERNELRELEASE set.
ifneq ($(KERNELRELEASE),)
EXTRA_CFLAGS += -I$(src)/../include
obj-m := mkexec.o
else
include Makefile.base
PWD := $(shell pwd)

all: modules

modules:
\t$(MAKE) -C $(KDIR) SUBDIRS=$(PWD) modules

install: modules
\tinstall -d $(KMODDIR)
\tinstall -m 644 mkexec.ko $(KMODDIR)

clean:
\trm -rf *.o *.ko *.mod.c .*.cmd .tmp_versions

.PHONY: all modules install clean
endif
"""

MAKEFILE_BASE = """\
# Edit KVER, KDIR and KMODDIR for your system (README "Make mkexec", step 3).
{o}KVER = 2.6.9-mkexec
{o}KDIR = /usr/src/linux-$(KVER)
{o}KMODDIR = /lib/modules/$(KVER)/kernel/drivers/misc
"""

ARCH_HEADER = """\
#ifndef _ASM_MKEXEC_ARCH_H
#define _ASM_MKEXEC_ARCH_H

#define MKEXEC_ARCH_NAME "{arch}"
/* README: on x86_64 /proc/mkexec/mem is written as the real size minus 1 */
#define MKEXEC_MEM_BIAS {bias}

#endif
"""

MKEXEC_C = r"""/*
 * mkexec stand-in module. Keeps what is written to /proc/mkexec/<entry> and reports it when "1" is written to
 * stats, where upstream would load the mini kernel image into its reserved memory.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/proc_fs.h>
#include <linux/string.h>
#include <asm/uaccess.h>
#include <asm/mkexec_arch.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mkexec stand-in (mkdump-build tests)");

extern int mkexec_stub_version(void);

#define MKEXEC_VALUE_SIZE 256

struct mkexec_entry {
	const char *name;
	char value[MKEXEC_VALUE_SIZE];
	struct proc_dir_entry *pde;
};

static struct mkexec_entry mkexec_entries[] = {
	{ .name = "mem" },
	{ .name = "dumpdev" },
	{ .name = "parameter" },
	{ .name = "path" },
	{ .name = "stats" },
};

#define MKEXEC_NENTRIES (sizeof(mkexec_entries) / sizeof(mkexec_entries[0]))
#define MKEXEC_STATS (&mkexec_entries[MKEXEC_NENTRIES - 1])

static struct proc_dir_entry *mkexec_dir;

static int mkexec_read(char *page, char **start, off_t off, int count, int *eof, void *data)
{
	struct mkexec_entry *e = data;
	int len = sprintf(page, "%s\n", e->value);

	if (off >= len) {
		*eof = 1;
		return 0;
	}
	*start = page + off;
	len -= off;
	if (len > count)
		return count;
	*eof = 1;
	return len;
}

static int mkexec_write(struct file *file, const char __user *buf, unsigned long count, void *data)
{
	struct mkexec_entry *e = data;
	unsigned long n = count;

	if (n >= MKEXEC_VALUE_SIZE)
		return -EINVAL;
	if (copy_from_user(e->value, buf, n))
		return -EFAULT;
	e->value[n] = '\0';
	if (n && e->value[n - 1] == '\n')
		e->value[n - 1] = '\0';
	if (e == MKEXEC_STATS && strcmp(e->value, "1") == 0)
		printk(KERN_INFO "mkexec: %s: load %s mem=%s(+%d) dumpdev=%s parameter=\"%s\"\n",
		       MKEXEC_ARCH_NAME, mkexec_entries[3].value, mkexec_entries[0].value, MKEXEC_MEM_BIAS,
		       mkexec_entries[1].value, mkexec_entries[2].value);
	return count;
}

static void mkexec_remove(void)
{
	unsigned int i;

	for (i = 0; i < MKEXEC_NENTRIES; i++)
		if (mkexec_entries[i].pde)
			remove_proc_entry(mkexec_entries[i].name, mkexec_dir);
	remove_proc_entry("mkexec", NULL);
}

int init_module(void)
{
	unsigned int i;

	mkexec_dir = proc_mkdir("mkexec", NULL);
	if (!mkexec_dir)
		return -ENOMEM;
	for (i = 0; i < MKEXEC_NENTRIES; i++) {
		struct proc_dir_entry *pde = create_proc_entry(mkexec_entries[i].name, 0600, mkexec_dir);

		if (!pde) {
			mkexec_remove();
			return -ENOMEM;
		}
		pde->read_proc = mkexec_read;
		pde->write_proc = mkexec_write;
		pde->data = &mkexec_entries[i];
		mkexec_entries[i].pde = pde;
	}
	printk(KERN_INFO "mkexec: stand-in for %s loaded, kernel side version %d\n",
	       MKEXEC_ARCH_NAME, mkexec_stub_version());
	return 0;
}

void cleanup_module(void)
{
	mkexec_remove();
}
"""

ARCHES = {"i386": 0, "x86_64": 1}

TINY_KERNEL_MAKEFILE = """\
#
# Makefile for the linux kernel (tiny test tree).
#

obj-y     = sched.o fork.o panic.o printk.o

obj-$(CONFIG_MODULES) += module.o
"""


def tiny_tree(dest):
    """A minimal kernel-like tree for which kernel_patch() can be generated and applied."""
    dest = Path(dest)
    (dest / "kernel").mkdir(parents=True, exist_ok=True)
    (dest / "kernel" / "Makefile").write_text(TINY_KERNEL_MAKEFILE)
    return dest


def _file_diff(path, old_lines, new_lines):
    fromfile = "/dev/null" if old_lines is None else "a/" + path
    lines = difflib.unified_diff(old_lines or [], new_lines, fromfile=fromfile, tofile="b/" + path, n=3,
                                 lineterm="\n")
    return "diff -urN a/{p} b/{p}\n{b}".format(p=path, b="".join(lines))


def kernel_patch(tree):
    """PATCH/mkexec-v1.patch for `tree` (-p1): a new kernel/mkexec_stub.c and the kernel/Makefile line."""
    makefile = Path(tree) / "kernel" / "Makefile"
    old = makefile.read_text(encoding="latin-1")
    if not old.endswith("\n"):
        raise ValueError(f"{makefile} does not end with a newline; the stand-in patch cannot extend it")
    old_lines = old.splitlines(keepends=True)
    new_lines = old_lines + ["\n", "# mkexec: kernel side\n", MAKEFILE_LINE]
    return (_file_diff("kernel/Makefile", old_lines, new_lines)
            + _file_diff("kernel/mkexec_stub.c", None, STUB_C.splitlines(keepends=True)))


def write_tree(dest, *, patch_text, override_settings=False, omit=()):
    """Write the unpacked archive's `mkexec/` directory under `dest` and return its path.

    override_settings writes Makefile.base with `override` assignments, which defeat make's command-line
    variables, so a build tool has to generate its own Makefile.base. `omit` lists relative paths (files or
    directories) to leave out, for layout-error tests.
    """
    root = Path(dest) / "mkexec"
    files = {
        "Makefile": TOP_MAKEFILE,
        "PATCH/mkexec-v1.patch": patch_text,
        "kernel/Makefile.base": MAKEFILE_BASE.format(o="override " if override_settings else ""),
        "kernel/Makefile": KERNEL_MAKEFILE,
        "kernel/mkexec.c": MKEXEC_C,
    }
    for arch, bias in ARCHES.items():
        files[f"include/asm-{arch}/mkexec_arch.h"] = ARCH_HEADER.format(arch=arch, bias=bias)
    omitted = [o.rstrip("/") for o in omit]
    for rel, text in sorted(files.items()):
        if any(rel == o or rel.startswith(o + "/") for o in omitted):
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _tar_bytes(root):
    buf = io.BytesIO()
    base = Path(root).parent
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        paths = [Path(root)] + sorted(Path(root).rglob("*"))
        for p in paths:
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(base)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = MTIME
            info.mode = 0o755 if p.is_dir() else 0o644
            if p.is_file():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def compress_available():
    return shutil.which("compress") is not None


def make_taz(path, *, patch_text, compression="gzip", override_settings=False, omit=(), workdir=None):
    """Write the stand-in archive to `path` and return it.

    compression is "gzip" (upstream's `tar xvzf`), "bzip2", "compress" (the .Z format, needs the `compress`
    program) or "none".
    """
    path = Path(path)
    work = Path(workdir) if workdir else path.parent / (path.name + ".tree")
    if work.exists():
        shutil.rmtree(work)
    root = write_tree(work, patch_text=patch_text, override_settings=override_settings, omit=omit)
    data = _tar_bytes(root)
    shutil.rmtree(work)
    if compression == "gzip":
        out = gzip.compress(data, mtime=0)
    elif compression == "bzip2":
        out = bz2.compress(data)
    elif compression == "compress":
        out = subprocess.run(["compress", "-c", "-f"], input=data, stdout=subprocess.PIPE, check=True).stdout
    elif compression == "none":
        out = data
    else:
        raise ValueError(f"unknown compression {compression!r}")
    path.write_bytes(out)
    return path


def apply_patch(tree, patch_text):
    """Apply a patch with GNU patch (test oracle only), failing on any fuzz or reject."""
    subprocess.run(["patch", "-p1", "--fuzz=0", "--no-backup-if-mismatch", "-s", "-d", os.fspath(tree)],
                   input=patch_text.encode("latin-1"), check=True)
