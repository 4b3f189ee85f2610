"""A stand-in for the unreachable upstream archive mkdutils.taz (2005-09-07).

A compressed tar whose single top directory `mkdutils/` holds what a 2005 tool archive holds: a Makefile whose
default target builds two tools, and their C sources written as C was then, so today's gcc needs the flags
mkdump.mkdutils gives it:
  Makefile          CC = gcc, CFLAGS = -O2 -Wall; `all` builds mkdconv and mkdinfo, `install` copies them to
                    $(PREFIX)/sbin
  common.c          `int verbose;` defined here AND in mkdconv.c/mkdinfo.c (one "common" symbol in gcc 3: a
                    multiple-definition link error under gcc 10's -fno-common default)
  mkdconv.c         `main()` with an implicit int and an old-style definition: copies stdin to stdout (converting
                    a dump, in the real tool)
  mkdinfo.c         prints the size of its input

Everything written is deterministic (sorted members, fixed owner and mtime).
"""
import gzip
import io
import subprocess
import tarfile
from pathlib import Path

# 2005-09-07, the upstream file's date.
MTIME = 1126051200
TOOLS = ("mkdconv", "mkdinfo")

MAKEFILE = """\
# mkdutils stand-in
CC = gcc
CFLAGS = -O2 -Wall
PREFIX = /usr/local

all: mkdconv mkdinfo

mkdconv: mkdconv.o common.o
\t$(CC) $(CFLAGS) -o $@ mkdconv.o common.o

mkdinfo: mkdinfo.o common.o
\t$(CC) $(CFLAGS) -o $@ mkdinfo.o common.o

%.o: %.c
\t$(CC) $(CFLAGS) -c $<

install: all
\tinstall -m 755 mkdconv mkdinfo $(PREFIX)/sbin

clean:
\trm -f *.o mkdconv mkdinfo

.PHONY: all install clean
"""

COMMON_C = """\
#include <stdio.h>
int verbose;
void note(s) char *s; { if (verbose) fprintf(stderr, "%s\\n", s); }
"""

MKDCONV_C = """\
#include <stdio.h>
int verbose;
extern void note();
main(argc, argv) int argc; char **argv;
{
\tint c;
\tnote("mkdconv: converting");
\twhile ((c = getchar()) != EOF)
\t\tputchar(c);
\treturn 0;
}
"""

MKDINFO_C = """\
#include <stdio.h>
int verbose;
extern void note();
main()
{
\tlong n = 0;
\tnote("mkdinfo: counting");
\twhile (getchar() != EOF)
\t\tn++;
\tprintf("%ld bytes\\n", n);
\treturn 0;
}
"""

FILES = {"Makefile": MAKEFILE, "common.c": COMMON_C, "mkdconv.c": MKDCONV_C, "mkdinfo.c": MKDINFO_C}


def tar_bytes(files=None, top="mkdutils"):
    files = FILES if files is None else files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        names = [top] if top else []
        for name in names + sorted(f"{top}/{n}" if top else n for n in files):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
            if name == top:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            data = files[name.split("/", 1)[1] if top else name].encode()
            info.mode, info.size = 0o644, len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_taz(path, *, compression="gzip", files=None, top="mkdutils"):
    """Write the stand-in to `path`: compression "gzip" (tar+gzip) or "compress" (tar+compress, the .Z format,
    needs the `compress` program), the two things `.taz` names."""
    data = tar_bytes(files, top)
    if compression == "gzip":
        out = gzip.compress(data, mtime=0)
    elif compression == "compress":
        out = subprocess.run(["compress", "-c", "-f"], input=data, stdout=subprocess.PIPE, check=True).stdout
    else:
        raise ValueError(f"unknown compression {compression!r}")
    Path(path).write_bytes(out)
    return Path(path)
