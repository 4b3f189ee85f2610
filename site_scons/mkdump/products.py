"""The products of one arch's build (kernel/products.toml): what each kernel builds and what out/ publishes.

Publishing another file in out/ is editing that data; install.py decides what of out/ goes where on the target."""
from dataclasses import dataclass
from pathlib import Path

from . import tomlfile
from .errors import MkdumpError

PRODUCTS_TOML = Path(__file__).resolve().parents[2] / "kernel" / "products.toml"
KERNELS = ("minik", "system")


@dataclass(frozen=True)
class Product:
    name: str
    title: str
    series: str
    make_targets: tuple
    outputs: tuple         # relative to the product's directory, {arch} filled in
    publish: dict          # out/ name -> path relative to the product's directory


def load(arch, path=PRODUCTS_TOML):
    data = tomlfile.load(path, "the product table")
    products = {}
    for name in KERNELS + ("mkexec", "mkdutils"):
        if name not in data:
            raise MkdumpError(f"{path} has no [{name}] table; restore it from the repository.")
        d = data[name]
        fill = lambda s: s.replace("{arch}", arch)  # noqa: E731
        products[name] = Product(
            name=name, title=d.get("title", name), series=d.get("series", ""),
            make_targets=tuple(d.get("make_targets", ())), outputs=tuple(fill(o) for o in d.get("outputs", ())),
            publish={k: fill(v) for k, v in d.get("publish", {}).items()})
    return products


def published(arch, path=PRODUCTS_TOML):
    """out/ name -> (product, path inside the product's directory), in a stable order."""
    return {out: (p.name, rel) for p in load(arch, path).values() for out, rel in sorted(p.publish.items())}
