"""cache_dir=: the team's shared cache of finished artifacts (HACKING.md, "cache_dir=").

SCons brings a target's children up to date before it looks in a CacheDir, and a stage's real product is a tree
behind a stamp, which no cache can hold. So with cache_dir= check, the manifest and the load script write to
<build>/<arch>/checked/, and one publish Command, in an environment of its own that has the CacheDir, has out/'s
files as targets and a Value holding the input key (mkdump.cachekey) as its only source.
"""
import json
import os
import sys

import SCons.Action
import SCons.CacheDir
import SCons.Errors
import SCons.Node.FS
from SCons.Script import GetOption

from mkdump import cachekey
from mkdump.errors import MkdumpError
from mkdump.logs import log_default


def literal(path):
    """`path` as SCons' directory settings must be given it to take it as it is: SCons substitutes `$` in them."""
    return path.replace("$", "$$")


def nodes(env, paths):
    """Nodes for targets and sources: SCons substitutes `$` in a path given as a string, never in a node."""
    return [env.fs.Entry(p) if isinstance(p, str) else p for p in paths]


def leaf_files(made):
    """Every file the stages behind `made` read that no stage makes: the project's inputs as the graph knows
    them (plus the compiler binary and a user's fragment or .config, outside the checkout)."""
    seen, leaves, todo = set(), [], list(made)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.has_builder():
            todo.extend(n.sources + n.depends)
        elif isinstance(n, SCons.Node.FS.Base):
            leaves.append(n.get_abspath())
    return sorted(leaves)


class SharedCache(SCons.CacheDir.CacheDir):
    """An entry is named by the input key and the artifact's out/ name alone (SCons' own names add the target's
    path, so teammates with another build= would never share), and each retrieved artifact is checked against the
    retrieved manifest, because SCons copies entries without looking at them."""

    def cachepath(self, node):
        key = getattr(node.attributes, "mkdump_key", None)
        if not self.is_enabled() or key is None:
            return None, None
        name = cachekey.entry(key, node.name)
        subdir = os.path.join(self.path, name[:self.config["prefix_len"]].upper())
        return subdir, os.path.join(subdir, name)

    def retrieve(self, node):
        if not super().retrieve(node):
            return False
        if SCons.Action.execute_actions:
            group = node.get_executor().get_all_targets()
            manifest = next(t for t in group if t.name == "manifest.json")
            try:
                cachekey.check_retrieved(node.dir.get_abspath(), node.name,
                                         [self.cachepath(node)[1], self.cachepath(manifest)[1]])
            except MkdumpError as err:
                for t in group:
                    if os.path.exists(t.get_abspath()):
                        os.remove(t.get_abspath())
                raise SCons.Errors.BuildError(node=node, errstr=str(err), exitstatus=2) from None
        return True


def shared_env(env, cache_dir):
    """The environment of the publish nodes only: no stage is ever built with a CacheDir."""
    shared = env.Clone()
    try:
        shared.CacheDir(literal(cache_dir), custom_class=SharedCache)
    except (SCons.Errors.SConsEnvironmentError, OSError) as e:
        raise MkdumpError(f"cache_dir={cache_dir} cannot be used as a build cache ({e}); give a directory you can "
                          "create or read, or leave cache_dir unset.") from None
    return shared


def input_key(made, *, arch, opts, project, sources, lock, manifest_options):
    """The cache key of this arch's out/ and the source pins it holds. The project files in it are the graph's
    own leaves behind `made`, so a file a stage starts reading enters the key by itself."""
    from mkdump import products
    from mkdump.toolchain import load_arch_data
    files = leaf_files(made) + [project.sources_toml, str(products.PRODUCTS_TOML)] + cachekey.code_files(project.top)
    project_files, external = cachekey.file_digests(project.top, files)
    tools = cachekey.compiler_tools(load_arch_data(arch), cc=opts.cc, cross_compile=opts.cross_compile)
    pins = cachekey.source_pins(sources, lock)
    description = cachekey.describe(
        arch=arch, project=project_files, external=external, pins=pins,
        programs=cachekey.program_digests(tools, os.environ.get("PATH", os.defpath)),
        options=dict(manifest_options, cc=opts.cc, cross_compile=opts.cross_compile,
                     source_date_epoch=opts.source_date_epoch))
    return cachekey.digest(description), pins


def share(env, made, names, *, arch, checked_dir, out_dir, check_stamp, key, pins, lock_path):
    """One publish node copies `names` from `checked_dir` to `out_dir`. Its only source is the input key, so SCons
    can retrieve its targets without bringing the stages up to date; the stages (`made`: the manifest and load
    script, and through them everything else) are an order-only prerequisite, declared only when the cache cannot
    supply every artifact of this key, or for `scons -c`."""
    # The manifest first: SCons retrieves the targets in order, and each later one is checked against it.
    names = sorted(names, key=lambda n: n != "manifest.json")
    params = {"arch": arch, "key": key, "names": names, "checked": checked_dir, "out": out_dir,
              "check_stamp": check_stamp}
    node = env.Command(nodes(env, [os.path.join(out_dir, n) for n in names]), env.Value(json.dumps(params)),
                       _PUBLISH)
    for t in node:
        t.attributes.mkdump_key = key
    loose = cachekey.unpinned(pins)
    if loose:
        env.NoCache(node)
        log_default(f"mkdump: [{arch}] cache_dir: not used by this run, source {', '.join(loose)} is not pinned "
             f"yet (this run's fetch records it in {lock_path}; commit that file).")
    cache = env.get_CacheDir()
    # --cache-disable only reaches SCons.CacheDir once the SConscripts are read: ask the option itself.
    hit = not (loose or GetOption("cache_disable")) and all(os.path.isfile(cache.cachepath(t)[1]) for t in node)
    if GetOption("clean") or not hit:
        env.Requires(node, made)
        for t in node:
            t.attributes.mkdump_stages = True
    return node


def _publish(target, source, env):
    p = json.loads(source[0].read())
    if not getattr(target[0].attributes, "mkdump_stages", False):
        # Declared as a hit, so no stage ran: the entries went away after the graph was made.
        print(f"mkdump: error: the cache_dir= entries of {p['out']} disappeared during this run; run scons again "
              "to build them.", file=sys.stderr, flush=True)
        return 2
    log_default(f"mkdump: [{p['arch']}] publishing the checked artifacts to {p['out']}")
    try:
        cachekey.publish(p["checked"], p["out"], p["names"], p["check_stamp"])
    except MkdumpError as err:
        print(f"mkdump: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


_PUBLISH = SCons.Action.Action(_publish, strfunction=lambda target, source, env: None)
