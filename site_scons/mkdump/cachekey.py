"""cache_dir=: the key under which one arch's finished artifacts are shared, and the checks of what goes in and out.

The key is a digest of every input that decides the bytes of <build>/<arch>/out/: the project files the stages
read (series, patches, fragments, rules, kernel data, sources.toml) and our own code, the sources' pins, the options
the manifest records, and the content of the compiler driver, assembler, linker and host compiler found on PATH.
It names files relative to the checkout and programs by their command name, never by an absolute path, and leaves
out what does not change the artifacts (build=, the download cache, jobs, cc_launcher=), so teammates with the
same inputs share entries wherever their checkouts and build roots are. The sources count by their pins, not by
the archive each teammate happens to have: a retrieved manifest names the archive and URL of the build that stored
it.
"""
import hashlib
import json
import os
import shlex
import shutil

from . import stamp
from .errors import MkdumpError
from .options import LAUNCHERS

FORMAT = "mkdump-build cache key 1"
# Our code shapes the manifest, the load script and the configuration: a teammate on another version of it
# must not be handed our results.
CODE = ("SConstruct", "site_scons")


def compiler_tools(arch_data, *, cc=None, cross_compile=None):
    """The commands whose programs decide the kernels' code: for each compiler the toolchain stage may pick (the
    one named by CC=/CROSS_COMPILE=, else every candidate of the arch file's [toolchain]), its driver, as and ld;
    then the host compiler. A launcher inside CC= ("ccache gcc") is not the compiler."""
    if cc:
        words = shlex.split(cc)
        while len(words) > 1 and os.path.basename(words[0]) in LAUNCHERS:
            words = words[1:]
        candidates = [(words[0] if words else "", cross_compile or "")]
    elif cross_compile:
        candidates = [(cross_compile + "gcc", cross_compile)]
    else:
        candidates = [(c["cc"][0] if "cc" in c else c.get("cross_compile", "") + "gcc", c.get("cross_compile", ""))
                      for c in arch_data["compilers"]]
    names = []
    for driver, prefix in candidates:
        names += [driver, prefix + "as", prefix + "ld"]
    names.append(arch_data["hostcc"])
    return list(dict.fromkeys(n for n in names if n))


def program_digests(names, path):
    """Command name -> SHA-256 of the program it runs (links followed), or None when it is not on `path`."""
    out = {}
    for name in names:
        found = shutil.which(name, path=path)
        out[name] = stamp.sha256_file(os.path.realpath(found)) if found else None
    return out


def code_files(top):
    paths = []
    for name in CODE:
        p = os.path.join(top, name)
        if os.path.isfile(p):
            paths.append(p)
        for d, dirs, files in os.walk(p):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            paths += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return paths


def file_digests(top, paths):
    """({path relative to top: SHA-256} for files in the checkout, [SHA-256, ...] for files outside it). Files
    outside (a user's fragment or .config) count by content only: their location is not an input. A missing file
    counts as None: no build can have published under that key, so the stages are declared and SCons names the
    missing source as it does without cache_dir=."""
    inside, outside = {}, []
    top = os.path.abspath(top)
    for p in paths:
        p = os.path.abspath(p)
        digest = stamp.sha256_file(p) if os.path.isfile(p) else None
        if os.path.commonpath([top, p]) == top:
            inside[os.path.relpath(p, top)] = digest
        else:
            outside.append(digest or "missing")
    return inside, sorted(outside)


def source_pins(sources, lock):
    """name -> the pins that decide a source's bytes: sources.toml's and the lock file's."""
    return {name: {"file": s.file, "sha256": s.sha256, "tree_sha256": s.tree_sha256, "lock": lock.get(s.file)}
            for name, s in sorted(sources.items())}


def unpinned(pins):
    """Sources whose bytes no pin decides yet (trusted on first use by this very run): a key without them would
    let another machine's different download share our results."""
    return [n for n, p in pins.items() if not (p["sha256"] or p["tree_sha256"] or p["lock"])]


def describe(*, arch, project, external, programs, pins, options):
    return {"format": FORMAT, "arch": arch, "project": project, "external": external, "programs": programs,
            "sources": pins, "options": options}


def digest(description):
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def entry(key, name):
    """The cache entry of the artifact `name` (an out/ file name) under `key`."""
    return hashlib.sha256(f"{key}/{name}".encode()).hexdigest()


def _manifest_outputs(manifest_path):
    try:
        with open(manifest_path, encoding="utf-8") as f:
            data = json.load(f)
        return {o["path"]: o["sha256"] for o in data["outputs"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MkdumpError(f"{manifest_path} is not a readable manifest ({e})") from None


def check_retrieved(out_dir, name, entries):
    """Check an artifact just retrieved into out_dir against the manifest retrieved before it: SCons copies cache
    entries without looking at them, and a damaged shared entry must not become our output. `entries` are the
    cache files of the artifact and of the manifest, named in the error: either may be the damaged one."""
    manifest = os.path.join(out_dir, "manifest.json")
    advice = (f"delete the cache entr{'y' if len(set(entries)) == 1 else 'ies'} {' and '.join(sorted(set(entries)))} "
              "and run scons again (or build without the cache with --cache-disable).")
    try:
        outputs = _manifest_outputs(manifest)
    except MkdumpError as e:
        raise MkdumpError(f"{e}, so the cache holds a damaged copy: {advice}") from None
    if name == "manifest.json":
        return
    path = os.path.join(out_dir, name)
    actual = stamp.sha256_file(path)
    if outputs.get(name) != actual:
        raise MkdumpError(f"{path} retrieved from cache_dir= has SHA-256 {actual} but its manifest records "
                          f"{outputs.get(name)}, so the cache holds a damaged copy: {advice}")


def publish(checked_dir, out_dir, names, check_stamp):
    """Copy the checked artifacts, the manifest and the load script (`names`) from checked_dir to out_dir, after
    making sure each is what check and the manifest recorded: only these copies are pushed to the cache."""
    redo = f"remove {check_stamp} and run scons again so the artifacts are checked anew."
    try:
        checked = stamp.read(check_stamp)
    except (OSError, ValueError) as e:
        raise MkdumpError(f"The check record {check_stamp} cannot be read ({e}); {redo}") from None
    checks = checked.get("checks") or []
    if not checks or not all(c.get("ok") for c in checks):
        raise MkdumpError(f"{check_stamp} does not record passing checks; {redo}")
    outputs = _manifest_outputs(os.path.join(checked_dir, "manifest.json"))
    for name in names:
        if name == "manifest.json":
            continue
        path = os.path.join(checked_dir, name)
        try:
            actual = stamp.sha256_file(path)
        except OSError as e:
            raise MkdumpError(f"{path} cannot be read ({e.strerror}); {redo}") from None
        recorded = {outputs.get(name)} | ({checked["published"][name]} if name in checked["published"] else set())
        if recorded != {actual}:
            raise MkdumpError(f"{path} (SHA-256 {actual}) is not what check and the manifest recorded; {redo}")
    os.makedirs(out_dir, exist_ok=True)
    # All copied before any is renamed into place: a copy that fails (a full disk) leaves no half-published out/.
    staged = []
    try:
        for name in names:
            dest = os.path.join(out_dir, name)
            staged.append((dest + ".tmp", dest))
            shutil.copy2(os.path.join(checked_dir, name), dest + ".tmp")
        for tmp, dest in staged:
            os.replace(tmp, dest)
    finally:
        for tmp, _ in staged:
            if os.path.lexists(tmp):
                os.unlink(tmp)
