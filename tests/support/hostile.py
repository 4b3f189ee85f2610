"""Hostile tar archives, made at test time: members that try to write outside the directory they unpack into."""
import io
import tarfile


def member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    info.mode = 0o644
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def write_archive(path, members, mode="w:gz"):
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return path


def climbing_chain(n=24):
    """s0 -> ., sN -> s(N-1)/.., w -> s(n-1)/..: each link alone resolves inside the tree as text, but on disk
    w climbs n levels, which from any temporary directory reaches /."""
    chain = [member("s0", tarfile.SYMTYPE, linkname=".")]
    chain += [member(f"s{i}", tarfile.SYMTYPE, linkname=f"s{i - 1}/..") for i in range(1, n)]
    chain.append(member("w", tarfile.SYMTYPE, linkname=f"s{n - 1}/.."))
    return chain


def escape_variants(victim):
    """Name -> members that, extracted by a naive tar reader, overwrite the absolute path `victim`."""
    rel = str(victim).lstrip("/")
    return {
        # A hard link whose target climbs through the chain (`w/..` is `.` as text, / on disk), then a regular
        # member of the same name that writes through the link.
        "hard link through the chain, then a duplicate name": climbing_chain() + [
            member(rel, data=b"decoy"),
            member("h", tarfile.LNKTYPE, linkname="w/../" + rel),
            member("h", data=b"overwritten"),
        ],
        # The same with a link to a link: h2 names h, which names the outside file.
        "link to a link": climbing_chain() + [
            member(rel, data=b"decoy"),
            member("h", tarfile.LNKTYPE, linkname="w/../" + rel),
            member("h2", tarfile.LNKTYPE, linkname="h"),
            member("h2", data=b"overwritten"),
        ],
        # `..` reached through a directory symlink in the member's own name.
        "'..' through a directory symlink": climbing_chain() + [member("w/" + rel, data=b"overwritten")],
        # A symlink made over a regular file of the same name, then written through.
        "duplicate name over a file": climbing_chain() + [
            member("f", data=b"first"),
            member("f", tarfile.SYMTYPE, linkname="w/" + rel),
            member("f", data=b"overwritten"),
        ],
    }


VARIANTS = tuple(escape_variants("/x"))
