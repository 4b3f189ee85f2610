"""A small kbuild-shaped stand-in for the Linux 2.6.9 tree, generated at test time.

CI has no kernel sources, so the integration tests run the real pipeline (fetch, unpack, patch, config,
build, check) against this tree instead. It keeps what the product relies on:

- the top-level Makefile's interface: VERSION/PATCHLEVEL/SUBLEVEL, ARCH=x86_64|i386, CC= (a command with
  flags), HOSTCC=, V=1, -jN, SUBDIRS=/M= external modules; targets allnoconfig, oldconfig, silentoldconfig,
  defconfig, prepare, vmlinux, bzImage, modules, modules_install, clean, mrproper;
- Kconfig files in 2.6.9's layout and quirks (latin-1 text, legacy `depends X` lines), read by a small conf
  tool on kconfiglib (scripts/kconfig/conf.py) that writes .config and include/linux/autoconf.h;
- a tiny C "kernel" whose functions follow the configuration (SMP, NET, SWAP, MODULES, EXT2_FS...), linked
  like 2.6.9 (x86_64 at 0xffffffff80100000, i386 at 0xc0100000, both loaded at 1 MB), with System.map,
  boot/compressed/vmlinux.bin (objcopy -O binary) and a bzImage made by a host tool;
- module builds that go through the real compiler and assembler, with 2.6.9's .modinfo (license, vermagic);
- the files the product reads but never compiles: the four x86_64 files with CVS $Id$ lines, both
  boot/compressed/head.S with their hard-coded jump, both arch module loaders' relocation switches.

Everything is generated from the strings in this module; no file of the real kernel is copied.
"""
import bz2
import difflib
import gzip
import io
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import tomllib
from pathlib import Path

from support import standin_minik

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS_DIR = REPO_ROOT / "configs"

# 2.6.9's release date; used for every member of the tarball so that it is byte-for-byte reproducible.
TARBALL_MTIME = 1098140400

# Symbols the minik patch adds: the pristine tree must not define them, even when the product's fragments
# mention them, so that a missing patch shows up as an undefined symbol.
MINIK_PATCH_SYMBOLS = frozenset({"DUMP_MINI_KERNEL", "X86_PAE"})

ARCHES = ("x86_64", "i386")

COMPRESSIONS = {
    "bz2": lambda data: bz2.compress(data, 9),
    "gz": lambda data: gzip.compress(data, 9, mtime=0),
    "xz": lambda data: lzma.compress(data, format=lzma.FORMAT_XZ),
}


# ---------------------------------------------------------------------------------------------------------
# Top-level Makefile and kbuild scripts

TOP_MAKEFILE = r'''VERSION = @VERSION@
PATCHLEVEL = @PATCHLEVEL@
SUBLEVEL = @SUBLEVEL@
EXTRAVERSION =@EXTRAVERSION@
NAME=Zonked Quokka

# Test fixture: a small stand-in for the Linux 2.6.9 top-level Makefile. Same variables, targets and
# command-line interface; the "kernel" it builds is a handful of C files.

KERNELRELEASE = $(VERSION).$(PATCHLEVEL).$(SUBLEVEL)$(EXTRAVERSION)

MAKEFLAGS += -rR --no-print-directory

ifdef V
  ifeq ("$(origin V)", "command line")
    KBUILD_VERBOSE = $(V)
  endif
endif
ifndef KBUILD_VERBOSE
  KBUILD_VERBOSE = 0
endif

# External modules: SUBDIRS= as in 2.6.9's documentation, M= as its newer spelling.
ifdef SUBDIRS
  KBUILD_EXTMOD ?= $(SUBDIRS)
endif
ifdef M
  ifeq ("$(origin M)", "command line")
    KBUILD_EXTMOD := $(M)
  endif
endif
KBUILD_EXTMOD := $(patsubst %/,%,$(KBUILD_EXTMOD))

# Building in an object directory, as 2.6.9 does: `make O=DIR` in the source tree runs one make per goal in DIR
# with KBUILD_SRC set and -f naming this Makefile; a make started that way directly builds there as well.
ifeq ($(KBUILD_SRC),)
ifdef O
  ifeq ("$(origin O)", "command line")
    KBUILD_OUTPUT := $(O)
  endif
endif

PHONY := _all
_all:

ifneq ($(KBUILD_OUTPUT),)
saved-output := $(KBUILD_OUTPUT)
KBUILD_OUTPUT := $(shell cd $(KBUILD_OUTPUT) && /bin/pwd)
$(if $(KBUILD_OUTPUT),,$(error output directory "$(saved-output)" does not exist))

.PHONY: $(MAKECMDGOALS)
$(filter-out _all,$(MAKECMDGOALS)) _all:
	$(if $(KBUILD_VERBOSE:1=),@)$(MAKE) -C $(KBUILD_OUTPUT) KBUILD_SRC=$(CURDIR) KBUILD_VERBOSE=$(KBUILD_VERBOSE) \
	KBUILD_EXTMOD="$(KBUILD_EXTMOD)" -f $(CURDIR)/Makefile $@

skip-makefile := 1
endif
endif

ifeq ($(skip-makefile),)

srctree := $(if $(KBUILD_SRC),$(KBUILD_SRC),$(CURDIR))
objtree := $(CURDIR)
VPATH := $(srctree)

SUBARCH := $(shell uname -m | sed -e s/i.86/i386/)
ARCH ?= $(SUBARCH)
CROSS_COMPILE ?=

ifeq ($(wildcard $(srctree)/arch/$(ARCH)/Makefile),)
  $(error ARCH=$(ARCH) is not an architecture of this tree (arch/$(ARCH)/Makefile is missing))
endif

HOSTCC = gcc
HOSTCFLAGS = -Wall -O2
AS = $(CROSS_COMPILE)as
LD = $(CROSS_COMPILE)ld
CC = $(CROSS_COMPILE)gcc
CPP = $(CC) -E
NM = $(CROSS_COMPILE)nm
OBJCOPY = $(CROSS_COMPILE)objcopy
PYTHON ?= python3

ifeq ($(KBUILD_VERBOSE),1)
  Q =
else
  Q = @
endif

NOSTDINC_FLAGS = -nostdinc -isystem $(shell $(CC) -print-file-name=include)
CPPFLAGS := -D__KERNEL__ -Iinclude $(if $(KBUILD_SRC),-Iinclude2 -I$(srctree)/include)
CFLAGS := -Wall -Wstrict-prototypes -Wno-trigraphs -fno-strict-aliasing -fno-common -ffreestanding \
	  -fno-asynchronous-unwind-tables -O2
AFLAGS := -D__ASSEMBLY__
CFLAGS_MODULE := -DMODULE
LDFLAGS_MODULE := -r

export VERSION PATCHLEVEL SUBLEVEL EXTRAVERSION KERNELRELEASE ARCH srctree objtree VPATH KBUILD_VERBOSE KBUILD_EXTMOD
export HOSTCC HOSTCFLAGS AS LD CC CPP NM OBJCOPY PYTHON Q
export NOSTDINC_FLAGS CPPFLAGS CFLAGS AFLAGS CFLAGS_MODULE LDFLAGS_MODULE

# What a run builds: "make modules" alone builds no vmlinux, "make" and "make all" build both.
KBUILD_BUILTIN := 1
KBUILD_MODULES :=
ifeq ($(MAKECMDGOALS),modules)
  KBUILD_BUILTIN :=
endif
ifneq ($(filter all modules,$(MAKECMDGOALS)),)
  KBUILD_MODULES := 1
endif
ifeq ($(MAKECMDGOALS),)
  KBUILD_MODULES := 1
endif
export KBUILD_BUILTIN KBUILD_MODULES

config-targets := config oldconfig silentoldconfig allnoconfig defconfig
no-dot-config-targets := clean mrproper help $(config-targets)

dot-config := 1
ifneq ($(filter $(no-dot-config-targets),$(MAKECMDGOALS)),)
  ifeq ($(filter-out $(no-dot-config-targets),$(MAKECMDGOALS)),)
    dot-config := 0
  endif
endif

PHONY += all
_all: all
all:

ifeq ($(dot-config),1)
-include .config
endif

KCONFIG := arch/$(ARCH)/Kconfig
CONF := $(PYTHON) $(srctree)/scripts/kconfig/conf.py

include $(srctree)/arch/$(ARCH)/Makefile
export LDFLAGS

# --- configuration ------------------------------------------------------------------------------------

PHONY += config oldconfig silentoldconfig allnoconfig defconfig
config oldconfig:
	$(Q)$(CONF) -o $(KCONFIG)
silentoldconfig:
	$(Q)$(CONF) -s $(KCONFIG)
allnoconfig:
	$(Q)$(CONF) -n $(KCONFIG)
defconfig:
	$(Q)$(CONF) -d $(srctree)/arch/$(ARCH)/defconfig $(KCONFIG)

include/linux/autoconf.h: $(wildcard .config)
	$(Q)test -f .config || { echo "*** No .config in $(objtree): run 'make allnoconfig', 'make defconfig' or 'make oldconfig' first." >&2; exit 1; }
	$(Q)$(CONF) -s $(KCONFIG)

# --- prepare: generated headers, include/asm, the compiler command line --------------------------------

LINUX_VERSION_CODE := $(shell expr $(VERSION) \* 65536 + $(PATCHLEVEL) \* 256 + $(SUBLEVEL))

# Rewritten only when the text changes, so that unchanged settings rebuild nothing.
define filechk
	$(Q)mkdir -p $(dir $@)
	$(Q)$(filechk_$(1)) > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
endef

filechk_version.h = printf '%s\n' '\#define UTS_RELEASE "$(KERNELRELEASE)"' \
	'\#define LINUX_VERSION_CODE $(LINUX_VERSION_CODE)' \
	'\#define KERNEL_VERSION(a,b,c) (((a) << 16) + ((b) << 8) + (c))'

# The build identity is fixed (2.6.9 wrote date, user and host here); SMP/PREEMPT follow the configuration.
filechk_compile.h = flags=; \
	grep -q '^\#define CONFIG_SMP 1' include/linux/autoconf.h && flags="$$flags SMP"; \
	grep -q '^\#define CONFIG_PREEMPT 1' include/linux/autoconf.h && flags="$$flags PREEMPT"; \
	printf '%s\n' "\#define UTS_VERSION \"\#1$$flags Mon Oct 18 22:00:00 UTC 2004\"" \
	'\#define LINUX_COMPILE_BY "mkdump"' '\#define LINUX_COMPILE_HOST "fixture"' \
	"\#define LINUX_COMPILER \"`$(CC) -v 2>&1 | tail -n 1`\""

filechk_cflags = echo '$(CC) $(NOSTDINC_FLAGS) $(CPPFLAGS) $(CFLAGS) | $(LD) $(LDFLAGS)'

include/linux/version.h: $(srctree)/Makefile FORCE
	$(call filechk,version.h)
include/linux/compile.h: include/linux/autoconf.h include/config/cflags FORCE
	$(call filechk,compile.h)
include/config/cflags: FORCE
	$(call filechk,cflags)

MODVERDIR := $(if $(KBUILD_EXTMOD),$(KBUILD_EXTMOD)/,).tmp_versions
export MODVERDIR

# In an object directory: the source tree must never have been configured or built (its .config and
# include/asm would win over the object directory's), include2/asm reaches its include/asm-$(ARCH), and a
# Makefile there lets `make -C <object directory>` (external modules) work as in a source tree.
PHONY += prepare prepare-objtree
prepare-objtree:
ifneq ($(KBUILD_SRC),)
	$(Q)if [ -h $(srctree)/include/asm -o -f $(srctree)/.config ]; then \
		echo "  $(srctree) is not clean, please run 'make mrproper'" >&2; exit 1; fi
	$(Q)mkdir -p include2 && ln -fsn $(srctree)/include/asm-$(ARCH) include2/asm
	$(Q)printf '%s\n' '# Generated by the fixture: make in this object directory builds $(srctree)' \
	  'KERNELSRC    := $(srctree)' 'KERNELOUTPUT := $(objtree)' 'MAKEFLAGS += --no-print-directory' \
	  'all:' '	$$(MAKE) -C $$(KERNELSRC) O=$$(KERNELOUTPUT)' \
	  '%::' '	$$(MAKE) -C $$(KERNELSRC) O=$$(KERNELOUTPUT) $$@' > Makefile
endif

prepare: prepare-objtree include/linux/version.h include/linux/autoconf.h include/config/cflags include/linux/compile.h
	$(Q)mkdir -p include && ln -fsn asm-$(ARCH) include/asm
	$(Q)$(if $(KBUILD_MODULES),rm -rf $(MODVERDIR) &&) mkdir -p $(MODVERDIR)

# --- vmlinux --------------------------------------------------------------------------------------------

init-y := init/
core-y := kernel/ mm/ fs/
net-y := net/
libs-y := lib/
vmlinux-dirs := $(patsubst %/,%,$(init-y) $(core-y) $(net-y) $(libs-y))
vmlinux-objs := $(addsuffix /built-in.o,$(vmlinux-dirs))

PHONY += $(vmlinux-dirs)
$(vmlinux-dirs): prepare
	$(Q)$(MAKE) -f $(srctree)/scripts/Makefile.build obj=$@

$(vmlinux-objs): $(vmlinux-dirs) ;

arch/$(ARCH)/kernel/vmlinux.lds: arch/$(ARCH)/kernel/vmlinux.lds.S include/config/cflags | prepare
	$(if $(Q),@echo '  LDS     $@')
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CPP) -P -undef $(AFLAGS) $(filter -I%,$(CPPFLAGS)) -x assembler-with-cpp -o $@ $<

# Relinked on every run (the link is cheap), replaced only when different so that timestamps stay.
vmlinux: $(vmlinux-objs) arch/$(ARCH)/kernel/vmlinux.lds FORCE
	$(if $(Q),@echo '  LD      $@')
	$(Q)$(LD) $(LDFLAGS) -T arch/$(ARCH)/kernel/vmlinux.lds -o $@.tmp $(vmlinux-objs)
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
	$(Q)$(NM) -n $@ | grep -v ' [aUw] ' > System.map.tmp
	$(Q)if cmp -s System.map.tmp System.map; then rm -f System.map.tmp; else mv -f System.map.tmp System.map; fi

System.map: vmlinux ;

# --- modules --------------------------------------------------------------------------------------------

ifeq ($(KBUILD_EXTMOD),)

all: vmlinux $(BOOTIMAGE) $(if $(CONFIG_MODULES),modules)

PHONY += modules modules_install
ifdef CONFIG_MODULES
modules: $(vmlinux-dirs)
	$(Q)$(MAKE) -f $(srctree)/scripts/Makefile.modpost

MODLIB := $(INSTALL_MOD_PATH)/lib/modules/$(KERNELRELEASE)
modules_install:
	$(Q)mkdir -p $(MODLIB)/kernel
	$(Q)for m in `cat $(MODVERDIR)/*.mod 2>/dev/null`; do \
		mkdir -p $(MODLIB)/kernel/`dirname $$m` && cp $${m%.o}.ko $(MODLIB)/kernel/`dirname $$m`/; done
else
modules modules_install:
	@echo "The present kernel configuration has modules disabled." >&2
	@echo "Type 'make config' and enable loadable module support." >&2
	@echo "Then build a kernel with module support enabled." >&2
	@exit 1
endif

else

all: modules

PHONY += modules extmod-check
modules: extmod-check
	$(Q)rm -rf $(MODVERDIR) && mkdir -p $(MODVERDIR)
	$(Q)$(MAKE) -f $(srctree)/scripts/Makefile.build obj=$(KBUILD_EXTMOD)
	$(Q)$(MAKE) -f $(srctree)/scripts/Makefile.modpost

extmod-check:
	$(Q)test -f include/linux/autoconf.h -a -f include/linux/version.h -a -L include/asm || \
	  { echo "*** The kernel tree $(srctree) is not configured and prepared: run 'make oldconfig' and 'make prepare' (or build the kernel) first." >&2; exit 1; }
	$(Q)grep -q '^#define CONFIG_MODULES 1' include/linux/autoconf.h || \
	  { echo "*** The kernel in $(srctree) is configured without module support (CONFIG_MODULES)." >&2; exit 1; }

endif

# --- cleaning -------------------------------------------------------------------------------------------

PHONY += clean mrproper
ifeq ($(KBUILD_EXTMOD),)
clean:
	$(Q)find . \( -name '*.[oas]' -o -name '*.ko' -o -name '*.mod.c' -o -name '.*.tmp' \) -type f -print | xargs rm -f
	$(Q)rm -rf vmlinux System.map .tmp_versions arch/$(ARCH)/kernel/vmlinux.lds \
		arch/*/boot/bzImage arch/*/boot/compressed/vmlinux.bin* arch/*/boot/tools/build
mrproper: clean
	$(Q)rm -rf .config .config.old include/asm include/config include/linux/autoconf.h \
		include/linux/version.h include/linux/compile.h
else
clean:
	$(Q)rm -rf $(MODVERDIR)
	$(Q)find $(KBUILD_EXTMOD) \( -name '*.o' -o -name '*.ko' -o -name '*.mod.c' \) -type f -print | xargs rm -f
endif

help:
	@echo 'Configuration: allnoconfig oldconfig silentoldconfig defconfig'
	@echo 'Build: vmlinux bzImage modules modules_install prepare; clean mrproper'
	@echo 'Variables: ARCH=x86_64|i386 CC= HOSTCC= CROSS_COMPILE= V=1 SUBDIRS=/M= (external modules) PYTHON='

PHONY += FORCE
FORCE:

endif # skip-makefile

.PHONY: $(PHONY)
'''

MAKEFILE_BUILD = r'''# Test fixture: a small stand-in for Linux 2.6.9's scripts/Makefile.build.
# Builds one directory, $(obj): its obj-y into built-in.o, its obj-m into module objects (recorded in
# $(MODVERDIR) for modpost), recursing into subdirectories named with a trailing slash.
src := $(obj)

PHONY := __build
__build:

-include .config

obj-y :=
obj-m :=
EXTRA_CFLAGS :=

kbuild-dir := $(if $(filter /%,$(src)),$(src),$(srctree)/$(src))
include $(kbuild-dir)/Makefile

# In an object directory the directory of $(obj) may not exist yet.
_dummy := $(shell [ -d $(obj) ] || mkdir -p $(obj))

parts = $(strip $($(1:.o=-objs)) $($(1:.o=-y)))

# Makefiles name every directory 2.6.9's do (the product reads fs/Makefile to find the filesystems); the
# fixture has sources for few of them, and a directory without a Makefile builds nothing.
absent-dirs := $(foreach d,$(filter %/,$(obj-y) $(obj-m)),$(if $(wildcard $(kbuild-dir)/$(d)Makefile),,$(d)))
obj-y := $(filter-out $(absent-dirs),$(obj-y))
obj-m := $(filter-out $(absent-dirs),$(obj-m))

subdir-ym := $(sort $(patsubst %/,%,$(filter %/,$(obj-y) $(obj-m))))
obj-y := $(patsubst %/,%/built-in.o,$(obj-y))
obj-m := $(filter-out %/ $(obj-y),$(obj-m))

multi-used-y := $(foreach m,$(filter-out %/built-in.o,$(obj-y)),$(if $(call parts,$(m)),$(m)))
multi-used-m := $(foreach m,$(obj-m),$(if $(call parts,$(m)),$(m)))
real-objs-y := $(foreach m,$(obj-y),$(if $(call parts,$(m)),$(call parts,$(m)),$(m)))
real-objs-m := $(foreach m,$(obj-m),$(if $(call parts,$(m)),$(call parts,$(m)),$(m)))

subdir-ym := $(addprefix $(obj)/,$(subdir-ym))
subdir-obj-y := $(addprefix $(obj)/,$(filter %/built-in.o,$(obj-y)))
obj-y := $(addprefix $(obj)/,$(obj-y))
obj-m := $(addprefix $(obj)/,$(obj-m))
real-objs-y := $(addprefix $(obj)/,$(filter-out %/built-in.o,$(real-objs-y)))
real-objs-m := $(addprefix $(obj)/,$(real-objs-m))

builtin-target := $(if $(KBUILD_EXTMOD),,$(obj)/built-in.o)

__build: $(if $(KBUILD_BUILTIN),$(builtin-target)) $(if $(KBUILD_MODULES),$(obj-m)) $(subdir-ym)
	$(Q)$(if $(KBUILD_MODULES),$(foreach m,$(obj-m),echo $(m) > $(MODVERDIR)/$(notdir $(m:.o=.mod));)) :

PHONY += $(subdir-ym)
$(subdir-ym):
	$(Q)$(MAKE) -f $(srctree)/scripts/Makefile.build obj=$@

$(subdir-obj-y): $(subdir-ym) ;

# The module name of an object: its own name, or that of the composite module it belongs to.
basetarget = $(basename $(notdir $@))
modname = $(subst -,_,$(or $(firstword $(foreach m,$(multi-used-m),$(if $(filter $(notdir $@),$(call parts,$(m))),$(m:.o=)))),$(basetarget)))

$(real-objs-m): modkern_cflags := $(CFLAGS_MODULE)
$(real-objs-m): modtag := [M]

c_flags = $(NOSTDINC_FLAGS) $(CPPFLAGS) $(CFLAGS) $(modkern_cflags) $(EXTRA_CFLAGS) $(CFLAGS_$(notdir $@)) \
	  -DKBUILD_BASENAME=$(subst -,_,$(basetarget)) -DKBUILD_MODNAME=$(notdir $(modname))

$(obj)/%.o: $(src)/%.c include/linux/autoconf.h include/config/cflags
	$(if $(Q),@echo '  CC $(if $(modtag),[M],   ) $@')
	$(Q)$(CC) $(c_flags) -c -o $@ $<

$(obj)/%.o: $(src)/%.S include/linux/autoconf.h include/config/cflags
	$(if $(Q),@echo '  AS $(if $(modtag),[M],   ) $@')
	$(Q)$(CC) $(NOSTDINC_FLAGS) $(CPPFLAGS) $(AFLAGS) $(modkern_cflags) $(EXTRA_CFLAGS) -c -o $@ $<

define multi_dep
$(obj)/$(1): $(addprefix $(obj)/,$(call parts,$(1)))
endef
$(foreach m,$(multi-used-y) $(multi-used-m),$(eval $(call multi_dep,$(m))))

$(addprefix $(obj)/,$(multi-used-y) $(multi-used-m)):
	$(if $(Q),@echo '  LD      $@')
	$(Q)$(LD) $(LDFLAGS) -r -o $@ $(filter %.o,$^)

# An empty directory still yields a built-in.o (an empty archive, as 2.6.9 does), so the link line is fixed.
$(builtin-target): $(obj-y)
	$(if $(Q),@echo '  LD      $@')
	$(Q)$(if $(strip $(obj-y)),$(LD) $(LDFLAGS) -r -o $@ $(obj-y),printf '!<arch>\n' > $@)

.PHONY: $(PHONY)
'''

MAKEFILE_MODPOST = r'''# Test fixture: a small stand-in for Linux 2.6.9's scripts/Makefile.modpost.
# For every module recorded in $(MODVERDIR): generate <module>.mod.c (vermagic, __this_module, depends),
# compile it, and link <module>.ko from the module object and <module>.mod.o.
PHONY := __modpost
__modpost:

-include .config

modules := $(sort $(shell cat $(MODVERDIR)/*.mod 2>/dev/null))

__modpost: $(modules:.o=.ko)
	@:

ifneq ($(modules),)

modname = $(subst -,_,$(notdir $(basename $(basename $@))))

$(modules:.o=.mod.c): %.mod.c: %.o scripts/Makefile.modpost
	$(if $(Q),@echo '  MODPOST $@')
	$(Q)printf '%s\n' '#include <linux/module.h>' '#include <linux/vermagic.h>' '' \
	  'MODULE_INFO(vermagic, VERMAGIC_STRING);' '' \
	  'struct module __this_module' '__attribute__((section(".gnu.linkonce.this_module"))) = {' \
	  '	.name = __stringify(KBUILD_MODNAME),' '	.init = init_module,' '#ifdef CONFIG_MODULE_UNLOAD' \
	  '	.exit = cleanup_module,' '#endif' '};' '' \
	  'static const char __module_depends[]' '__attribute_used__' \
	  '__attribute__((section(".modinfo"))) =' '"depends=";' > $@

$(modules:.o=.mod.o): %.mod.o: %.mod.c include/linux/autoconf.h include/config/cflags
	$(if $(Q),@echo '  CC      $@')
	$(Q)$(CC) $(NOSTDINC_FLAGS) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_MODULE) \
	  -DKBUILD_BASENAME=$(modname) -DKBUILD_MODNAME=$(modname) -c -o $@ $<

$(modules:.o=.ko): %.ko: %.o %.mod.o
	$(if $(Q),@echo '  LD [M]  $@')
	$(Q)$(LD) $(LDFLAGS) $(LDFLAGS_MODULE) -o $@ $^
endif

.PHONY: $(PHONY)
'''

CONF_PY = r'''#!/usr/bin/env python3
"""Test fixture: a stand-in for Linux 2.6.9's scripts/kconfig/conf (a C program there), on kconfiglib.

    conf.py -n KCONFIG              allnoconfig
    conf.py -o KCONFIG              oldconfig: .config (else the arch defconfig), defaults for new symbols;
                                    never prompts
    conf.py -s KCONFIG              silentoldconfig: the same, without the report of new symbols
    conf.py -d DEFCONFIG KCONFIG    defconfig

Run in the top of the tree or an object directory ($srctree names the tree); writes .config (old one kept as .config.old) and include/linux/autoconf.h.
"""
import os
import re
import shutil
import sys
import tempfile

import kconfiglib

# 2.6.9's Kconfig files are latin-1 and a few say "depends X"; its own parser took both, kconfiglib wants
# UTF-8 and "depends on X". It reads a normalised shadow copy.
LEGACY_DEPENDS = re.compile(r"^([ \t]*)depends(?=[ \t])(?![ \t]+on[ \t])", re.M)


def load(kconfig):
    shadow = tempfile.mkdtemp(prefix="conf-")
    try:
        top = os.environ.get("srctree", ".")
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("Kconfig"):
                    continue
                src = os.path.join(dirpath, name)
                with open(src, encoding="latin-1") as f:
                    text = LEGACY_DEPENDS.sub(r"\1depends on", f.read())
                dst = os.path.join(shadow, os.path.relpath(src, top))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(dst, "w", encoding="utf-8") as f:
                    f.write(text)
        os.environ["srctree"] = shadow
        kconf = kconfiglib.Kconfig(kconfig)
    finally:
        del os.environ["srctree"]
        shutil.rmtree(shadow)
    return kconf


def autoconf_text(kconf):
    lines = ["/*", " * Automatically generated C config: don't edit", " */", "#define AUTOCONF_INCLUDED"]
    for sym in kconf.unique_defined_syms:
        if not sym.config_string:
            continue
        name = "CONFIG_" + sym.name
        val = sym.str_value
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            if val == "y":
                lines.append("#define %s 1" % name)
            elif val == "m":
                lines += ["#undef %s" % name, "#define %s_MODULE 1" % name]
            else:
                lines.append("#undef %s" % name)
        elif sym.orig_type == kconfiglib.STRING:
            lines.append('#define %s "%s"' % (name, kconfiglib.escape(val)))
        elif sym.orig_type == kconfiglib.HEX and not val.lower().startswith("0x"):
            lines.append("#define %s 0x%s" % (name, val))
        else:
            lines.append("#define %s %s" % (name, val))
    return "\n".join(lines) + "\n"


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main(argv):
    usage = "usage: conf.py -n|-o|-s KCONFIG, or conf.py -d DEFCONFIG KCONFIG"
    if len(argv) == 4 and argv[1] == "-d":
        mode, defconfig, kconfig = argv[1:]
    elif len(argv) == 3 and argv[1] in ("-n", "-o", "-s"):
        mode, kconfig = argv[1:]
        defconfig = os.path.join(os.path.dirname(kconfig), "defconfig")
    else:
        sys.exit(usage)
    kconf = load(kconfig)

    if mode == "-n":
        kconf.warn = False
        for sym in kconf.unique_defined_syms:
            sym.set_value(2 if sym.is_allnoconfig_y else 0)
        kconf.warn = True
    elif mode == "-d" or not os.path.exists(".config"):
        print("#\n# using defaults found in %s\n#" % defconfig)
        kconf.load_config(defconfig)
    else:
        kconf.load_config(".config")
        if mode == "-o":
            for sym in kconf.unique_defined_syms:
                if sym.user_value is None and sym.visibility and any(n.prompt for n in sym.nodes):
                    prompt = next(n.prompt[0] for n in sym.nodes if n.prompt)
                    print("%s (%s) [%s] (NEW)" % (prompt, sym.name, sym.str_value))

    release = os.environ.get("KERNELRELEASE", "")
    msg = kconf.write_config(".config", header="#\n# Automatically generated make config: don't edit\n"
                             "# Linux kernel version: %s\n#\n" % release)
    if mode != "-s":
        print(msg)
    write_if_changed(os.path.join("include", "linux", "autoconf.h"), autoconf_text(kconf))


if __name__ == "__main__":
    main(sys.argv)
'''

# ---------------------------------------------------------------------------------------------------------
# Architecture Makefiles, linker scripts, the bzImage host tool

ARCH_MAKEFILE = r'''# Test fixture: a small stand-in for Linux 2.6.9's arch/@ARCH@/Makefile.
LDFLAGS := -m @LDEMU@
CFLAGS += @ARCH_CFLAGS@

boot := arch/@ARCH@/boot
BOOTIMAGE := $(boot)/bzImage
OBJCOPYFLAGS_vmlinux.bin := -O binary -R .note -R .comment -S

PHONY += bzImage
bzImage: $(BOOTIMAGE)
	@echo 'Kernel: $(BOOTIMAGE) is ready'

$(boot)/compressed/vmlinux.bin: vmlinux
	$(if $(Q),@echo '  OBJCOPY $@')
	$(Q)mkdir -p $(dir $@)
	$(Q)$(OBJCOPY) $(OBJCOPYFLAGS_vmlinux.bin) vmlinux $@

# gzip -n: no name or time stamp in the header, so the image is reproducible.
$(boot)/compressed/vmlinux.bin.gz: $(boot)/compressed/vmlinux.bin
	$(if $(Q),@echo '  GZIP    $@')
	$(Q)gzip -n -9 < $< > $@

$(boot)/tools/build: $(boot)/tools/build.c
	$(if $(Q),@echo '  HOSTCC  $@')
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOSTCC) $(HOSTCFLAGS) -o $@ $<

$(BOOTIMAGE): $(boot)/compressed/vmlinux.bin.gz $(boot)/tools/build
	$(if $(Q),@echo '  BUILD   $@')
	$(Q)$(boot)/tools/build $(boot)/compressed/vmlinux.bin.gz '$(KERNELRELEASE)' > $@.tmp
	$(Q)mv -f $@.tmp $@
'''

ARCH_MAKE_VARS = {
    "x86_64": {"@LDEMU@": "elf_x86_64",
               "@ARCH_CFLAGS@": "-mcmodel=kernel -mno-red-zone -pipe -fno-reorder-blocks -Wno-sign-compare"},
    "i386": {"@LDEMU@": "elf_i386",
             "@ARCH_CFLAGS@": "-pipe -msoft-float -mpreferred-stack-boundary=2 -march=i686"},
}

VMLINUX_LDS = r'''/*
 * Test fixture: linker script in the shape of Linux 2.6.9's arch/@ARCH@/kernel/vmlinux.lds.S.
 * Runs at @RUNADDR@, loads at 1 MB: every output section's load address (AT) is its run address
 * minus @MAPBASE@.
 */
#include <asm/page.h>

OUTPUT_FORMAT(@OUTPUT_FORMAT@)
OUTPUT_ARCH(@OUTPUT_ARCH@)
ENTRY(startup_32)
SECTIONS
{
  . = @MAPBASE@ + 0x100000;
  _text = .;			/* Text and read-only data */
  .text : AT(ADDR(.text) - @MAPBASE@) {
	*(.text.head)
	*(.text)
	*(.text.*)
	*(.fixup)
	} = 0x9090
  _etext = .;			/* End of text section */

  . = ALIGN(16);		/* Exception table */
  __ex_table : AT(ADDR(__ex_table) - @MAPBASE@) {
	__start___ex_table = .;
	*(__ex_table)
	__stop___ex_table = .;
  }

  .rodata : AT(ADDR(.rodata) - @MAPBASE@) { *(.rodata) *(.rodata.*) }

  __ksymtab : AT(ADDR(__ksymtab) - @MAPBASE@) {
	__start___ksymtab = .;
	*(__ksymtab)
	__stop___ksymtab = .;
  }
  __ksymtab_gpl : AT(ADDR(__ksymtab_gpl) - @MAPBASE@) {
	__start___ksymtab_gpl = .;
	*(__ksymtab_gpl)
	__stop___ksymtab_gpl = .;
  }
  __ksymtab_strings : AT(ADDR(__ksymtab_strings) - @MAPBASE@) { *(__ksymtab_strings) }

  . = ALIGN(4096);
  .data : AT(ADDR(.data) - @MAPBASE@) {	/* Data */
	*(.data)
	*(.data.*)
	}
  _edata = .;			/* End of data section */

  . = ALIGN(4096);		/* Init code and data */
  __init_begin = .;
  .init.text : AT(ADDR(.init.text) - @MAPBASE@) {
	_sinittext = .;
	*(.init.text)
	_einittext = .;
  }
  .init.data : AT(ADDR(.init.data) - @MAPBASE@) { *(.init.data) }
  . = ALIGN(16);
  .initcall.init : AT(ADDR(.initcall.init) - @MAPBASE@) {
	__initcall_start = .;
	*(.initcall1.init)
	*(.initcall2.init)
	*(.initcall3.init)
	*(.initcall4.init)
	*(.initcall5.init)
	*(.initcall6.init)
	*(.initcall7.init)
	__initcall_end = .;
  }
  . = ALIGN(4096);
  __init_end = .;

  __bss_start = .;		/* BSS */
  .bss : AT(ADDR(.bss) - @MAPBASE@) {
	*(.bss.page_aligned)
	*(.bss)
	*(.bss.*)
	*(COMMON)
	}
  __bss_end = .;
  _end = . ;

  /* Sections to be discarded */
  /DISCARD/ : {
	*(.exit.text)
	*(.exit.data)
	*(.exitcall.exit)
	*(.eh_frame)
	*(.note.GNU-stack)
	}

  .comment 0 : { *(.comment) }
}
'''

LDS_VARS = {
    "x86_64": {"@OUTPUT_FORMAT@": '"elf64-x86-64", "elf64-x86-64", "elf64-x86-64"',
               "@OUTPUT_ARCH@": "i386:x86-64", "@MAPBASE@": "__START_KERNEL_map",
               "@RUNADDR@": "0xffffffff80100000"},
    "i386": {"@OUTPUT_FORMAT@": '"elf32-i386", "elf32-i386", "elf32-i386"',
             "@OUTPUT_ARCH@": "i386", "@MAPBASE@": "__PAGE_OFFSET", "@RUNADDR@": "0xc0100000"},
}

BOOT_BUILD_C = r'''/*
 * Test fixture: stands in for Linux 2.6.9's arch/@ARCH@/boot/tools/build.c (a host program, built with
 * $(HOSTCC)). Wraps the compressed kernel in a boot sector and one setup sector carrying the x86 boot
 * protocol header ("HdrS", protocol 2.03, code32_start 0x100000, kernel version string), so that the
 * result has a bzImage's signatures. It does not boot.
 *
 *   build COMPRESSED-IMAGE VERSION > bzImage
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETUP_SECTS	1
#define VERSION_OFFSET	0x240

static void put_le(unsigned char *p, unsigned long v, int n)
{
	while (n--) {
		*p++ = v & 0xff;
		v >>= 8;
	}
}

int main(int argc, char **argv)
{
	unsigned char hdr[512 * (1 + SETUP_SECTS)];
	unsigned char *image = NULL;
	size_t len = 0, cap = 0, n;
	FILE *in;

	if (argc != 3) {
		fprintf(stderr, "Usage: build compressed-image version > bzImage\n");
		return 1;
	}
	in = fopen(argv[1], "rb");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 65536;
			image = realloc(image, cap);
			if (!image) {
				perror("realloc");
				return 1;
			}
		}
		n = fread(image + len, 1, cap - len, in);
		if (!n)
			break;
		len += n;
	}
	fclose(in);

	memset(hdr, 0, sizeof(hdr));
	strcpy((char *)hdr, "Test fixture kernel image: not bootable.\r\n");
	hdr[0x1f1] = SETUP_SECTS;
	put_le(hdr + 0x1f4, (len + 15) / 16, 4);		/* syssize, in 16-byte units */
	put_le(hdr + 0x1fe, 0xAA55, 2);				/* boot_flag */
	hdr[0x200] = 0xeb;					/* jmp over the header */
	hdr[0x201] = VERSION_OFFSET - 0x202;
	memcpy(hdr + 0x202, "HdrS", 4);
	put_le(hdr + 0x206, 0x0203, 2);				/* boot protocol 2.03 */
	put_le(hdr + 0x20e, VERSION_OFFSET - 0x200, 2);	/* kernel_version */
	hdr[0x211] = 0x01;					/* loadflags: LOADED_HIGH */
	put_le(hdr + 0x214, 0x100000, 4);			/* code32_start */
	strncpy((char *)hdr + VERSION_OFFSET, argv[2], sizeof(hdr) - VERSION_OFFSET - 1);

	if (fwrite(hdr, 1, sizeof(hdr), stdout) != sizeof(hdr) || fwrite(image, 1, len, stdout) != len) {
		perror("write");
		return 1;
	}
	fprintf(stderr, "System is %lu kB\n", (unsigned long)(len + 1023) / 1024);
	return 0;
}
'''

ASM_UACCESS_H = r'''#ifndef _@GUARD@_UACCESS_H
#define _@GUARD@_UACCESS_H

/*
 * Test fixture: user space access. copy_from_user and copy_to_user are out-of-line functions, exported
 * by the kernel (lib/usercopy.c), as 2.6.9's are on both arches.
 */
#include <linux/compiler.h>
#include <linux/errno.h>

unsigned long copy_from_user(void *to, const void __user *from, unsigned long n);
unsigned long copy_to_user(void __user *to, const void *from, unsigned long n);

#endif /* _@GUARD@_UACCESS_H */
'''

ASM_PAGE_H = {
    "x86_64": r'''#ifndef _X86_64_PAGE_H
#define _X86_64_PAGE_H

/* Test fixture: the constants of Linux 2.6.9's include/asm-x86_64/page.h that the build uses. */

#define PAGE_SHIFT	12
#ifdef __ASSEMBLY__
#define PAGE_SIZE	(1 << PAGE_SHIFT)
#else
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#endif

#define __START_KERNEL		0xffffffff80100000
#define __START_KERNEL_map	0xffffffff80000000
#define __PAGE_OFFSET		0x0000010000000000

#endif /* _X86_64_PAGE_H */
''',
    "i386": r'''#ifndef _I386_PAGE_H
#define _I386_PAGE_H

/* Test fixture: the constants of Linux 2.6.9's include/asm-i386/page.h that the build uses. */

#define PAGE_SHIFT	12
#ifdef __ASSEMBLY__
#define PAGE_SIZE	(1 << PAGE_SHIFT)
#else
#define PAGE_SIZE	(1UL << PAGE_SHIFT)
#endif

#define __PAGE_OFFSET		(0xC0000000)

#endif /* _I386_PAGE_H */
''',
}

# ---------------------------------------------------------------------------------------------------------
# Kconfig, in 2.6.9's layout. Two of its quirks are kept on purpose: legacy "depends X" lines (KMOD,
# SCSI_ATA_PIIX) and a latin-1 byte (EXT2_FS help).

KCONFIG_X86_64 = r'''#
# For a description of the syntax of this configuration file,
# see Documentation/kbuild/kconfig-language.txt.
#
# Test fixture: a small stand-in for Linux 2.6.9's arch/x86_64/Kconfig.
#

mainmenu "Linux Kernel Configuration"

config X86_64
	bool
	default y
	help
	  Port to the x86-64 architecture. x86-64 is a 64-bit extension to the
	  classical 32-bit x86 architecture.

config 64BIT
	def_bool y

config X86
	bool
	default y

config MMU
	bool
	default y

source "init/Kconfig"


menu "Processor type and features"

config SMP
	bool "Symmetric multi-processing support"
	---help---
	  This enables support for systems with more than one CPU.

config PREEMPT
	bool "Preemptible Kernel"
	---help---
	  This option reduces the latency of the kernel when reacting to
	  real-time or interactive events.

config NR_CPUS
	int "Maximum number of CPUs (2-256)"
	range 2 256
	depends on SMP
	default "8"

config X86_HT
	bool
	depends on SMP
	default y

endmenu


menu "General setup"

config PM
	bool "Power Management support"
	help
	  Support for putting the machine into low power states.

config IA32_EMULATION
	bool "IA32 Emulation"
	help
	  Include code to run 32-bit programs under a 64-bit kernel.

endmenu


menu "Power management options"

config ACPI
	bool "ACPI Support"
	depends on IA64 || X86
	default y
	help
	  Advanced Configuration and Power Interface.

config ACPI_BOOT
	bool
	depends on ACPI || X86_HT
	default y

endmenu


menu "Bus options (PCI etc.)"

config PCI
	bool "PCI support"

# x86-64 doesn't support PCI BIOS access from long mode so always go direct.
config PCI_DIRECT
	bool
	depends on PCI
	default y

config PCI_MMCONFIG
	bool "Support mmconfig PCI config space access"
	depends on PCI
	select ACPI_BOOT

endmenu


menu "Executable file formats / Emulations"

config BINFMT_ELF
	bool "Kernel support for ELF binaries"
	default y

endmenu

source drivers/Kconfig

source fs/Kconfig
'''

KCONFIG_I386 = r'''#
# For a description of the syntax of this configuration file,
# see Documentation/kbuild/kconfig-language.txt.
#
# Test fixture: a small stand-in for Linux 2.6.9's arch/i386/Kconfig.
#

mainmenu "Linux Kernel Configuration"

config X86
	bool
	default y
	help
	  This is Linux's home port.

config MMU
	bool
	default y

config UID16
	bool
	default y

source "init/Kconfig"


menu "Processor type and features"

config SMP
	bool "Symmetric multi-processing support"
	---help---
	  This enables support for systems with more than one CPU.

config NR_CPUS
	int "Maximum number of CPUs (2-255)"
	range 2 255
	depends on SMP
	default "8"

config X86_HT
	bool
	depends on SMP
	default y

config PREEMPT
	bool "Preemptible Kernel"
	help
	  This option reduces the latency of the kernel when reacting to
	  real-time or interactive events.

choice
	prompt "High Memory Support"
	default NOHIGHMEM

config NOHIGHMEM
	bool "off"

config HIGHMEM4G
	bool "4GB"

config HIGHMEM64G
	bool "64GB"

endchoice

config HIGHMEM
	bool
	depends on HIGHMEM64G || HIGHMEM4G
	default y

config X86_PAE
	bool
	depends on HIGHMEM64G
	default y

endmenu


menu "General setup"

config PM
	bool "Power Management support"
	help
	  Support for putting the machine into low power states.

config MATH_EMULATION
	bool "Math emulation"
	help
	  Linux can emulate a math coprocessor for processors without one.

endmenu


menu "Power management options (ACPI, APM)"

config ACPI
	bool "ACPI Support"
	depends on IA64 || X86
	default y
	help
	  Advanced Configuration and Power Interface.

config ACPI_BOOT
	bool
	depends on ACPI || X86_HT
	default y

endmenu


menu "Bus options (PCI, PCMCIA, EISA, MCA, ISA)"

config PCI
	bool "PCI support"
	default y

config PCI_MMCONFIG
	bool
	depends on PCI && ACPI
	select ACPI_BOOT
	default y

endmenu


menu "Executable file formats"

config BINFMT_ELF
	bool "Kernel support for ELF binaries"
	default y

endmenu

source "drivers/Kconfig"

source "fs/Kconfig"
'''

KCONFIG_INIT = r'''# Test fixture: a small stand-in for Linux 2.6.9's init/Kconfig.

menu "Code maturity level options"

config EXPERIMENTAL
	bool "Prompt for development and/or incomplete code/drivers"
	---help---
	  Some of the various things that Linux supports are in an early
	  state of development.

config CLEAN_COMPILE
	bool "Select only drivers expected to compile cleanly" if EXPERIMENTAL
	default y

config BROKEN
	bool
	depends on !CLEAN_COMPILE
	default y

endmenu

menu "General setup"

config LOCALVERSION
	string "Local version - append to kernel release"
	help
	  Append an extra string to the end of your kernel version.

config SWAP
	bool "Support for paging of anonymous memory (swap)"
	depends on MMU
	default y

config SYSVIPC
	bool "System V IPC"
	depends on MMU
	default y

config SYSCTL
	bool "Sysctl support"
	default y

config LOG_BUF_SHIFT
	int "Kernel log buffer size (16 => 64KB, 17 => 128KB)"
	range 12 21
	default 15 if SMP
	default 14

config HOTPLUG
	bool "Support for hot-pluggable devices"
	help
	  Say Y here if you want to plug devices into your computer while
	  the system is running.

menuconfig EMBEDDED
	bool "Configure standard kernel features (for small systems)"
	help
	  This option allows certain base kernel options and settings
	  to be disabled or tweaked.

config KALLSYMS
	bool "Load all symbols for debugging/kksymoops" if EMBEDDED
	default y

config FUTEX
	bool "Enable futex support" if EMBEDDED
	default y

endmenu		# General setup

menu "Loadable module support"

config MODULES
	bool "Enable loadable module support"
	help
	  Kernel modules are small pieces of compiled code which can
	  be inserted in the running kernel.

config MODULE_UNLOAD
	bool "Module unloading"
	depends on MODULES
	help
	  Without this option you will not be able to unload any modules.

config MODVERSIONS
	bool "Module versioning support (EXPERIMENTAL)"
	depends on MODULES && EXPERIMENTAL

config KMOD
	bool "Automatic kernel module loading"
	depends MODULES
	help
	  Normally when you have selected some parts of the kernel to
	  be created as kernel modules, you must load them with insmod.

endmenu
'''

KCONFIG_DRIVERS = r'''# Test fixture: a small stand-in for Linux 2.6.9's drivers/Kconfig.

menu "Device Drivers"

menu "Block devices"

config BLK_DEV_LOOP
	tristate "Loopback device support"

config BLK_DEV_RAM
	tristate "RAM disk support"
	---help---
	  Saying Y here will allow you to use a portion of your RAM memory as
	  a block device.

config BLK_DEV_RAM_SIZE
	int "Default RAM disk size"
	depends on BLK_DEV_RAM
	default "4096"

config BLK_DEV_INITRD
	bool "Initial RAM disk (initrd) support"
	depends on BLK_DEV_RAM=y
	help
	  The initial RAM disk is a RAM disk that is loaded by the boot loader.

endmenu

source "drivers/ide/Kconfig"

source "drivers/scsi/Kconfig"

menu "Fusion MPT device support"

config FUSION
	tristate "Fusion MPT (base + ScsiHost) drivers"
	depends on PCI && SCSI

endmenu

source "net/Kconfig"

menu "Character devices"

config VT
	bool "Virtual terminal"
	default y

config SERIAL_8250
	tristate "8250/16550 and compatible serial support"
	select SERIAL_CORE
	---help---
	  This selects whether you want to include the driver for the standard
	  serial ports.

config SERIAL_8250_CONSOLE
	bool "Console on 8250/16550 and compatible serial port"
	depends on SERIAL_8250=y
	select SERIAL_CORE_CONSOLE
	---help---
	  If you say Y here, it will be possible to use a serial port as the
	  system console.

config SERIAL_CORE
	tristate

config SERIAL_CORE_CONSOLE
	bool

endmenu

endmenu
@MISC@'''

KCONFIG_IDE = r'''# Test fixture: a small stand-in for Linux 2.6.9's drivers/ide/Kconfig.

menu "ATA/ATAPI/MFM/RLL support"

config IDE
	tristate "ATA/ATAPI/MFM/RLL support"
	---help---
	  If you say Y here, your kernel will be able to manage low cost mass
	  storage units such as ATA/(E)IDE and ATAPI units.

if IDE

config BLK_DEV_IDE
	tristate "Enhanced IDE/MFM/RLL disk/cdrom/tape/floppy support"
	---help---
	  If you say Y here, you will use the full-featured IDE driver.

if BLK_DEV_IDE

config BLK_DEV_IDEDISK
	tristate "Include IDE/ATA-2 DISK support"
	---help---
	  This will include enhanced support for MFM/RLL/IDE hard disks.

config BLK_DEV_IDECD
	tristate "Include IDE/ATAPI CDROM support"

config IDE_GENERIC
	tristate "generic/default IDE chipset support"
	default y

config BLK_DEV_IDEPCI
	bool "PCI IDE chipset support" if PCI
	help
	  Say Y here for PCI systems which use IDE drive(s).

config BLK_DEV_GENERIC
	tristate "Generic PCI IDE Chipset Support"
	depends on BLK_DEV_IDEPCI

config BLK_DEV_IDEDMA_PCI
	bool "Generic PCI bus-master DMA support"
	depends on PCI && BLK_DEV_IDEPCI
	---help---
	  If your PCI system uses IDE drive(s), say Y.

config BLK_DEV_AMD74XX
	tristate "AMD and nVidia IDE support"
	depends on BLK_DEV_IDEDMA_PCI

config BLK_DEV_PIIX
	tristate "Intel PIIXn chipsets support"
	depends on BLK_DEV_IDEDMA_PCI
	help
	  This driver adds explicit support for Intel PIIX and ICH chips.

config BLK_DEV_IDEDMA
	def_bool BLK_DEV_IDEDMA_PCI

endif

endif

endmenu
'''

KCONFIG_SCSI = r'''# Test fixture: a small stand-in for Linux 2.6.9's drivers/scsi/Kconfig.

menu "SCSI device support"

config SCSI
	tristate "SCSI device support"
	---help---
	  If you want to use a SCSI hard disk, SCSI tape drive, SCSI CD-ROM or
	  any other SCSI device under Linux, say Y.

config SCSI_PROC_FS
	bool "legacy /proc/scsi/ support"
	depends on SCSI && PROC_FS
	default y

comment "SCSI support type (disk, tape, CD-ROM)"
	depends on SCSI

config BLK_DEV_SD
	tristate "SCSI disk support"
	depends on SCSI
	---help---
	  If you want to use SCSI hard disks, say Y.

menu "SCSI low-level drivers"
	depends on SCSI!=n

config BLK_DEV_3W_XXXX_RAID
	tristate "3ware 5/6/7/8xxx ATA-RAID support"
	depends on PCI && SCSI

config SCSI_SATA
	bool "Serial ATA (SATA) support"
	depends on SCSI && EXPERIMENTAL
	help
	  This driver family supports Serial ATA host controllers and devices.

config SCSI_ATA_PIIX
	tristate "Intel PIIX/ICH SATA support"
	depends SCSI_SATA && PCI
	help
	  This option enables support for ICH5 Serial ATA.

config SCSI_SATA_VIA
	tristate "VIA SATA support"
	depends on SCSI_SATA && PCI && EXPERIMENTAL

config SCSI_SYM53C8XX_2
	tristate "SYM53C8XX Version 2 SCSI support"
	depends on PCI && SCSI

config SCSI_QLA2XXX
	tristate
	default (SCSI && PCI)
	depends on SCSI && PCI

endmenu

endmenu
'''

KCONFIG_NET = r'''# Test fixture: a small stand-in for Linux 2.6.9's net/Kconfig.

menu "Networking support"

config NET
	bool "Networking support"
	---help---
	  Unless you really know what you are doing, you should say Y here.

menu "Networking options"
	depends on NET

config PACKET
	tristate "Packet socket"

config UNIX
	tristate "Unix domain sockets"

config INET
	bool "TCP/IP networking"
	---help---
	  These are the protocols used on the Internet and on most local
	  Ethernets.

config IP_MULTICAST
	bool "IP: multicasting"
	depends on INET

endmenu

config NETCONSOLE
	tristate "Network console logging support (EXPERIMENTAL)"
	depends on NET && INET && EXPERIMENTAL

config NETPOLL
	def_bool NETCONSOLE

endmenu
'''

KCONFIG_FS = r'''# Test fixture: a small stand-in for Linux 2.6.9's fs/Kconfig.

menu "File systems"

config EXT2_FS
	tristate "Second extended fs support"
	help
	  Ext2 is a standard Linux file system for hard disks, written by
	  R\xe9my Card.

config EXT2_FS_XATTR
	bool "Ext2 extended attributes"
	depends on EXT2_FS

config EXT3_FS
	tristate "Ext3 journalling file system support"
	select JBD
	help
	  This is the journalling version of the Second extended file system.

config JBD
	tristate
	help
	  The generic journalling layer used by ext3.

config REISERFS_FS
	tristate "Reiserfs support"

config JFS_FS
	tristate "JFS filesystem support"

config XFS_FS
	tristate "XFS filesystem support"

config MINIX_FS
	tristate "Minix fs support"

config ROMFS_FS
	tristate "ROM file system support"

menu "CD-ROM/DVD Filesystems"

config ISO9660_FS
	tristate "ISO 9660 CDROM file system support"

config JOLIET
	bool "Microsoft Joliet CDROM extensions"
	depends on ISO9660_FS

config UDF_FS
	tristate "UDF file system support"

endmenu

menu "DOS/FAT/NT Filesystems"

config FAT_FS
	tristate

config MSDOS_FS
	tristate "MSDOS fs support"
	select FAT_FS

config VFAT_FS
	tristate "VFAT (Windows-95) fs support"
	select FAT_FS

config NTFS_FS
	tristate "NTFS file system support"

endmenu

menu "Pseudo filesystems"

config PROC_FS
	bool "/proc file system support"
	help
	  This is a virtual file system providing information about the status
	  of the system.

config SYSFS
	bool "sysfs file system support" if EMBEDDED
	default y

config TMPFS
	bool "Virtual memory file system support (former shm fs)"

config RAMFS
	bool
	default y

endmenu

menu "Partition Types"

config PARTITION_ADVANCED
	bool "Advanced partition selection"

config MSDOS_PARTITION
	bool "PC BIOS (MSDOS partition tables) support" if PARTITION_ADVANCED
	default y if !PARTITION_ADVANCED

endmenu

endmenu
'''

DEFCONFIG = r'''#
# Test fixture: a small stand-in for Linux 2.6.9's arch/@ARCH@/defconfig.
#
CONFIG_EXPERIMENTAL=y
CONFIG_SWAP=y
CONFIG_SYSVIPC=y
CONFIG_HOTPLUG=y
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_KMOD=y
CONFIG_SMP=y
CONFIG_PCI=y
CONFIG_ACPI=y
CONFIG_BINFMT_ELF=y
CONFIG_BLK_DEV_RAM=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_IDE=y
CONFIG_BLK_DEV_IDE=y
CONFIG_BLK_DEV_IDEDISK=y
CONFIG_BLK_DEV_IDEPCI=y
CONFIG_BLK_DEV_IDEDMA_PCI=y
CONFIG_BLK_DEV_PIIX=y
CONFIG_SCSI=y
CONFIG_BLK_DEV_SD=y
CONFIG_NET=y
CONFIG_PACKET=y
CONFIG_UNIX=y
CONFIG_INET=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_EXT2_FS=y
CONFIG_EXT3_FS=y
CONFIG_PROC_FS=y
CONFIG_TMPFS=y
'''

# ---------------------------------------------------------------------------------------------------------
# The "kernel": a few C files whose functions follow the configuration, and the headers they need.

FS_MAKEFILE = """#
# Makefile for the Linux filesystems (test fixture).
#
# Every filesystem directory is named as in 2.6.9; only proc/ and ext2/ have sources here.

obj-$(CONFIG_PROC_FS)		+= proc/
obj-y				+= partitions/
obj-$(CONFIG_SYSFS)		+= sysfs/

# Do not add any filesystems before this line
obj-$(CONFIG_REISERFS_FS)	+= reiserfs/
obj-$(CONFIG_EXT3_FS)		+= ext3/ # Before ext2 so root fs can be ext3
obj-$(CONFIG_JBD)		+= jbd/
obj-$(CONFIG_EXT2_FS)		+= ext2/
obj-$(CONFIG_RAMFS)		+= ramfs/
obj-$(CONFIG_MINIX_FS)		+= minix/
obj-$(CONFIG_FAT_FS)		+= fat/
obj-$(CONFIG_MSDOS_FS)		+= msdos/
obj-$(CONFIG_VFAT_FS)		+= vfat/
obj-$(CONFIG_ISO9660_FS)	+= isofs/
obj-$(CONFIG_UDF_FS)		+= udf/
obj-$(CONFIG_ROMFS_FS)		+= romfs/
obj-$(CONFIG_JFS_FS)		+= jfs/
obj-$(CONFIG_XFS_FS)		+= xfs/
obj-$(CONFIG_NTFS_FS)		+= ntfs/
"""

DIR_MAKEFILES = {
    "init/Makefile": "#\n# Makefile for the linux kernel (test fixture).\n#\n\nobj-y := main.o\n",
    "kernel/Makefile": ("#\n# Makefile for the linux kernel (test fixture).\n#\n\nobj-y := printk.o\n"
                        "obj-$(CONFIG_MODULES) += module.o\n"),
    "mm/Makefile": ("#\n# Makefile for the linux memory manager (test fixture).\n#\n\nobj-y := slab.o\n"
                    "obj-$(CONFIG_SWAP) += swapfile.o\n"),
    "fs/Makefile": FS_MAKEFILE,
    "fs/proc/Makefile": ("#\n# Makefile for the Linux proc filesystem routines (test fixture).\n#\n\n"
                         "obj-$(CONFIG_PROC_FS) += generic.o\n"),
    "lib/Makefile": ("#\n# Makefile for some libs needed in the kernel (test fixture).\n#\n\n"
                     "obj-y := string.o vsprintf.o usercopy.o\n"),
    "fs/ext2/Makefile": ("#\n# Makefile for the linux ext2-filesystem routines (test fixture).\n#\n\n"
                         "obj-$(CONFIG_EXT2_FS) += ext2.o\n\next2-y := super.o\n"),
    "net/Makefile": ("#\n# Makefile for the linux networking (test fixture).\n#\n\n"
                     "obj-$(CONFIG_NET) := socket.o\n"),
}

C_SOURCES = {
    "init/main.c": r'''/*
 *  linux/init/main.c (test fixture)
 *
 *  The banner, the entry point, and the boot steps whose presence follows the configuration.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/version.h>
#include <linux/compile.h>

const char linux_banner[] =
	"Linux version " UTS_RELEASE " (" LINUX_COMPILE_BY "@"
	LINUX_COMPILE_HOST ") (" LINUX_COMPILER ") " UTS_VERSION "\n";

char saved_command_line[256];
unsigned long loops_per_jiffy = (1 << 12);
static char __initdata boot_command_line[256] = "console=ttyS0";

/*
 * The image's first byte. 2.6.9 puts startup_32 there: arch/<arch>/kernel/head.S is linked first. The
 * fixture's head.S is not assembled, so the entry is here, in the section the linker script puts first.
 */
asm(".section .text.head, \"ax\"\n"
    ".globl startup_32\n"
    "startup_32:\n"
    "\tjmp start_kernel\n"
    ".previous\n");

extern initcall_t __initcall_start[], __initcall_end[];
#ifdef CONFIG_NET
extern void sock_init(void);
#endif

#ifdef CONFIG_SMP
static unsigned int __initdata max_cpus = CONFIG_NR_CPUS;
volatile unsigned long cpu_online_map = 1;

void __init smp_boot_cpus(unsigned int max)
{
	unsigned int cpu;

	for (cpu = 1; cpu < max; cpu++)
		cpu_online_map |= 1UL << cpu;
}
#endif

static void __init do_initcalls(void)
{
	initcall_t *call;

	for (call = __initcall_start; call < __initcall_end; call++)
		(*call)();
}

static void __init parse_args(const char *line)
{
	unsigned int i;

	for (i = 0; line[i] && i < sizeof(saved_command_line) - 1; i++)
		saved_command_line[i] = line[i];
}

asmlinkage void __init start_kernel(void)
{
	printk("%s", linux_banner);
	parse_args(boot_command_line);
#ifdef CONFIG_SMP
	smp_boot_cpus(max_cpus);
#endif
#ifdef CONFIG_NET
	sock_init();
#endif
	do_initcalls();
	for (;;)
		loops_per_jiffy++;
}
''',
    "kernel/printk.c": r'''/*
 *  linux/kernel/printk.c (test fixture)
 *
 *  A log buffer; printk copies its format string into it.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>

#define __LOG_BUF_LEN	(1 << CONFIG_LOG_BUF_SHIFT)

static char __log_buf[__LOG_BUF_LEN];
static unsigned long log_end;
int console_loglevel = 7;

asmlinkage int printk(const char *fmt, ...)
{
	const char *p;

	for (p = fmt; *p; p++)
		__log_buf[log_end++ & (__LOG_BUF_LEN - 1)] = *p;
	return p - fmt;
}
EXPORT_SYMBOL(printk);

void panic(const char *fmt, ...)
{
	printk("Kernel panic - not syncing: ");
	printk("%s", fmt);
	for (;;)
		console_loglevel = 15;
}
EXPORT_SYMBOL(panic);
''',
    "kernel/module.c": r'''/*
 *  linux/kernel/module.c (test fixture)
 *
 *  The module loader's entry points; only built with CONFIG_MODULES.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/vermagic.h>

#define MAX_MODULES	16

static const char vermagic[] = VERMAGIC_STRING;

static struct module *modules[MAX_MODULES];
static unsigned int nr_modules;

extern const struct kernel_symbol __start___ksymtab[], __stop___ksymtab[];

unsigned long find_symbol(const char *name)
{
	const struct kernel_symbol *ks;

	for (ks = __start___ksymtab; ks < __stop___ksymtab; ks++)
		if (strcmp(ks->name, name) == 0)
			return ks->value;
	return 0;
}
EXPORT_SYMBOL(find_symbol);

struct module *load_module(void *umod, unsigned long len, const char *modmagic)
{
	struct module *mod = umod;

	if (len < sizeof(*mod) || nr_modules == MAX_MODULES)
		return NULL;
	if (strcmp(modmagic, vermagic) != 0) {
		printk(KERN_ERR "%s: version magic '%s' should be '%s'\n", mod->name, modmagic, vermagic);
		return NULL;
	}
	modules[nr_modules++] = mod;
	return mod;
}

asmlinkage long sys_init_module(void *umod, unsigned long len, const char *uargs)
{
	struct module *mod = load_module(umod, len, uargs);

	if (!mod)
		return -1;
	return mod->init ? mod->init() : 0;
}

#ifdef CONFIG_MODULE_UNLOAD
asmlinkage long sys_delete_module(const char *name, unsigned int flags)
{
	unsigned int i;

	for (i = 0; i < nr_modules; i++) {
		if (modules[i]->name[0] == name[0] && modules[i]->exit) {
			modules[i]->exit();
			modules[i] = modules[--nr_modules];
			return 0;
		}
	}
	return -1;
}
#endif
''',
    "mm/slab.c": r'''/*
 *  linux/mm/slab.c (test fixture)
 *
 *  kmalloc from a static arena, kfree does nothing.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <asm/page.h>

static char arena[16 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static unsigned long arena_used;

void *kmalloc(size_t size, int flags)
{
	void *p;

	size = (size + 15) & ~15UL;
	if (size > sizeof(arena) - arena_used)
		return NULL;
	p = arena + arena_used;
	arena_used += size;
	return p;
}
EXPORT_SYMBOL(kmalloc);

void kfree(const void *objp)
{
}
EXPORT_SYMBOL(kfree);
''',
    "mm/swapfile.c": r'''/*
 *  linux/mm/swapfile.c (test fixture)
 *
 *  Swap areas; only built with CONFIG_SWAP.
 */
#include <linux/config.h>
#include <linux/kernel.h>

#define MAX_SWAPFILES	32

static const char *swap_info[MAX_SWAPFILES];
static int nr_swapfiles;

asmlinkage long sys_swapon(const char *specialfile, int swap_flags)
{
	if (nr_swapfiles == MAX_SWAPFILES)
		return -1;
	swap_info[nr_swapfiles] = specialfile;
	return nr_swapfiles++;
}

asmlinkage long sys_swapoff(const char *specialfile)
{
	int i;

	for (i = 0; i < nr_swapfiles; i++) {
		if (swap_info[i] == specialfile) {
			swap_info[i] = swap_info[--nr_swapfiles];
			return 0;
		}
	}
	return -1;
}
''',
    "lib/string.c": r'''/*
 *  linux/lib/string.c (test fixture)
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>

size_t strlen(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return p - s;
}
EXPORT_SYMBOL(strlen);

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}
EXPORT_SYMBOL(strcmp);

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++)
		if (*a != *b || !*a)
			return (unsigned char)*a - (unsigned char)*b;
	return 0;
}
EXPORT_SYMBOL(strncmp);

void *memcpy(void *dest, const void *src, size_t n)
{
	char *d = dest;
	const char *s = src;

	while (n--)
		*d++ = *s++;
	return dest;
}
EXPORT_SYMBOL(memcpy);

void *memset(void *s, int c, size_t n)
{
	char *p = s;

	while (n--)
		*p++ = c;
	return s;
}
EXPORT_SYMBOL(memset);
''',
    "lib/vsprintf.c": r'''/*
 *  linux/lib/vsprintf.c (test fixture)
 *
 *  %s, %c, %d, %i, %u, %x with an optional l, and %%: what the fixture's sources and modules print.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>

static char *put(char *p, char *end, char c)
{
	if (p < end)
		*p = c;
	return p + 1;
}

static char *number(char *p, char *end, unsigned long n, unsigned int base, int negative)
{
	char digits[24];
	int i = 0;

	do {
		digits[i++] = "0123456789abcdef"[n % base];
		n /= base;
	} while (n);
	if (negative)
		p = put(p, end, '-');
	while (i)
		p = put(p, end, digits[--i]);
	return p;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list args)
{
	char *p = buf, *end = buf + size;
	const char *s;
	int is_long;
	long v;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			p = put(p, end, *fmt);
			continue;
		}
		is_long = fmt[1] == 'l';
		fmt += 1 + is_long;
		switch (*fmt) {
		case 's':
			for (s = va_arg(args, const char *); *s; s++)
				p = put(p, end, *s);
			break;
		case 'c':
			p = put(p, end, (char)va_arg(args, int));
			break;
		case 'd':
		case 'i':
			v = is_long ? va_arg(args, long) : va_arg(args, int);
			p = number(p, end, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0);
			break;
		case 'u':
		case 'x':
			p = number(p, end, is_long ? va_arg(args, unsigned long) : va_arg(args, unsigned int),
				   *fmt == 'x' ? 16 : 10, 0);
			break;
		case '%':
			p = put(p, end, '%');
			break;
		default:
			if (!*fmt)
				fmt--;
			break;
		}
	}
	if (size)
		*(p < end ? p : end - 1) = '\0';
	return p - buf;
}
EXPORT_SYMBOL(vsnprintf);

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(buf, size, fmt, args);
	va_end(args);
	return n;
}
EXPORT_SYMBOL(snprintf);

int sprintf(char *buf, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(buf, ~0UL >> 1, fmt, args);
	va_end(args);
	return n;
}
EXPORT_SYMBOL(sprintf);
''',
    "lib/usercopy.c": r'''/*
 *  Test fixture: copying from and to user space. 2.6.9 has these per arch (arch/i386/lib/usercopy.c,
 *  arch/x86_64/lib/copy_user.S); the fixture has no user space, so they are plain copies.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>
#include <asm/uaccess.h>

unsigned long copy_from_user(void *to, const void __user *from, unsigned long n)
{
	memcpy(to, (const void *)from, n);
	return 0;
}
EXPORT_SYMBOL(copy_from_user);

unsigned long copy_to_user(void __user *to, const void *from, unsigned long n)
{
	memcpy((void *)to, from, n);
	return 0;
}
EXPORT_SYMBOL(copy_to_user);
''',
    "fs/proc/generic.c": r'''/*
 *  linux/fs/proc/generic.c (test fixture)
 *
 *  The /proc entry registry modules use: proc_mkdir, create_proc_entry, remove_proc_entry.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/proc_fs.h>

#define MAX_PROC_ENTRIES	64

static struct proc_dir_entry entries[MAX_PROC_ENTRIES];
struct proc_dir_entry proc_root = { .name = "/proc", .mode = S_IFDIR | 0555 };
EXPORT_SYMBOL(proc_root);

struct proc_dir_entry *create_proc_entry(const char *name, mode_t mode, struct proc_dir_entry *parent)
{
	unsigned int i;

	for (i = 0; i < MAX_PROC_ENTRIES; i++) {
		if (!entries[i].name) {
			memset(&entries[i], 0, sizeof(entries[i]));
			entries[i].name = name;
			entries[i].mode = mode;
			entries[i].parent = parent ? parent : &proc_root;
			return &entries[i];
		}
	}
	return NULL;
}
EXPORT_SYMBOL(create_proc_entry);

struct proc_dir_entry *proc_mkdir(const char *name, struct proc_dir_entry *parent)
{
	return create_proc_entry(name, S_IFDIR | 0555, parent);
}
EXPORT_SYMBOL(proc_mkdir);

void remove_proc_entry(const char *name, struct proc_dir_entry *parent)
{
	unsigned int i;

	if (!parent)
		parent = &proc_root;
	for (i = 0; i < MAX_PROC_ENTRIES; i++)
		if (entries[i].name && entries[i].parent == parent && strcmp(entries[i].name, name) == 0)
			entries[i].name = NULL;
}
EXPORT_SYMBOL(remove_proc_entry);
''',
    "net/socket.c": r'''/*
 *  linux/net/socket.c (test fixture)
 *
 *  The socket layer; only built with CONFIG_NET.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/init.h>

#define NPROTO	32

static int net_families[NPROTO];

asmlinkage long sys_socket(int family, int type, int protocol)
{
	if (family < 0 || family >= NPROTO || !net_families[family])
		return -1;
	return family * 16 + type;
}

#ifdef CONFIG_INET
static void __init inet_init(void)
{
	net_families[2] = 1;
}
#endif

void __init sock_init(void)
{
	net_families[1] = 1;
#ifdef CONFIG_INET
	inet_init();
#endif
	printk("Linux NET4.0 for Linux 2.4\n");
}
''',
    "fs/ext2/super.c": r'''/*
 *  linux/fs/ext2/super.c (test fixture)
 *
 *  Built in with CONFIG_EXT2_FS=y, as the module ext2.ko with CONFIG_EXT2_FS=m.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/init.h>

#define EXT2_SUPER_MAGIC	0xEF53

static int ext2_mounts;

int ext2_fill_super(void *sb, void *data, int silent)
{
	const unsigned short *magic = (const unsigned short *)((const char *)sb + 56);

	if (*magic != EXT2_SUPER_MAGIC) {
		if (!silent)
			printk("VFS: Can't find ext2 filesystem\n");
		return -1;
	}
	ext2_mounts++;
	return 0;
}

static int __init init_ext2_fs(void)
{
	printk(KERN_INFO "ext2: registered\n");
	return 0;
}

static void __exit exit_ext2_fs(void)
{
	printk(KERN_INFO "ext2: unregistered after %d mounts\n", ext2_mounts);
}

module_init(init_ext2_fs)
module_exit(exit_ext2_fs)
MODULE_LICENSE("GPL");
''',
}

HEADERS = {
    "include/linux/config.h": r'''#ifndef _LINUX_CONFIG_H
#define _LINUX_CONFIG_H

#include <linux/autoconf.h>

#endif
''',
    "include/linux/compiler.h": r'''#ifndef __LINUX_COMPILER_H
#define __LINUX_COMPILER_H

/* Test fixture: the few compiler helpers the fixture's sources use. */

#define __attribute_used__	__attribute__((__used__))
#define __user

#define __stringify_1(x)	#x
#define __stringify(x)		__stringify_1(x)

#endif /* __LINUX_COMPILER_H */
''',
    "include/linux/kernel.h": r'''#ifndef _LINUX_KERNEL_H
#define _LINUX_KERNEL_H

/* Test fixture: the declarations the fixture's sources and simple modules need. */

#include <linux/config.h>
#include <linux/compiler.h>
#include <linux/types.h>
#include <stdarg.h>

#define KERN_EMERG	"<0>"
#define KERN_ERR	"<3>"
#define KERN_WARNING	"<4>"
#define KERN_INFO	"<6>"
#define KERN_DEBUG	"<7>"

#ifndef NULL
#define NULL ((void *)0)
#endif

#ifdef __i386__
#define asmlinkage __attribute__((regparm(0)))
#else
#define asmlinkage
#endif

#define GFP_KERNEL	0xd0

asmlinkage int printk(const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list args);
int sprintf(char *buf, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
void panic(const char *fmt, ...) __attribute__ ((noreturn, format (printf, 1, 2)));

/* In 2.6.9 these live in <linux/slab.h>. */
void *kmalloc(size_t size, int flags);
void kfree(const void *objp);

#endif
''',
    "include/linux/types.h": r'''#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H

/* Test fixture: the basic kernel types (2.6.9 takes some of them from <asm/posix_types.h>). */

typedef __SIZE_TYPE__ size_t;
typedef long off_t;
typedef unsigned short umode_t;
typedef unsigned int mode_t;

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed int s32;
typedef signed long long s64;
typedef u32 uint32_t;

#endif /* _LINUX_TYPES_H */
''',
    "include/linux/errno.h": r'''#ifndef _LINUX_ERRNO_H
#define _LINUX_ERRNO_H

/* Test fixture: the error numbers (2.6.9: <asm-generic/errno-base.h> through <asm/errno.h>). */

#define EPERM		 1
#define ENOENT		 2
#define EIO		 5
#define ENOEXEC		 8
#define EAGAIN		11
#define ENOMEM		12
#define EFAULT		14
#define EBUSY		16
#define EEXIST		17
#define ENODEV		19
#define EINVAL		22
#define ENOSPC		28
#define ENOSYS		38

#endif /* _LINUX_ERRNO_H */
''',
    "include/linux/string.h": r'''#ifndef _LINUX_STRING_H_
#define _LINUX_STRING_H_

/* Test fixture: the string functions lib/string.c provides. */

#include <linux/types.h>

size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
void *memcpy(void *dest, const void *src, size_t n);
void *memset(void *s, int c, size_t n);

#endif /* _LINUX_STRING_H_ */
''',
    "include/linux/proc_fs.h": r'''#ifndef _LINUX_PROC_FS_H
#define _LINUX_PROC_FS_H

/* Test fixture: the /proc entry interface of Linux 2.6.9 that modules use (read_proc/write_proc). */

#include <linux/config.h>
#include <linux/types.h>
#include <linux/compiler.h>

#define S_IFDIR	0040000
#define S_IFREG	0100000

struct file;

typedef int (read_proc_t)(char *page, char **start, off_t off, int count, int *eof, void *data);
typedef int (write_proc_t)(struct file *file, const char __user *buffer, unsigned long count, void *data);

struct proc_dir_entry {
	const char *name;
	mode_t mode;
	struct proc_dir_entry *parent;
	read_proc_t *read_proc;
	write_proc_t *write_proc;
	void *data;
};

extern struct proc_dir_entry proc_root;

struct proc_dir_entry *create_proc_entry(const char *name, mode_t mode, struct proc_dir_entry *parent);
struct proc_dir_entry *proc_mkdir(const char *name, struct proc_dir_entry *parent);
void remove_proc_entry(const char *name, struct proc_dir_entry *parent);

#endif /* _LINUX_PROC_FS_H */
''',
    "include/linux/init.h": r'''#ifndef _LINUX_INIT_H
#define _LINUX_INIT_H

/* Test fixture: init and exit sections and initcalls, as Linux 2.6.9 arranges them. */

#include <linux/config.h>
#include <linux/compiler.h>

#define __init		__attribute__ ((__section__ (".init.text")))
#define __initdata	__attribute__ ((__section__ (".init.data")))
#define __exit		__attribute_used__ __attribute__ ((__section__ (".exit.text")))
#define __exitdata	__attribute__ ((__section__ (".exit.data")))

typedef int (*initcall_t)(void);
typedef void (*exitcall_t)(void);

#ifndef MODULE

#define __define_initcall(level, fn) \
	static initcall_t __initcall_##fn __attribute_used__ \
	__attribute__((__section__(".initcall" level ".init"))) = fn

#define module_init(x)	__define_initcall("6", x);
#define module_exit(x)	static exitcall_t __exitcall_##x __attribute_used__ \
	__attribute__ ((__section__ (".exitcall.exit"))) = x;

#else /* MODULE */

/* A module's entry points are init_module and cleanup_module, aliases of the functions named here. */
#define module_init(initfn) \
	static inline initcall_t __inittest(void) { return initfn; } \
	int init_module(void) __attribute__((alias(#initfn)));

#define module_exit(exitfn) \
	static inline exitcall_t __exittest(void) { return exitfn; } \
	void cleanup_module(void) __attribute__((alias(#exitfn)));

#endif

#endif /* _LINUX_INIT_H */
''',
    "include/linux/module.h": r'''#ifndef _LINUX_MODULE_H
#define _LINUX_MODULE_H

/*
 * Test fixture: the parts of Linux 2.6.9's <linux/module.h> that place data where the loader and the
 * tools look: .modinfo tags, the __ksymtab export tables, struct module.
 */

#include <linux/config.h>
#include <linux/compiler.h>
#include <linux/init.h>

#define MODULE_NAME_LEN (64 - sizeof(unsigned long))

struct kernel_symbol {
	unsigned long value;
	const char *name;
};

struct module {
	char name[MODULE_NAME_LEN];
	int (*init)(void);
	void (*exit)(void);
};

#ifdef MODULE
extern struct module __this_module;
#define THIS_MODULE (&__this_module)
extern int init_module(void);
extern void cleanup_module(void);
#else
#define THIS_MODULE ((struct module *)0)
#endif

#define ___module_cat(a, b) __mod_ ## a ## b
#define __module_cat(a, b) ___module_cat(a, b)

#ifdef MODULE
#define __MODULE_INFO(tag, name, info) \
	static const char __module_cat(name, __LINE__)[] __attribute_used__ \
	__attribute__((section(".modinfo"), unused)) = __stringify(tag) "=" info
#else
#define __MODULE_INFO(tag, name, info)
#endif

#define MODULE_INFO(tag, info) __MODULE_INFO(tag, tag, info)
#define MODULE_LICENSE(_license) MODULE_INFO(license, _license)
#define MODULE_AUTHOR(_author) MODULE_INFO(author, _author)
#define MODULE_DESCRIPTION(_description) MODULE_INFO(description, _description)

#ifdef CONFIG_MODULES
#define __EXPORT_SYMBOL(sym, sec) \
	extern typeof(sym) sym; \
	static const char __kstrtab_##sym[] \
	__attribute__((section("__ksymtab_strings"))) = #sym; \
	static const struct kernel_symbol __ksymtab_##sym __attribute_used__ \
	__attribute__((section("__ksymtab" sec), unused)) = { (unsigned long)&sym, __kstrtab_##sym }
#define EXPORT_SYMBOL(sym) __EXPORT_SYMBOL(sym, "")
#define EXPORT_SYMBOL_GPL(sym) __EXPORT_SYMBOL(sym, "_gpl")
#else
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)
#endif

#endif /* _LINUX_MODULE_H */
''',
    "include/linux/vermagic.h": r'''/*
 * Test fixture: the version magic of Linux 2.6.9 modules: release, "SMP " and "preempt " when
 * configured, and the version of the compiler that built the module.
 */
#include <linux/version.h>
#include <linux/compiler.h>

#ifdef CONFIG_SMP
#define VERMAGIC_SMP "SMP "
#else
#define VERMAGIC_SMP ""
#endif
#ifdef CONFIG_PREEMPT
#define VERMAGIC_PREEMPT "preempt "
#else
#define VERMAGIC_PREEMPT ""
#endif

#define VERMAGIC_STRING UTS_RELEASE " " VERMAGIC_SMP VERMAGIC_PREEMPT \
	"gcc-" __stringify(__GNUC__) "." __stringify(__GNUC_MINOR__)
''',
}

# ---------------------------------------------------------------------------------------------------------
# Files the product reads but the fixture never compiles: CVS $Id$ lines (the minik patch's rejects),
# the boot code's hard-coded jump to the kernel, the module loaders' relocation switches.

UNBUILT_SOURCES = {
    "arch/x86_64/boot/compressed/head.S": r'''/*
 *  linux/arch/x86_64/boot/compressed/head.S (test fixture)
 *
 *  $Id: head.S,v 1.3 2001/04/20 00:59:28 ak Exp $
 */

/*
 * The decompressor's entry, reduced to its shape: set up segments, call the
 * decompressor, jump to the kernel it placed at 1 MB. Not assembled; the
 * product reads the kernel's start address from the far jump below.
 */
	.code32
	.text
	.globl startup_32
startup_32:
	cld
	cli
	movl $(__KERNEL_DS), %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss

	call decompress_kernel		# returns 0 when the kernel is in place
	testl %eax, %eax
	jnz 1f

	xorl %ebx, %ebx			# boot CPU
	ljmp $(__KERNEL_CS), $0x100000

1:	hlt
	jmp 1b
''',
    "arch/i386/boot/compressed/head.S": r'''/*
 *  linux/arch/i386/boot/compressed/head.S (test fixture)
 */

/*
 * The decompressor's entry, reduced to its shape: set up segments, call the
 * decompressor, jump to the kernel it placed at 1 MB. Not assembled; the
 * product reads the kernel's start address from the far jump below.
 */
	.text
	.globl startup_32
startup_32:
	cld
	cli
	movl $(__BOOT_DS), %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss

	call decompress_kernel		# returns 0 when the kernel is in place
	testl %eax, %eax
	jnz 1f

	xorl %ebx, %ebx			# boot CPU
	ljmp $(__BOOT_CS), $0x100000

1:	hlt
	jmp 1b
''',
    "arch/x86_64/kernel/head.S": r'''/*
 *  linux/arch/x86_64/kernel/head.S (test fixture)
 *
 *  $Id: head.S,v 1.49 2002/03/19 17:39:25 ak Exp $
 */

/*
 * The 32-bit to 64-bit switch, reduced to its steps. Not assembled.
 */
	.text
	.code32
	.globl startup_32
startup_32:
	movl	%cr4, %eax		# physical address extension
	orl	$0x20, %eax
	movl	%eax, %cr4

	movl	$(boot_level4_pgt - __START_KERNEL_map), %eax
	movl	%eax, %cr3		# early page tables

	movl	$0xc0000080, %ecx	# EFER: long mode enable
	rdmsr
	orl	$0x100, %eax
	wrmsr
''',
    "arch/x86_64/kernel/setup.c": r'''/*
 *  linux/arch/x86_64/kernel/setup.c (test fixture)
 *
 *  $Id$
 */

/*
 * Early, architecture-dependent initialisation, reduced to the command
 * line scan. Not compiled.
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/init.h>

int acpi_disabled;

static char command_line[256];
extern char saved_command_line[256];

static void __init parse_cmdline_early(char **cmdline_p)
{
	const char *from = saved_command_line;
	char *to = command_line;

	while (*from && to < command_line + sizeof(command_line) - 1) {
		if ((from == saved_command_line || from[-1] == ' ') &&
		    !strncmp(from, "acpi=off", 8))
			acpi_disabled = 1;
		*to++ = *from++;
	}
	*to = '\0';
	*cmdline_p = command_line;
}

void __init setup_arch(char **cmdline_p)
{
	parse_cmdline_early(cmdline_p);
}
''',
    "arch/x86_64/kernel/setup64.c": r'''/*
 * linux/arch/x86_64/kernel/setup64.c (test fixture)
 * $Id: setup64.c,v 1.12 2002/03/21 10:09:17 ak Exp $
 */
#include <linux/config.h>
#include <linux/kernel.h>
#include <linux/init.h>

/*
 * Per-CPU setup, reduced to the "noexec=" option. Not compiled.
 */

char x86_boot_params[2048] __initdata;

unsigned long __supported_pte_mask = ~0UL;
static int do_not_nx __initdata;

int __init nonx_setup(char *str)
{
	do_not_nx = !strncmp(str, "off", 3);
	if (do_not_nx)
		__supported_pte_mask &= ~_PAGE_NX;
	else
		__supported_pte_mask |= _PAGE_NX;
	return 0;
}
''',
    "arch/x86_64/kernel/module.c": r'''/*
 * linux/arch/x86_64/kernel/module.c (test fixture)
 *
 * The relocation rules of Linux 2.6.9's x86_64 module loader: NONE, 64, 32,
 * 32S and PC32 are applied, any other type is refused with "Unknown rela
 * relocation". The lines around the PC32 case are laid out as in 2.6.9, so
 * that a patch written against the real file applies here too. Not compiled.
 */
#include <linux/kernel.h>
#include <linux/elf.h>
#include <linux/module.h>

int apply_relocate_add(Elf64_Shdr *sechdrs, const char *strtab,
		       unsigned int symindex, unsigned int relsec,
		       struct module *me)
{
	Elf64_Rela *rel = (void *)sechdrs[relsec].sh_addr;
	Elf64_Sym *symtab = (Elf64_Sym *)sechdrs[symindex].sh_addr;
	unsigned int i;
	void *loc;
	u64 val;

	for (i = 0; i < sechdrs[relsec].sh_size / sizeof(*rel); i++) {
		loc = (void *)sechdrs[sechdrs[relsec].sh_info].sh_addr
			+ rel[i].r_offset;
		val = symtab[ELF64_R_SYM(rel[i].r_info)].st_value
			+ rel[i].r_addend;

		switch (ELF64_R_TYPE(rel[i].r_info)) {
		case R_X86_64_NONE:
			break;
		case R_X86_64_64:
			*(u64 *)loc = val;
			break;
		case R_X86_64_32:
			*(u32 *)loc = val;
			if (val != *(u32 *)loc)
				goto overflow;
			break;
		case R_X86_64_32S:
			*(s32 *)loc = val;
			if ((s64)val != *(s32 *)loc)
				goto overflow;
			break;
		case R_X86_64_PC32: 
			val -= (u64)loc;
			*(u32 *)loc = val;
#if 0
			/* no overflow check for PC32 */
#endif
			break;
		default:
			printk(KERN_ERR "module %s: Unknown rela relocation: %Lu\n",
			       me->name, ELF64_R_TYPE(rel[i].r_info));
			return -ENOEXEC;
		}
	}
	return 0;

overflow:
	printk(KERN_ERR "module %s: relocation overflow\n", me->name);
	return -ENOEXEC;
}
''',
    "arch/i386/kernel/module.c": r'''/*
 * linux/arch/i386/kernel/module.c (test fixture)
 *
 * The relocation rules of Linux 2.6.9's i386 module loader: REL sections
 * only, types 32 and PC32; any other type is refused with "Unknown
 * relocation". Not compiled.
 */
#include <linux/kernel.h>
#include <linux/elf.h>
#include <linux/module.h>

int apply_relocate(Elf32_Shdr *sechdrs, const char *strtab,
		   unsigned int symindex, unsigned int relsec,
		   struct module *me)
{
	Elf32_Rel *rel = (void *)sechdrs[relsec].sh_addr;
	Elf32_Sym *symtab = (Elf32_Sym *)sechdrs[symindex].sh_addr;
	unsigned int i;
	uint32_t *location;
	uint32_t value;

	for (i = 0; i < sechdrs[relsec].sh_size / sizeof(*rel); i++) {
		location = (void *)sechdrs[sechdrs[relsec].sh_info].sh_addr
			+ rel[i].r_offset;
		value = symtab[ELF32_R_SYM(rel[i].r_info)].st_value;

		switch (ELF32_R_TYPE(rel[i].r_info)) {
		case R_386_32:
			*location += value;
			break;
		case R_386_PC32:
			*location += value - (uint32_t)location;
			break;
		default:
			printk(KERN_ERR "module %s: Unknown relocation: %u\n",
			       me->name, ELF32_R_TYPE(rel[i].r_info));
			return -ENOEXEC;
		}
	}
	return 0;
}

int apply_relocate_add(Elf32_Shdr *sechdrs, const char *strtab,
		       unsigned int symindex, unsigned int relsec,
		       struct module *me)
{
	printk(KERN_ERR "module %s: ADD RELOCATION unsupported\n", me->name);
	return -ENOEXEC;
}
''',
}

# ---------------------------------------------------------------------------------------------------------
# Symbols named by the product's config fragments

_FRAGMENT_LINE = re.compile(r"^\s*(?:#\s*)?CONFIG_([A-Za-z0-9_]+)(?:=(.*)|\s+is not set)")
_SYMBOL = re.compile(r"^(?:CONFIG_)?([A-Z0-9][A-Z0-9_]*[A-Z0-9])$")
_ASSIGNMENT = re.compile(r"^(?:CONFIG_)?([A-Z0-9][A-Z0-9_]*[A-Z0-9])=(.*)$")
_KCONFIG_DEFINITION = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)", re.M)


def _kconfig_type(value):
    """The Kconfig type a fragment value implies, or None when it fits any bool/tristate."""
    if value is None or isinstance(value, bool):
        return None
    value = str(value).strip()
    if value == "m":
        return "tristate"
    if value in ("y", "n", ""):
        return None
    if value.startswith('"'):
        return "string"
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", value):
        return "hex"
    if re.fullmatch(r"-?[0-9]+", value):
        return "int"
    return None


def fragment_symbols(configs_dir):
    """Every symbol the *.config and *.toml files under configs_dir mention, with the Kconfig type to
    declare it as ("bool", "tristate", "int", "hex" or "string")."""
    found = {}

    def note(name, value):
        kind = _kconfig_type(value)
        previous = found.get(name)
        if kind is None:
            found[name] = previous or "bool"
        elif previous in (None, "bool"):
            found[name] = kind

    def walk(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                m = _SYMBOL.match(key)
                if m and isinstance(value, (str, bool)):
                    note(m.group(1), value)
                walk(value)
        elif isinstance(obj, list):
            for item in obj:
                walk(item)
        elif isinstance(obj, str):
            m = _ASSIGNMENT.match(obj.strip())
            if m:
                note(m.group(1), m.group(2))
            else:
                m = _SYMBOL.match(obj.strip())
                if m:
                    note(m.group(1), None)

    configs_dir = Path(configs_dir)
    if not configs_dir.is_dir():
        return found
    for path in sorted(configs_dir.rglob("*.config")):
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _FRAGMENT_LINE.match(line)
            if m:
                note(m.group(1), m.group(2))
    for path in sorted(configs_dir.rglob("*.toml")):
        with open(path, "rb") as f:
            walk(tomllib.load(f))
    return found


def _misc_menu(symbols):
    if not symbols:
        return ""
    out = ['\nmenu "Misc"\n']
    for name in sorted(symbols):
        kind = symbols[name]
        out.append("\nconfig %s\n\t%s \"%s\"\n" % (name, kind, name))
        if kind in ("int", "hex"):
            out.append("\tdefault %s\n" % ("0" if kind == "int" else "0x0"))
        out.append("\thelp\n\t  Declared by the test fixture for a symbol the product's config fragments name.\n")
    out.append("\nendmenu\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Assembly of the tree

def _split_release(release):
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(.*)", release)
    if not m:
        raise ValueError("release %r is not of the form VERSION.PATCHLEVEL.SUBLEVEL[EXTRAVERSION]" % release)
    return m.groups()


def fixture_files(*, release="2.6.9", configs_dir=None):
    """The fixture tree as {relative path: bytes}, paths relative to linux-<release>/."""
    version, patchlevel, sublevel, extraversion = _split_release(release)
    text = {}
    text["Makefile"] = (TOP_MAKEFILE.replace("@VERSION@", version).replace("@PATCHLEVEL@", patchlevel)
                        .replace("@SUBLEVEL@", sublevel)
                        .replace("@EXTRAVERSION@", " " + extraversion if extraversion else ""))
    text["scripts/Makefile.build"] = MAKEFILE_BUILD
    text["scripts/Makefile.modpost"] = MAKEFILE_MODPOST
    text["scripts/kconfig/conf.py"] = CONF_PY
    for arch in ARCHES:
        makefile = ARCH_MAKEFILE.replace("@ARCH@", arch)
        for key, value in ARCH_MAKE_VARS[arch].items():
            makefile = makefile.replace(key, value)
        text["arch/%s/Makefile" % arch] = makefile
        lds = VMLINUX_LDS.replace("@ARCH@", arch)
        for key, value in LDS_VARS[arch].items():
            lds = lds.replace(key, value)
        text["arch/%s/kernel/vmlinux.lds.S" % arch] = lds
        text["arch/%s/boot/tools/build.c" % arch] = BOOT_BUILD_C.replace("@ARCH@", arch)
        text["arch/%s/defconfig" % arch] = DEFCONFIG.replace("@ARCH@", arch)
        text["include/asm-%s/page.h" % arch] = ASM_PAGE_H[arch]
        text["include/asm-%s/uaccess.h" % arch] = ASM_UACCESS_H.replace("@GUARD@", arch.upper())
    text["arch/x86_64/Kconfig"] = KCONFIG_X86_64
    text["arch/i386/Kconfig"] = KCONFIG_I386
    text["init/Kconfig"] = KCONFIG_INIT
    text["drivers/ide/Kconfig"] = KCONFIG_IDE
    text["drivers/scsi/Kconfig"] = KCONFIG_SCSI
    text["net/Kconfig"] = KCONFIG_NET
    # 2.6.9's Kconfig files are latin-1; this help text carries the one non-ASCII byte of the fixture.
    text["fs/Kconfig"] = KCONFIG_FS.replace(r"R\xe9my", "R\u00e9my")
    defined = set(_KCONFIG_DEFINITION.findall(KCONFIG_DRIVERS))
    for name, content in text.items():
        if os.path.basename(name) == "Kconfig":
            defined.update(_KCONFIG_DEFINITION.findall(content))
    wanted = fragment_symbols(DEFAULT_CONFIGS_DIR if configs_dir is None else configs_dir)
    missing = {name: kind for name, kind in wanted.items()
               if name not in defined and name not in MINIK_PATCH_SYMBOLS}
    text["drivers/Kconfig"] = KCONFIG_DRIVERS.replace("@MISC@", _misc_menu(missing))
    text.update(DIR_MAKEFILES)
    text.update(C_SOURCES)
    text.update(HEADERS)
    text.update(UNBUILT_SOURCES)
    return {path: content.encode("latin-1") for path, content in sorted(text.items())}


def make_fixture_tree(root, *, release="2.6.9", configs_dir=None):
    """Write the fixture tree at root/linux-<release> and return that path.

    configs_dir: where the product's config fragments are (default: the repository's configs/); every
    symbol they name that the fixture does not define is declared in a "Misc" menu, except the symbols
    only the minik patch defines. Raises FileExistsError if the tree is already there."""
    root = Path(root)
    dest = root / ("linux-" + release)
    if dest.exists():
        raise FileExistsError("%s already exists" % dest)
    files = fixture_files(release=release, configs_dir=configs_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".linux-fixture-", dir=root))
    try:
        for rel, data in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        staging.chmod(0o755)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def make_fixture_tarball(out_dir, *, compression="bz2", release="2.6.9", configs_dir=None):
    """Write out_dir/linux-<release>.tar.<compression> (bz2, gz or xz) holding the fixture tree under
    linux-<release>/, and return its path. Byte-for-byte reproducible: sorted members, fixed mtime,
    owner root:root, modes 0755/0644, no time stamp in the compression header."""
    if compression not in COMPRESSIONS:
        raise ValueError("compression %r is not one of %s" % (compression, ", ".join(sorted(COMPRESSIONS))))
    top = "linux-" + release
    files = {top + "/" + rel: data for rel, data in fixture_files(release=release, configs_dir=configs_dir).items()}
    dirs = {top}
    for name in files:
        parts = name.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(dirs | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = TARBALL_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if name in files:
                info.mode = 0o644
                info.size = len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / ("%s.tar.%s" % (top, compression))
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(COMPRESSIONS[compression](buf.getvalue()))
    os.replace(tmp, dest)
    return dest


# ---------------------------------------------------------------------------------------------------------
# Stand-in for the upstream minik patch

# The same Kconfig options the real-tree stand-in adds, with the blank line that separates them from what follows.
MINIK_KCONFIG = "\n" + standin_minik.KCONFIG_OPTIONS.decode()

_CVS_ID = re.compile(r"\$Id(?::[^$\n]*)?\$")

# The four x86_64 files whose CVS $Id$ lines make GNU patch reject the real minik patch. For each: the $Id$
# the patch author's checkout had (different from 2.6.9's), the $Id$ after their change (None: unchanged),
# and the lines the patch adds right after the $Id$ line.
MINIK_ID_HUNKS = {
    "arch/x86_64/boot/compressed/head.S": (
        "$Id: head.S,v 1.5 2004/11/02 10:00:00 minik Exp $", None,
        [" *  Mini kernel: decompressed into the memory mkexec reserved, started at 1 MB.\n"]),
    "arch/x86_64/kernel/head.S": (
        "$Id: head.S,v 1.52 2004/11/02 10:00:00 minik Exp $", None,
        [" *  Mini kernel: the early page tables also map the dump reserve.\n"]),
    "arch/x86_64/kernel/setup.c": (
        "$Id: setup.c,v 1.2 2004/11/02 10:00:00 minik Exp $",
        "$Id: setup.c,v 1.3 2005/08/26 10:00:00 minik Exp $", []),
    "arch/x86_64/kernel/setup64.c": (
        "$Id: setup64.c,v 1.14 2004/11/02 10:00:00 minik Exp $", None,
        [" * Mini kernel: NX stays off, the dump code runs from data pages.\n"]),
}

# An ordinary hunk in a file that also has a keyword-only hunk: after this line, these lines.
MINIK_SETUP_ANCHOR = "int acpi_disabled;\n"
MINIK_SETUP_LINES = ["\n", "#ifdef CONFIG_DUMP_MINI_KERNEL\n", "unsigned long dump_dev;\n", "#endif\n"]


def make_fixture_minik_patch(tree):
    """A stand-in for minik-2.6.9-1.0-update1.patch, made against the fixture tree at `tree` (a unified
    diff for `patch -p1`, a/ and b/ prefixes, as bytes).

    It adds DUMP_MINI_KERNEL and the PAE choice to "General setup" in both arch Kconfig files, and touches
    the four x86_64 files whose $Id$ lines the README says to "ignore": the patch's context there carries
    differently expanded $Id$ lines, so GNU patch rejects those hunks. setup.c's $Id$ hunk changes only the
    keyword (plus an ordinary hunk further down); the three others add real lines next to the $Id$ line.
    Raises ValueError if the tree lacks an anchor the patch needs."""
    tree = Path(tree)
    changes = {}
    for arch in ARCHES:
        rel = "arch/%s/Kconfig" % arch
        old = (tree / rel).read_text(encoding="latin-1")
        anchor = 'menu "General setup"\n'
        if anchor not in old:
            raise ValueError("%s has no 'menu \"General setup\"' to patch" % (tree / rel))
        at = old.index(anchor) + len(anchor)
        changes[rel] = (old, old[:at] + MINIK_KCONFIG + old[at:])
    for rel, (their_id, new_id, added) in MINIK_ID_HUNKS.items():
        lines = (tree / rel).read_text(encoding="latin-1").splitlines(keepends=True)
        where = [i for i, line in enumerate(lines) if _CVS_ID.search(line)]
        if len(where) != 1:
            raise ValueError("%s should have exactly one $Id$ line" % (tree / rel))
        i = where[0]
        old = lines[:i] + [_CVS_ID.sub(lambda _: their_id, lines[i])] + lines[i + 1:]
        new = list(old)
        if new_id:
            new[i] = _CVS_ID.sub(lambda _: new_id, new[i])
        new[i + 1:i + 1] = added
        if rel == "arch/x86_64/kernel/setup.c":
            if MINIK_SETUP_ANCHOR not in new:
                raise ValueError("%s has no line %r to patch after" % (tree / rel, MINIK_SETUP_ANCHOR))
            j = new.index(MINIK_SETUP_ANCHOR) + 1
            new[j:j] = MINIK_SETUP_LINES
        changes[rel] = ("".join(old), "".join(new))
    out = ["Stand-in for minik-2.6.9-1.0-update1.patch, generated for the mkdump-build test fixture.\n\n"]
    for rel in sorted(changes):
        old, new = changes[rel]
        out.append("diff -urN a/%s b/%s\n" % (rel, rel))
        out.extend(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        "a/" + rel, "b/" + rel, n=3))
    return "".join(out).encode("latin-1")
