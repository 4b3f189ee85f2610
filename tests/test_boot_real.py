"""Boot proofs on real 2.6.9 kernels built with today's gcc: the mini-kernel style boot (README step 4), and the
system boot that loads a module built by the same toolchain and then a stand-in mkexec.ko built as the pipeline
builds mkexec. Minutes per arch."""
import json
import os
import subprocess

import pytest

from mkdump import boot
from support import boot_kernel, kernel_tree

pytestmark = [pytest.mark.realkernel, pytest.mark.slow]


@pytest.fixture(scope="module", params=["x86_64", "i386"])
def kernel(request, real_linux_tarball, tmp_path_factory):
    arch = request.param
    work = tmp_path_factory.mktemp(f"boot-{arch}")
    built = boot_kernel.build(arch, real_linux_tarball, work, mkexec_standin=True, log=print)
    built["arch"] = arch
    built["module"] = boot.build_test_module(built["tree"], work / "module", make_args=built["make_args"],
                                             log=lambda m: None)
    built["mkexec"] = boot_kernel.build_mkexec_standin(built, arch, work)
    built["work"] = work
    print(f"\n{arch}: kernel built in {built['seconds']:.1f} s")
    return built


def _show(report):
    print(json.dumps({k: report[k] for k in ("arch", "kind", "seconds", "exit_reason", "append", "checks")},
                     indent=1))


def test_minik_boot_proof(kernel):
    report = boot.prove_minik(kernel["arch"], kernel["bzimage"], console_log=kernel["work"] / "minik.console",
                              log=print)
    _show(report)
    assert report["checks"][0].startswith("banner: Linux version 2.6.9 ")
    assert report["checks"][2].startswith("late point: Kernel panic - not syncing: VFS: Unable to mount root fs")


def test_system_boot_loads_our_module_and_mkexec(kernel):
    report = boot.prove_system(kernel["arch"], kernel["bzimage"], kernel["module"],
                               toolchain_cc=list(kernel["toolchain"].cc), extra_module=kernel["mkexec"],
                               console_log=kernel["work"] / "system.console", log=print)
    _show(report)
    print(json.dumps(report["mkexec"], indent=1))
    assert report["checks"][-3].startswith("module init: mkdump-boot-test-module: init ran token=")
    assert report["checks"][-2] == "mkexec init_module returned 0"
    assert report["mkexec"]["proc_mkexec_present"] == list(boot.MKEXEC_PROC_ENTRIES)
    console = (kernel["work"] / "system.console").read_text(errors="replace")
    assert f"mkexec: stand-in for {kernel['arch']} loaded, kernel side version 1" in console


@pytest.mark.parametrize("kernel", ["x86_64"], indirect=True)
def test_without_plt32_patch_the_module_load_fails(kernel):
    """The module proof can fail: take the PLT32 fix back out of the x86_64 loader and the same module is
    refused with ENOEXEC. Afterwards the fix goes back in, so the tree is as the fixture built it."""
    (plt32, strip), = [(p, s) for p, s in kernel_tree.compat_patches("x86_64") if "plt32" in p.name]
    tree = kernel["tree"]
    subprocess.run(["patch", f"-p{strip}", "-R", "--fuzz=0", "--batch", "-s", "-i", os.fspath(plt32)], cwd=tree,
                   check=True)
    try:
        boot_kernel.rebuild(kernel, log=print)
        with pytest.raises(boot.BootError, match="init_module returned -8 ENOEXEC.*PLT32") as e:
            boot.prove_system("x86_64", kernel["bzimage"], kernel["module"],
                              toolchain_cc=list(kernel["toolchain"].cc), log=print)
        assert "Unknown rela relocation: 4" in e.value.tail
    finally:
        subprocess.run(["patch", f"-p{strip}", "--fuzz=0", "--batch", "-s", "-i", os.fspath(plt32)], cwd=tree,
                       check=True)
        boot_kernel.rebuild(kernel, log=print)
