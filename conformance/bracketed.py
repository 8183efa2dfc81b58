"""The CPU's user-space path to a dma-buf: a fresh mmap, the access inside its SYNC bracket.

What a well-behaved user of a dma-buf does around every CPU access
(Documentation/driver-api/dma-buf.rst, "CPU access to DMA buffer objects"):
DMA_BUF_IOCTL_SYNC START before, END after, with the access's direction.
Cases whose contract is the data a device or the CPU sees use these; the
cases about the bracket itself (the sync family) spell the ioctls out.
"""

from __future__ import annotations

from conformance.records import SyncFlag
from conformance.targets.base import Target


def write_through_mmap(target: Target, buf: int, data: bytes, offset: int = 0) -> None:
    """Map, START|WRITE, write ``data`` at ``offset``, END|WRITE, unmap."""
    m = target.mmap(buf)
    target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_write(m, offset, data)
    target.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    target.munmap(m)


def read_through_mmap(target: Target, buf: int, length: int, offset: int = 0) -> bytes:
    """Map, START|READ, read ``length`` bytes at ``offset``, END|READ, unmap."""
    m = target.mmap(buf)
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    data = target.cpu_read(m, offset, length)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)
    target.munmap(m)
    return data
