"""A reader for cpio newc archives, written from the format description (see Documentation/early-userspace in
2.6) rather than from our writer, so tests of mkdump.initramfs and of the boot proofs can read back what it made."""


def parse_newc(data, block_padding=False):
    """The members of a newc archive as dicts (name, ino, mode, uid, gid, nlink, mtime, data, rdev, check).

    cpio(1) pads its output to 512-byte blocks; ours must end right after the trailer."""
    members, pos = [], 0
    while True:
        assert pos % 4 == 0
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, check = f
        name = data[pos + 110:pos + 110 + namesize]
        assert name.endswith(b"\0")
        name = name[:-1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert pos == len(data) or (block_padding and not data[pos:].strip(b"\0") and len(data) % 512 == 0)
            return members
        members.append(dict(name=name, ino=ino, mode=mode, uid=uid, gid=gid, nlink=nlink, mtime=mtime,
                            data=body, rdev=(rmaj, rmin), check=check))
