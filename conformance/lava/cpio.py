"""A newc ("070701") cpio archive, as the kernel unpacks an initramfs: no root needed.

The initramfs needs ``/dev/console`` before its init runs (the kernel opens it
for init's stdio), and a device node is something only root can make in a
directory, so the archive is written directly.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # without a leading "/"
    mode: int  # file type and permissions, e.g. stat.S_IFREG | 0o755
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def file(path: str, data: bytes, mode: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFREG | mode, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, mode: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | mode, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, name: bytes) -> bytes:
    fields = (ino, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0,
              entry.rdev[0], entry.rdev[1], len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def archive(entries: list[Entry]) -> bytes:
    """The archive of ``entries`` in order (parents before children), with its trailer."""
    out = bytearray()
    for ino, entry in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = entry.path.lstrip("/").encode()
        head = _header(ino if entry.mode else 0, entry, name) + name + b"\0"
        out += head + _pad(len(head)) + entry.data + _pad(len(entry.data))
    return bytes(out)
