"""The provenance manifest: every input and output of one arch's build, as canonical JSON.

Only facts that are the same whenever the inputs are the same go in: hashes, URLs, versions, options, sizes, check
results. No wall-clock time, no absolute paths of this machine, no way the file happened to be found (cache or
download), so two builds of the same inputs give the same bytes.
"""
import json
import os

from .stamp import sha256_file

FORMAT = "mkdump-build manifest 1"


def file_entry(path):
    return {"path": os.path.basename(path), "size": os.path.getsize(path), "sha256": sha256_file(path)}


def map_prefixes(obj, prefixes):
    """Rewrite strings that start with a local directory (the project checkout, the build root) to a
    machine-independent form, as compilers' -ffile-prefix-map do: the manifest must not depend on where the
    build ran."""
    if isinstance(obj, str):
        for old, new in prefixes:
            obj = obj.replace(old.rstrip("/") + "/", new)
        return obj
    if isinstance(obj, list):
        return [map_prefixes(v, prefixes) for v in obj]
    if isinstance(obj, dict):
        return {k: map_prefixes(v, prefixes) for k, v in obj.items()}
    return obj


def render(*, arch, source_date_epoch, sources, patches, configs, toolchain, options, outputs, checks, prefixes=()):
    data = {
        "format": FORMAT,
        "arch": arch,
        "source_date_epoch": source_date_epoch,
        "inputs": {
            "sources": sources,
            "patches": patches,
            "configs": configs,
            "toolchain": toolchain,
            "options": options,
        },
        "outputs": sorted(outputs, key=lambda o: o["path"]),
        "checks": checks,
    }
    data = map_prefixes(data, prefixes)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
