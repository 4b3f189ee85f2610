"""Where every stage puts its outputs: one place, so no stage guesses another's paths."""
import os
from dataclasses import dataclass

LINUX_DIR = "linux-2.6.9"


@dataclass(frozen=True)
class Layout:
    root: str      # the build= option
    arch: str      # None for the stages done once for every arch (fetch, unpack)
    # Where check, the manifest and the load script put their files. With cache_dir= they work in "checked" and
    # a publish step copies them to out/, whose entries the shared cache holds.
    out_name: str = "out"

    def _a(self, *parts):
        return os.path.join(self.root, self.arch, *parts)

    @property
    def arch_dir(self):
        return self._a()

    @property
    def linux_src(self):
        return self.src("linux")

    def src(self, source_name):
        """The unpacked, verified tree of a source. Shared by every arch: each unpacks the same archive to the same
        tree, and the kernel trees of both hard-link the pristine one."""
        return os.path.join(self.root, "src", LINUX_DIR if source_name == "linux" else source_name)

    def unpack_stamp(self, source_name, what=""):
        """The unpack stage's stamp of a source (`what`: a record kept beside it), arch independent as its tree."""
        return os.path.join(self.root, "stamps", f"unpack-{source_name}{what}.json")

    def tree(self, kind):
        """The kernel source tree of `kind` ("minik" or "system"): the patched sources, which nothing writes after
        the patch stage."""
        return self._a(kind)

    def obj(self, kind):
        """Where the kernel of `kind` is configured and built (2.6.9's `make O=`): its .config, objects and
        images. A re-patched tree keeps it, so make rebuilds only what the new sources change. Its base name is
        the tree's, which is how the outputs name either (kbuild.out_of_tree_prefix_maps)."""
        return self._a("obj", kind)

    @property
    def mkexec_build(self):
        return self._a("mkexec")

    @property
    def mkdutils_build(self):
        """mkdutils built for the build host, and its mkdutils.tar."""
        return self._a("mkdutils")

    def product_dir(self, product):
        """Where a product of kernel/products.toml is built: its outputs and publish paths are relative to it."""
        return {"mkexec": self.mkexec_build, "mkdutils": self.mkdutils_build}.get(product) or self.obj(product)

    @property
    def out(self):
        return self._a(self.out_name)

    def stamp(self, name):
        return self._a("stamps", name + ".json")

    def log(self, name):
        return self._a("logs", name + ".log")

    def report(self, name):
        return self._a("reports", name)


def fetch_stamp(root, source_name):
    """Fetching is arch independent: one stamp per source."""
    return os.path.join(root, "fetch", source_name + ".json")


def fetch_where(root, source_name):
    """Where the verified file is and which URL it came from; kept apart from the stamp so that finding the same
    bytes elsewhere (cache instead of sources=) does not re-run the stages downstream."""
    return os.path.join(root, "fetch", source_name + ".where.json")
