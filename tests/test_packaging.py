"""Issue 16's packages, built for real: README's two commands (dpkg-buildpackage, rpmbuild) on a packager's
checkout, the package split and layout, lintian, reproducibility, the manifest inside; and the packaging helper's
checks (packaging/mkdump_package.py) without a build.

The fixture kernel builds in seconds, so those tests are fast. The real-tree variant builds Linux 2.6.9 twice (one
.deb build, one .rpm build): marked realkernel, slow and realpackage, which pytest.ini leaves out by default:
    ./bootstrap python -m pytest -m realpackage tests/test_packaging.py
"""
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from mkdump.errors import MkdumpError
from support import packaging as K

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("mkdump_package", ROOT / "packaging" / "mkdump_package.py")
mkdump_package = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mkdump_package)

DEB_FILES = {
    "linux-image-2.6.9-mkdump-amd64": [
        "boot/", "boot/System.map-2.6.9", "boot/config-2.6.9", "boot/vmlinuz-2.6.9",
        "lib/", "lib/modules/", "lib/modules/2.6.9/", "lib/modules/2.6.9/kernel/",
        "lib/modules/2.6.9/modules.alias", "lib/modules/2.6.9/modules.alias.bin",
        "lib/modules/2.6.9/modules.builtin.alias.bin", "lib/modules/2.6.9/modules.builtin.bin",
        "lib/modules/2.6.9/modules.dep", "lib/modules/2.6.9/modules.dep.bin", "lib/modules/2.6.9/modules.devname",
        "lib/modules/2.6.9/modules.softdep", "lib/modules/2.6.9/modules.symbols",
        "lib/modules/2.6.9/modules.symbols.bin"],
    "mkdump-mkexec-amd64": ["lib/", "lib/modules/", "lib/modules/2.6.9/", "lib/modules/2.6.9/extra/",
                            "lib/modules/2.6.9/extra/mkexec.ko"],
    "mkdump-minik-amd64": ["usr/sbin/", "usr/sbin/mkdump-load-x86_64", "usr/share/mkdump/",
                           "usr/share/mkdump/x86_64/", "usr/share/mkdump/x86_64/System.map",
                           "usr/share/mkdump/x86_64/manifest.json", "usr/share/mkdump/x86_64/vmlinux.bin"],
    "mkdutils": ["usr/sbin/", "usr/sbin/mkdconv", "usr/sbin/mkdinfo"],
}
RPM_FILES = {
    "linux-image-2.6.9-mkdump-x86_64": [
        "/boot/System.map-2.6.9", "/boot/config-2.6.9", "/boot/vmlinuz-2.6.9", "/lib/modules/2.6.9",
        "/lib/modules/2.6.9/kernel", "/lib/modules/2.6.9/modules.alias", "/lib/modules/2.6.9/modules.alias.bin",
        "/lib/modules/2.6.9/modules.builtin.alias.bin", "/lib/modules/2.6.9/modules.builtin.bin",
        "/lib/modules/2.6.9/modules.dep", "/lib/modules/2.6.9/modules.dep.bin",
        "/lib/modules/2.6.9/modules.devname", "/lib/modules/2.6.9/modules.softdep",
        "/lib/modules/2.6.9/modules.symbols", "/lib/modules/2.6.9/modules.symbols.bin"],
    "mkdump-mkexec-x86_64": ["/lib/modules/2.6.9/extra", "/lib/modules/2.6.9/extra/mkexec.ko"],
    "mkdump-minik-x86_64": ["/usr/sbin/mkdump-load-x86_64", "/usr/share/mkdump", "/usr/share/mkdump/x86_64",
                            "/usr/share/mkdump/x86_64/System.map", "/usr/share/mkdump/x86_64/manifest.json",
                            "/usr/share/mkdump/x86_64/vmlinux.bin"],
    "mkdutils": ["/usr/sbin/mkdconv", "/usr/sbin/mkdinfo"],
}
# The lintian warnings that stay, each listed with its reason in README "For packagers".
LINTIAN_WARNINGS = {"no-manual-page"}


def host_is_amd64():
    r = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return r.stdout.strip() == "amd64"


needs_amd64 = pytest.mark.skipif(not host_is_amd64(), reason="the expected package names are amd64's")


# --- the helper's checks, without a build ---

def test_deb_arch():
    assert mkdump_package.deb_arch({"DEB_HOST_ARCH": "amd64", "DEB_BUILD_ARCH": "amd64"}) == "x86_64"
    assert mkdump_package.deb_arch({"DEB_HOST_ARCH": "i386", "DEB_BUILD_ARCH": "i386"}) == "i386"
    with pytest.raises(MkdumpError, match="a cross build \\(amd64 building i386\\) would ship mkdutils' tools "
                                          "built for amd64; build the i386 packages on i386"):
        mkdump_package.deb_arch({"DEB_HOST_ARCH": "i386", "DEB_BUILD_ARCH": "amd64"})
    with pytest.raises(MkdumpError, match="Debian architecture arm64 has no mkdump arch"):
        mkdump_package.deb_arch({"DEB_HOST_ARCH": "arm64", "DEB_BUILD_ARCH": "arm64"})
    with pytest.raises(MkdumpError, match="DEB_HOST_ARCH is not set; run the Debian build through "
                                          "dpkg-buildpackage"):
        mkdump_package.deb_arch({})


def test_rpm_arch():
    assert mkdump_package.rpm_arch({"MKDUMP_RPM_ARCH": "x86_64"}) == "x86_64"
    assert [mkdump_package.rpm_arch({"MKDUMP_RPM_ARCH": c}) for c in ("i386", "i586", "i686")] == ["i386"] * 3
    with pytest.raises(MkdumpError, match="RPM target cpu 'aarch64' has no mkdump arch"):
        mkdump_package.rpm_arch({"MKDUMP_RPM_ARCH": "aarch64"})


def test_sources_dir(tmp_path):
    assert mkdump_package.sources_dir({"MKDUMP_SOURCES": str(tmp_path)}) == str(tmp_path)
    with pytest.raises(MkdumpError, match="MKDUMP_SOURCES is not set; give the directory holding the Linux "
                                          "tarball"):
        mkdump_package.sources_dir({})
    with pytest.raises(MkdumpError, match="MKDUMP_SOURCES=.*/none is not a directory"):
        mkdump_package.sources_dir({"MKDUMP_SOURCES": str(tmp_path / "none")})


def test_unlocked_files(tmp_path):
    (tmp_path / "patches").mkdir()
    shutil.copy(ROOT / "patches" / "sources.toml", tmp_path / "patches")
    # Linux is pinned by its tree hash; the three mkdump files only by the lock
    assert sorted(mkdump_package.unlocked_files(tmp_path)) == sorted(
        ["minik-2.6.9-1.0-update1.patch", "mkexec-2.6.9-1.0-update1.taz", "mkdutils.taz"])
    (tmp_path / "patches" / "sources.lock").write_text(
        f'"mkdutils.taz" = "{"ab" * 32}"\n"minik-2.6.9-1.0-update1.patch" = "{"cd" * 32}"\n')
    assert mkdump_package.unlocked_files(tmp_path) == ["mkexec-2.6.9-1.0-update1.taz"]
    with pytest.raises(MkdumpError, match="patches/sources.lock pins no hash for mkexec-2.6.9-1.0-update1.taz, "
                                          "and a package build trusts nothing on first use"):
        mkdump_package.check_locked(tmp_path)


def test_scons_command():
    build = mkdump_package.scons_command("/usr/bin/python3", arch="i386", sources="/srv/d", top="/co")
    assert build == ["/usr/bin/python3", "-m", "SCons", "-C", "/co", "arch=i386", "sources=/srv/d", "offline=1",
                     "build=/co/package-build", "cache=/co/package-build/download-cache", "PREFIX=/usr"]
    install = mkdump_package.scons_command("/py", arch="x86_64", sources="/d", top="/co", destdir="/co/debian/tmp")
    assert install[5:7] == ["install", "DESTDIR=/co/debian/tmp"] and install[7:] == [
        "arch=x86_64", "sources=/d", "offline=1", "build=/co/package-build",
        "cache=/co/package-build/download-cache", "PREFIX=/usr"]


def test_main_checks_before_running(tmp_path, capsys):
    ran = []

    def run(command, env):
        ran.append((command, env))
        return SimpleNamespace(returncode=0)
    assert mkdump_package.main(["x", "deb"], {}, run) == 2
    assert mkdump_package.main(["x", "deb", "install"], {}, run) == 2
    assert capsys.readouterr().err.startswith("usage: ")
    env = {"DEB_HOST_ARCH": "amd64", "DEB_BUILD_ARCH": "amd64"}
    assert mkdump_package.main(["x", "deb", "build"], env, run) == 2
    assert capsys.readouterr().err == ("mkdump-package: error: MKDUMP_SOURCES is not set; give the directory "
                                       "holding the Linux tarball and the mkdump files: MKDUMP_SOURCES=DIR "
                                       "dpkg-buildpackage -b -uc -us\n")
    assert ran == []


# --- the real package builds on the fixture kernel ---

def build_debs(workdir, sources_dir, tree_sha256, prefix=()):
    proj = K.packager_checkout(Path(workdir) / "mkdump-build", sources_dir, tree_sha256=tree_sha256)
    r = K.dpkg_buildpackage(proj, sources_dir, prefix)
    assert r.returncode == 0, r.stdout[-8000:]
    return SimpleNamespace(proj=proj, log=r.stdout, debs=sorted(Path(workdir).glob("*.deb")),
                           changes=next(Path(workdir).glob("*.changes")))


def build_rpms(workdir, sources_dir, tree_sha256, prefix=()):
    workdir = Path(workdir)
    proj = K.packager_checkout(workdir / "checkout", sources_dir, tree_sha256=tree_sha256)
    rpm_sources = workdir / "sources"
    rpm_sources.mkdir()
    for f in Path(sources_dir).iterdir():
        os.symlink(f.resolve(), rpm_sources / f.name)
    K.source_tarball(proj, rpm_sources)
    r = K.rpmbuild(proj / "packaging" / "rpm" / "mkdump.spec", rpm_sources, workdir / "top", prefix)
    assert r.returncode == 0, r.stdout[-8000:]
    return SimpleNamespace(proj=proj, log=r.stdout, rpms=sorted((workdir / "top" / "RPMS").rglob("*.rpm")))


@pytest.fixture(scope="module")
def no_network(served):
    """(command prefix, None) for a network namespace without network, or (None, why not)."""
    from support.network import netns_prefix
    return netns_prefix(int(served.url.rsplit(":", 1)[1]))


@pytest.fixture(scope="module")
def debs(sources, tmp_path_factory, no_network):
    """Two package builds of the same inputs, each in a checkout of its own at another path, the second without
    network when a namespace is available."""
    return [build_debs(tmp_path_factory.mktemp(f"deb-{n}"), sources.dir, sources.tree_sha256, prefix)
            for n, prefix in (("a", ()), ("b", no_network[0] or ()))]


@pytest.fixture(scope="module")
def rpms(sources, tmp_path_factory, no_network):
    return [build_rpms(tmp_path_factory.mktemp(f"rpm-{n}"), sources.dir, sources.tree_sha256, prefix)
            for n, prefix in (("a", ()), ("b", no_network[0] or ()))]


def test_package_builds_need_no_network(debs, rpms, no_network, served):
    prefix, why = no_network
    if prefix is None:
        pytest.skip(why)
    # the second builds ran where nothing on the network answers (the probe could not reach `served`) and made
    # the same packages as the first (test_*_build_is_reproducible); none asked the loopback server either
    assert debs[1].debs and rpms[1].rpms and served.requests == []


def deb_name(path):
    return subprocess.run(["dpkg-deb", "-f", str(path), "Package"], capture_output=True, text=True,
                          check=True).stdout.strip()


def deb_payload(path):
    """Paths in the .deb (dpkg-deb -c), without the ./ and Debian's own files (/usr/share/doc, lintian
    overrides)."""
    listing = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True).stdout
    paths = [line.split(None, 5)[5].removeprefix("./") for line in listing.splitlines()]
    return sorted(p for p in paths if p and p not in ("usr/", "usr/share/")
                  and not p.startswith(("usr/share/doc/", "usr/share/lintian/")))


def deb_file(path, member):
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile("./" + member).read()


def rpm_query(path, fmt_or_flag):
    args = ["--qf", fmt_or_flag] if "%" in fmt_or_flag else [fmt_or_flag]
    return subprocess.run(["rpm", "-qp", *args, str(path)], capture_output=True, text=True, check=True).stdout


def rpm_file(path, member):
    cpio = subprocess.run(["rpm2cpio", str(path)], capture_output=True, check=True).stdout
    return subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "." + member], input=cpio, capture_output=True,
                          check=True).stdout


def check_manifest(manifest_bytes, sources_dir, shipped):
    """The manifest says which sources and patches went in, and the shipped mini kernel is the one it records."""
    manifest = json.loads(manifest_bytes)
    used = manifest["inputs"]["sources"]
    assert set(used) == {"linux", "minik", "mkexec", "mkdutils"}
    for entry in used.values():
        assert entry["sha256"] == hashlib.sha256((Path(sources_dir) / entry["file"]).read_bytes()).hexdigest()
        assert entry["url"] is None, "every source came from MKDUMP_SOURCES, none was downloaded"
    series = manifest["inputs"]["patches"]
    assert set(series) == {"minik", "system"}
    minik_patch = hashlib.sha256((Path(sources_dir) / used["minik"]["file"]).read_bytes()).hexdigest()
    assert series["minik"]["patches"][0] == {"ref": "source:minik", "sha256": minik_patch, "strip": 1}
    assert all(s["report"]["ok"] for s in series.values())
    outputs = {o["path"]: o["sha256"] for o in manifest["outputs"]}
    assert outputs["vmlinux.bin"] == hashlib.sha256(shipped).hexdigest()
    return manifest


@needs_amd64
def test_deb_split_and_layout(debs):
    build = debs[0]
    assert [p.name for p in build.debs] == sorted(f"{n}_1.0_amd64.deb" for n in DEB_FILES)
    assert {deb_name(p): deb_payload(p) for p in build.debs} == DEB_FILES
    # shipped as built: the installed files are byte copies of out/ (no strip, no depmod in postinst)
    out = build.proj / "package-build" / "x86_64" / "out"
    by_name = {deb_name(p): p for p in build.debs}
    assert deb_file(by_name["mkdump-mkexec-amd64"], "lib/modules/2.6.9/extra/mkexec.ko") == \
        (out / "mkexec.ko").read_bytes()
    assert deb_file(by_name["linux-image-2.6.9-mkdump-amd64"], "boot/vmlinuz-2.6.9") == \
        (out / "system-bzImage").read_bytes()
    # Debian's python3 and scons (the Build-Depends) ran the build, not a .venv
    assert "mkdump-package: /usr/bin/python3 -m SCons -C " in build.log
    control = subprocess.run(["dpkg-deb", "-I", str(by_name["linux-image-2.6.9-mkdump-amd64"])],
                             capture_output=True, text=True, check=True).stdout
    assert "postinst" not in control
    assert "Depends: mkdump-mkexec-amd64 (= 1.0)" in subprocess.run(
        ["dpkg-deb", "-I", str(by_name["mkdump-minik-amd64"])], capture_output=True, text=True).stdout


@needs_amd64
def test_deb_manifest_inside_minik_package(debs, sources):
    minik = next(p for p in debs[0].debs if deb_name(p) == "mkdump-minik-amd64")
    manifest = check_manifest(deb_file(minik, "usr/share/mkdump/x86_64/manifest.json"), sources.dir,
                              deb_file(minik, "usr/share/mkdump/x86_64/vmlinux.bin"))
    # SOURCE_DATE_EPOCH came from debian/changelog (Thu, 14 Oct 2004 23:00:00 +0000)
    assert manifest["source_date_epoch"] == 1097794800


def test_deb_build_is_reproducible(debs):
    a, b = debs
    assert a.proj.parent != b.proj.parent
    assert [p.name for p in a.debs] == [p.name for p in b.debs] and a.debs
    different = [p.name for p, q in zip(a.debs, b.debs) if p.read_bytes() != q.read_bytes()]
    assert different == []


def check_lintian(changes):
    """No errors; only the warnings README lists; no override, and lintian did look at the packages."""
    r = subprocess.run(["lintian", "--show-overrides", str(changes)], capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:", "O:")]
    assert [l for l in lines if l.startswith("E:")] == []
    # the same warnings every time: they also show that lintian read the packages
    assert {l.split()[2] for l in lines if l.startswith("W:")} == LINTIAN_WARNINGS, lines
    assert [l for l in lines if l.startswith("O:")] == [], lines


def test_lintian_has_no_errors(debs):
    check_lintian(debs[0].changes)


@needs_amd64
def test_debs_install(debs, tmp_path):
    """apt resolves all four against this Debian 12, and dpkg installs them together into a scratch root (only
    libc6, which apt just resolved, is missing there) with every shipped file in place."""
    build = debs[0]
    sim = subprocess.run(["apt-get", "install", "-s", "-q", *map(str, build.debs)], capture_output=True, text=True)
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert sorted(re.findall(r"^Inst (\S+) ", sim.stdout, re.M)) == sorted(map(deb_name, build.debs))
    root, admin = tmp_path / "root", tmp_path / "root" / "var" / "lib" / "dpkg"
    for d in ("updates", "info"):
        (admin / d).mkdir(parents=True)
    for f in ("status", "available"):
        (admin / f).touch()
    r = subprocess.run(["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless",
                        "--force-depends", "--log=/dev/null", "-i", *map(str, build.debs)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    missing = [line.strip() for line in (r.stdout + r.stderr).splitlines() if "is not installed" in line]
    assert missing == ["Package libc6 is not installed."], r.stdout + r.stderr
    for deb in build.debs:
        for rel in deb_payload(deb):
            assert (root / rel).exists() or (root / rel).is_symlink(), (deb.name, rel)


@needs_amd64
def test_rpms_install(rpms, tmp_path):
    """rpm installs all four into a scratch root and verifies every file (digest, mode); what none of them
    provides is the base system's: /bin/sh and the C library."""
    build, root = rpms[0], tmp_path / "root"
    root.mkdir()
    subprocess.run(["rpm", "--root", str(root), "--initdb"], capture_output=True, check=True)
    test = subprocess.run(["rpm", "--root", str(root), "-i", "--test", *map(str, build.rpms)],
                          capture_output=True, text=True)
    unmet = {line.split(" is needed by ")[0].strip() for line in test.stderr.splitlines() if " is needed by " in line}
    assert {u for u in unmet if u != "/bin/sh" and not u.startswith(("libc.so.6", "rtld("))} == set(), test.stderr
    r = subprocess.run(["rpm", "--root", str(root), "-i", "--nodeps", "--noscripts", *map(str, build.rpms)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}\n"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert sorted(names) == sorted(RPM_FILES)
    verify = subprocess.run(["rpm", "--root", str(root), "-V", "-a", "--nodeps"], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout == "", verify.stdout + verify.stderr


def test_debian_clean_removes_what_the_build_made(debs):
    proj = debs[1].proj
    made = [proj / "package-build", proj / "debian" / "tmp"] + [proj / "debian" / name for name in DEB_FILES]
    assert all(p.is_dir() for p in made), "the build made its root, debian/tmp and a directory per package"
    (proj / "build").mkdir()
    (proj / "build" / "developer-work").write_text("hours of kernel builds\n")
    r = subprocess.run(["debian/rules", "clean"], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [p for p in made if p.exists()] == []
    assert (proj / "build" / "developer-work").is_file(), "a developer's build/ is not the package build's"
    # the checkout is as it was copied, but for the debian/ copy and the developer's file
    left = {str(p.relative_to(proj)) for p in proj.rglob("*") if p.is_file()}
    extra = {p for p in left if not p.startswith(("debian/", "build/"))} - set(K.checkout_files())
    assert extra == {"patches/sources.lock"}, "only the lock the packager committed is new"


def test_deb_build_refuses_missing_sources_and_lock(sources, tmp_path):
    proj = K.copy_checkout(tmp_path / "mkdump-build")
    shutil.copytree(proj / "packaging" / "debian", proj / "debian")
    r = subprocess.run(["dpkg-buildpackage", "-b", "-uc", "-us"], cwd=proj, env=K.clean_env(), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode != 0
    assert "mkdump-package: error: MKDUMP_SOURCES is not set" in r.stdout and "Traceback" not in r.stdout
    r = subprocess.run(["dpkg-buildpackage", "-b", "-uc", "-us"], cwd=proj,
                       env=K.clean_env(MKDUMP_SOURCES=str(sources.dir)), text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert r.returncode != 0
    assert "mkdump-package: error: patches/sources.lock pins no hash for" in r.stdout
    assert not (proj / "patches" / "sources.lock").exists(), "nothing was trusted on first use"


@needs_amd64
def test_rpm_split_and_layout(rpms):
    build = rpms[0]
    assert [p.name for p in build.rpms] == sorted(f"{n}-1.0-1.x86_64.rpm" for n in RPM_FILES)
    got = {rpm_query(p, "%{NAME}"): sorted(rpm_query(p, "-l").split()) for p in build.rpms}
    assert got == RPM_FILES
    by_name = {rpm_query(p, "%{NAME}"): p for p in build.rpms}
    assert "mkdump-mkexec-x86_64 = 1.0-1" in rpm_query(by_name["mkdump-minik-x86_64"], "-R")
    assert rpm_query(by_name["mkdutils"], "%{BUILDHOST}") == "mkdump-build"


@needs_amd64
def test_rpm_manifest_inside_minik_package(rpms, sources):
    minik = next(p for p in rpms[0].rpms if rpm_query(p, "%{NAME}") == "mkdump-minik-x86_64")
    manifest = check_manifest(rpm_file(minik, "/usr/share/mkdump/x86_64/manifest.json"), sources.dir,
                              rpm_file(minik, "/usr/share/mkdump/x86_64/vmlinux.bin"))
    # SOURCE_DATE_EPOCH came from %changelog, whose dates are days: Thu Oct 14 2004 00:00 UTC
    assert manifest["source_date_epoch"] == 1097712000
    assert rpm_query(minik, "%{BUILDTIME}") == "1097712000"


def test_rpm_build_is_reproducible(rpms):
    a, b = rpms
    assert [p.name for p in a.rpms] == [p.name for p in b.rpms] and a.rpms
    different = [p.name for p, q in zip(a.rpms, b.rpms) if p.read_bytes() != q.read_bytes()]
    assert different == []


# --- the real tree ---

@pytest.fixture(scope="module")
def real_sources(real_linux_tarball, tmp_path_factory):
    from support.real_sources import make_real_sources
    return make_real_sources(real_linux_tarball, tmp_path_factory.mktemp("real-sources"))


@pytest.mark.realkernel
@pytest.mark.slow
@pytest.mark.realpackage
@needs_amd64
def test_real_tree_packages(real_sources, tmp_path):
    debs = build_debs(tmp_path / "deb", real_sources, None)
    assert sorted(deb_name(p) for p in debs.debs) == sorted(DEB_FILES)
    check_lintian(debs.changes)
    by_name = {deb_name(p): p for p in debs.debs}
    kos = [p for p in deb_payload(by_name["linux-image-2.6.9-mkdump-amd64"]) if p.endswith(".ko")]
    built_m = (debs.proj / "package-build" / "x86_64" / "out" / "system-config").read_text().count("=m\n")
    assert bool(kos) == (built_m > 0)
    check_manifest(deb_file(by_name["mkdump-minik-amd64"], "usr/share/mkdump/x86_64/manifest.json"),
                   real_sources, deb_file(by_name["mkdump-minik-amd64"], "usr/share/mkdump/x86_64/vmlinux.bin"))

    rpms = build_rpms(tmp_path / "rpm", real_sources, None)
    assert sorted(rpm_query(p, "%{NAME}") for p in rpms.rpms) == sorted(RPM_FILES)
    minik = next(p for p in rpms.rpms if rpm_query(p, "%{NAME}") == "mkdump-minik-x86_64")
    check_manifest(rpm_file(minik, "/usr/share/mkdump/x86_64/manifest.json"), real_sources,
                   rpm_file(minik, "/usr/share/mkdump/x86_64/vmlinux.bin"))
