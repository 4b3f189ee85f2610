/*
 * /init of the system-kernel boot test: load /module.ko with init_module(2) and say what happened; if the
 * initramfs holds a /plan, carry out its steps (load the disk's modules, wait for the disk, mount it, read a file
 * on it); if it also holds /mkexec.ko, load it too, mount /proc and say which /proc/mkexec entries its init made;
 * power off.
 *
 * No libc: today's glibc refuses to start on kernels older than 3.2, so everything here is raw system calls.
 * The console lines starting with "mkdump-init:" are read by site_scons/mkdump/boot.py; keep them in step.
 * Built by mkdump.initramfs.build_init: gcc -static -nostdlib -ffreestanding -fno-pie -no-pie, the arch file's
 * arch_cflags, and the system-call numbers of its [boot_test] syscalls as -DNR_<name>=<number>. The system-call
 * entry below is per arch (the compiler's own arch macro); an arch without one stops the build here.
 */

typedef unsigned long size_t;
typedef long ssize_t;

#if !defined(NR_read) || !defined(NR_write) || !defined(NR_open) || !defined(NR_close) || !defined(NR_exit) || \
	!defined(NR_mount) || !defined(NR_reboot) || !defined(NR_init_module) || !defined(NR_nanosleep)
#error "the system-call numbers come from kernel/arch/<arch>.toml [boot_test] syscalls, as -DNR_<name>=<number>"
#endif

#if defined(__x86_64__)
static long syscall3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

static long syscall4(long n, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return ret;
}

static long syscall5(long n, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

__asm__(".text\n.global _start\n_start:\n\txor %ebp,%ebp\n\tand $-16,%rsp\n\tcall init_main\n\thlt\n");

#elif defined(__i386__)
/* ebx is the PIC register in some gcc configurations and may not appear in a clobber list; swap it by hand. */
static long syscall3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("xchg %%edi,%%ebx\n\tint $0x80\n\txchg %%edi,%%ebx"
			 : "=a"(ret) : "a"(n), "D"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

static long syscall4(long n, long a, long b, long c, long d)
{
	long ret;
	__asm__ volatile("xchg %%edi,%%ebx\n\tint $0x80\n\txchg %%edi,%%ebx"
			 : "=a"(ret) : "a"(n), "D"(a), "c"(b), "d"(c), "S"(d) : "memory");
	return ret;
}

/* Five arguments need both ebx and edi, so the first and fifth travel through memory, addressed by edi. */
static long syscall5(long n, long a, long b, long c, long d, long e)
{
	long ret;
	long ae[2] = { a, e };
	long *p = ae;
	__asm__ volatile("push %%ebx\n\tmovl (%%edi),%%ebx\n\tmovl 4(%%edi),%%edi\n\tint $0x80\n\tpop %%ebx"
			 : "=a"(ret), "+D"(p) : "a"(n), "c"(b), "d"(c), "S"(d) : "memory");
	return ret;
}

__asm__(".text\n.global _start\n_start:\n\txor %ebp,%ebp\n\tand $-16,%esp\n\tcall init_main\n\thlt\n");

#else
#error "the boot-test init has no system-call entry for this arch: add one above"
#endif

#define O_RDONLY 0
#define O_WRONLY 1
#define ENOENT 2
#define REBOOT_MAGIC1 0xfee1dead
#define REBOOT_MAGIC2 672274793
#define REBOOT_CMD_POWER_OFF 0x4321fedc

#define MS_RDONLY 1

/* Big enough for any module a distribution kernel loads from its initrd; .bss costs nothing until touched. */
static char image[8 << 20];
static char params[256];
static char plan[4096];
static char text[256];

/* What mkexec's init creates (README.mkdump, "Run Mini Kernel Dump"); boot.py's MKEXEC_PROC_ENTRIES. */
static const char *const mkexec_entries[] = {
	"/proc/mkexec/mem", "/proc/mkexec/dumpdev", "/proc/mkexec/parameter", "/proc/mkexec/path",
	"/proc/mkexec/stats",
};

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;
	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

static size_t length(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* A console line goes out in one write(2) when its newline arrives: the kernel's own messages (a driver's probe,
   a disk's partition scan) then fall between our lines, never inside one, and boot.py can read them. */
static char out[512];
static size_t out_len;
static long out_fd = 1;

static void say(const char *s)
{
	size_t n = length(s), i;

	for (i = 0; i < n; i++) {
		out[out_len++] = s[i];
		if (s[i] == '\n' || out_len == sizeof(out)) {
			syscall3(NR_write, out_fd, (long)out, (long)out_len);
			out_len = 0;
		}
	}
}

static void say_number(long v)
{
	char buf[24];
	int i = sizeof(buf) - 1;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[--i] = '-';
	say(buf + i);
}

/* Reads a whole file into buf (at most cap bytes); returns its length or a negative errno. */
static long slurp(const char *path, char *buf, long cap)
{
	long fd = syscall3(NR_open, (long)path, O_RDONLY, 0);
	long total = 0, n;

	if (fd < 0)
		return fd;
	while ((n = syscall3(NR_read, fd, (long)(buf + total), cap - total)) > 0)
		total += n;
	syscall3(NR_close, fd, 0, 0);
	if (n < 0)
		return n;
	if (total == cap)
		return -27; /* EFBIG: the file did not fit */
	return total;
}

static void power_off(void)
{
	say("mkdump-init: powering off\n");
	syscall4(NR_reboot, REBOOT_MAGIC1, REBOOT_MAGIC2, REBOOT_CMD_POWER_OFF, 0);
	/* Without a power-off driver the kernel returns here; exiting makes it panic, and panic=1 with
	   QEMU's -no-reboot ends the run. */
	syscall3(NR_exit, 0, 0, 0);
}

/* Loads /mkexec.ko with no parameters, as the README's insmod does, then shows what its init left in /proc. */
static void load_mkexec(void)
{
	long size, ret, fd;
	unsigned int i;

	size = slurp("/mkexec.ko", image, sizeof(image));
	if (size == -ENOENT) {
		say("mkdump-init: no /mkexec.ko in the initramfs\n");
		return;
	}
	if (size < 0) {
		say("mkdump-init: cannot read /mkexec.ko: error ");
		say_number(size);
		say("\n");
		return;
	}
	say("mkdump-init: loading /mkexec.ko (");
	say_number(size);
	say(" bytes)\n");
	ret = syscall3(NR_init_module, (long)image, size, (long)"");
	say("mkdump-init: /mkexec.ko init_module returned ");
	say_number(ret);
	say("\n");
	ret = syscall5(NR_mount, (long)"proc", (long)"/proc", (long)"proc", 0, 0);
	say("mkdump-init: mount proc on /proc returned ");
	say_number(ret);
	say("\n");
	for (i = 0; i < sizeof(mkexec_entries) / sizeof(mkexec_entries[0]); i++) {
		say("mkdump-init: ");
		say(mkexec_entries[i]);
		fd = syscall3(NR_open, (long)mkexec_entries[i], O_RDONLY, 0);
		if (fd >= 0) {
			syscall3(NR_close, fd, 0, 0);
			say(" present\n");
		} else {
			say(" missing: error ");
			say_number(fd);
			say("\n");
		}
	}
}

static void say_result(const char *what, const char *arg, long ret)
{
	say("mkdump-init: ");
	say(what);
	say(" ");
	say(arg);
	say(" returned ");
	say_number(ret);
	say("\n");
}

static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* Splits line into at most max words (in place, on spaces); returns how many. */
static int words(char *line, char **word, int max)
{
	int n = 0;

	while (*line && n < max) {
		while (*line == ' ')
			*line++ = 0;
		if (!*line)
			break;
		word[n++] = line;
		while (*line && *line != ' ')
			line++;
	}
	return n;
}

/* Opens path until it succeeds or `seconds` pass: a disk behind a USB or SCSI scan appears a while after its
   driver loads. Returns the last open() result. */
static long wait_for(const char *path, long seconds)
{
	long tenths, fd = -ENOENT;
	long ts[2] = { 0, 100 * 1000 * 1000 };

	for (tenths = 0; tenths <= seconds * 10; tenths++) {
		fd = syscall3(NR_open, (long)path, O_RDONLY, 0);
		if (fd >= 0) {
			syscall3(NR_close, fd, 0, 0);
			return 0;
		}
		syscall3(NR_nanosleep, (long)ts, 0, 0);
	}
	return fd;
}

/* One step per line of /plan (written by mkdump.boot): insmod PATH | wait PATH SECONDS | mount DEV DIR TYPE |
   cat PATH. Each says its result; boot.py decides what they prove. */
static void run_plan(void)
{
	long size = slurp("/plan", plan, sizeof(plan) - 1), ret, n;
	char *line = plan, *next, *w[4];
	int count;

	if (size < 0)
		return;
	plan[size] = 0;
	for (; *line; line = next) {
		for (next = line; *next && *next != '\n'; next++)
			;
		if (*next)
			*next++ = 0;
		count = words(line, w, 4);
		if (count == 2 && same(w[0], "insmod")) {
			n = slurp(w[1], image, sizeof(image));
			ret = n < 0 ? n : syscall3(NR_init_module, (long)image, n, (long)"");
			say_result("insmod", w[1], ret);
		} else if (count == 3 && same(w[0], "wait")) {
			long seconds = 0;
			char *d;

			for (d = w[2]; *d >= '0' && *d <= '9'; d++)
				seconds = seconds * 10 + (*d - '0');
			say_result("wait", w[1], wait_for(w[1], seconds));
		} else if (count == 4 && same(w[0], "mount")) {
			ret = syscall5(NR_mount, (long)w[1], (long)w[2], (long)w[3], MS_RDONLY, 0);
			say_result("mount", w[1], ret);
		} else if (count == 2 && same(w[0], "cat")) {
			n = slurp(w[1], text, sizeof(text) - 1);
			if (n < 0) {
				say_result("cat", w[1], n);
				continue;
			}
			while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
				n--;
			text[n] = 0;
			say("mkdump-init: cat ");
			say(w[1]);
			say(": ");
			say(text);
			say("\n");
		} else if (count > 0) {
			say("mkdump-init: plan step not understood: ");
			say(w[0]);
			say("\n");
		}
	}
}

void init_main(void)
{
	long size, plen, ret, fd;

	/* A kernel without a serial console (an i386 defconfig writes to VGA) is booted with earlyprintk's keep
	   option, which carries the kernel's messages only: ours then go through the kernel log as well. */
	fd = syscall3(NR_open, (long)"/say-via-kmsg", O_RDONLY, 0);
	if (fd >= 0) {
		syscall3(NR_close, fd, 0, 0);
		fd = syscall3(NR_open, (long)"/dev/kmsg", O_WRONLY, 0);
		if (fd >= 0)
			out_fd = fd;
	}
	say("mkdump-init: started\n");
	size = slurp("/module.ko", image, sizeof(image));
	if (size < 0) {
		say("mkdump-init: cannot read /module.ko: error ");
		say_number(size);
		say("\n");
		power_off();
	}
	plen = slurp("/module.params", params, sizeof(params));
	if (plen < 0)
		plen = 0;
	while (plen > 0 && (params[plen - 1] == '\n' || params[plen - 1] == '\r'))
		plen--;
	params[plen] = 0;
	say("mkdump-init: loading /module.ko (");
	say_number(size);
	say(" bytes) with \"");
	say(params);
	say("\"\n");
	ret = syscall3(NR_init_module, (long)image, size, (long)params);
	say("mkdump-init: init_module returned ");
	say_number(ret);
	say("\n");
	run_plan();
	load_mkexec();
	power_off();
}
