"""The one step debian/rules and packaging/rpm/mkdump.spec share: check what a package build needs, then run our
scons offline (build, then `scons install DESTDIR=`).

    python3 packaging/mkdump_package.py deb|rpm build            scons (the default target: up to out/)
    python3 packaging/mkdump_package.py deb|rpm install DESTDIR  scons install DESTDIR=DESTDIR PREFIX=/usr

from anywhere (it runs scons in the checkout it is part of). It reads:
  MKDUMP_SOURCES    the directory with the Linux tarball and the mkdump files (scons' sources=); required
  DEB_HOST_ARCH, DEB_BUILD_ARCH (deb) or the RPM target cpu given as MKDUMP_RPM_ARCH (rpm): which arch to build
  SOURCE_DATE_EPOCH the kernels' build date (dpkg-buildpackage takes it from debian/changelog, rpmbuild from
                    %changelog), read by scons itself

Why a package build differs from a developer's `scons`:
- It never trusts on first use: every source without a pin in patches/sources.toml must be in the committed
  patches/sources.lock, so a package says which bytes went in before it is built (and the checkout is not written).
- Its build root and download cache are its own (`package-build/` in the checkout), so `debian/rules clean`
  removes everything a package build made and never a developer's `build/` (hours of kernel builds).
- It builds the arch the package is for, natively only: mkdutils' tools are built for the build machine, so a
  cross build (an i386 package on an amd64 machine) would ship tools of the wrong arch. Build i386 packages on
  i386 (an i386 chroot: `sbuild --arch=i386`, `pbuilder --architecture i386`).

The scons run uses the Python that runs this file: Debian's /usr/bin/python3 with the Build-Depends (scons,
python3-pyelftools, python3-kconfiglib, python3-requests) unless the packager says otherwise (MKDUMP_PYTHON in
debian/rules, %mkdump_python in the spec).
"""
import os
import subprocess
import sys

if __name__ == "__main__":
    # A package build writes nothing into the checkout but its build root: no __pycache__ here nor from scons.
    sys.dont_write_bytecode = True

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "site_scons"))

from mkdump.errors import MkdumpError  # noqa: E402

# The build root of package builds, relative to the checkout (see the docstring).
BUILD_ROOT = "package-build"
PREFIX = "/usr"

# Debian architecture -> mkdump arch (kernel/arch/<arch>.toml).
DEB_ARCHES = {"amd64": "x86_64", "i386": "i386"}
# RPM target cpu -> mkdump arch: RHEL4 built its i386 kernels as i686 (and i586) packages.
RPM_ARCHES = {"x86_64": "x86_64", "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
              "athlon": "i386"}


def deb_arch(environ):
    """The mkdump arch of a Debian build (DEB_HOST_ARCH, which dpkg-buildpackage exports)."""
    host = environ.get("DEB_HOST_ARCH")
    if not host:
        raise MkdumpError("DEB_HOST_ARCH is not set; run the Debian build through dpkg-buildpackage, which sets it")
    build = environ.get("DEB_BUILD_ARCH", host)
    if host != build:
        raise MkdumpError(f"a cross build ({build} building {host}) would ship mkdutils' tools built for {build}; "
                          f"build the {host} packages on {host} (an {host} chroot: sbuild --arch={host})")
    if host not in DEB_ARCHES:
        raise MkdumpError(f"Debian architecture {host} has no mkdump arch; packages are built for "
                          f"{', '.join(DEB_ARCHES)}")
    return DEB_ARCHES[host]


def rpm_arch(environ):
    """The mkdump arch of an RPM build (the spec passes %{_target_cpu} as MKDUMP_RPM_ARCH)."""
    cpu = environ.get("MKDUMP_RPM_ARCH")
    if cpu not in RPM_ARCHES:
        raise MkdumpError(f"RPM target cpu {cpu!r} has no mkdump arch; build for one of {', '.join(RPM_ARCHES)} "
                          "(rpmbuild --target i686 for i386)")
    return RPM_ARCHES[cpu]


def sources_dir(environ):
    """MKDUMP_SOURCES, checked to be a directory."""
    value = environ.get("MKDUMP_SOURCES")
    if not value:
        raise MkdumpError("MKDUMP_SOURCES is not set; give the directory holding the Linux tarball and the mkdump "
                          "files: MKDUMP_SOURCES=DIR dpkg-buildpackage -b -uc -us")
    if not os.path.isdir(value):
        raise MkdumpError(f"MKDUMP_SOURCES={value} is not a directory; give the directory holding the Linux "
                          "tarball and the mkdump files")
    return os.path.abspath(value)


def unlocked_files(top):
    """The files of patches/sources.toml that have neither a pin there nor an entry in patches/sources.lock."""
    from mkdump.sources import LockFile, load_sources
    lock = LockFile(os.path.join(top, "patches", "sources.lock"))
    return [s.file for s in load_sources(os.path.join(top, "patches", "sources.toml")).values()
            if not s.sha256 and not s.tree_sha256 and lock.get(s.file) is None]


def check_locked(top):
    missing = unlocked_files(top)
    if missing:
        raise MkdumpError(f"patches/sources.lock pins no hash for {', '.join(missing)}, and a package build "
                          "trusts nothing on first use: run `scons fetch offline=1 sources=DIR` once, check "
                          "those files, and commit patches/sources.lock")


def scons_command(python, *, arch, sources, top, destdir=None):
    """The scons run as an argument list: the build, or with `destdir` the install into it."""
    root = os.path.join(top, BUILD_ROOT)
    command = [python, "-m", "SCons", "-C", top]
    if destdir is not None:
        command += ["install", f"DESTDIR={os.path.abspath(destdir)}"]
    return command + [f"arch={arch}", f"sources={sources}", "offline=1", f"build={root}",
                      f"cache={os.path.join(root, 'download-cache')}", f"PREFIX={PREFIX}"]


USAGE = "usage: mkdump_package.py deb|rpm build | deb|rpm install DESTDIR"


def main(argv, environ=os.environ, run=subprocess.run):
    args = argv[1:]
    if not (args[:1] in (["deb"], ["rpm"]) and (args[1:] == ["build"] or (args[1:2] == ["install"] and
                                                                           len(args) == 3 and args[2]))):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        arch = deb_arch(environ) if args[0] == "deb" else rpm_arch(environ)
        sources = sources_dir(environ)
        check_locked(TOP)
    except MkdumpError as e:
        print(f"mkdump-package: error: {e}", file=sys.stderr)
        return 2
    command = scons_command(sys.executable, arch=arch, sources=sources, top=TOP,
                            destdir=args[2] if args[1] == "install" else None)
    print("mkdump-package: " + " ".join(command), file=sys.stderr, flush=True)
    return run(command, env=dict(environ, PYTHONDONTWRITEBYTECODE="1")).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
