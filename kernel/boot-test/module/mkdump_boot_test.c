/*
 * Boot-test module: proves the system kernel's loader accepts a module made by today's toolchain.
 *
 * Its init prints a fixed marker followed by the token it was given as a parameter. The boot test passes a token
 * the kernel has never seen (derived from this module's bytes), so a matching line on the console can only come
 * from this load. site_scons/mkdump/boot.py looks for MARKER; keep them in step.
 *
 * The calls to printk and strlen are relocated at load time; on x86_64 today's assembler emits R_X86_64_PLT32
 * for them, which is the relocation the compatibility patch teaches the 2.6.9 loader.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/string.h>

#define MARKER "mkdump-boot-test-module: init ran"

static char *token = "none";
module_param(token, charp, 0);
MODULE_PARM_DESC(token, "string echoed by init, so the test knows this load printed it");

static int __init mkdump_boot_test_init(void)
{
	printk(KERN_INFO MARKER " token=%s length=%u\n", token, (unsigned int)strlen(token));
	return 0;
}

static void __exit mkdump_boot_test_exit(void)
{
	printk(KERN_INFO "mkdump-boot-test-module: exit\n");
}

module_init(mkdump_boot_test_init);
module_exit(mkdump_boot_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mkdump-build boot test: prints a marker from its init");
