"""Unbalanced DMA_BUF_SYNC_END must not corrupt an exporter's kernel-mapping state.

Source: seed 001 (Liam Mark: "a malicious client could call the
DMA_BUF_IOCTL_SYNC IOCTL with flags DMA_BUF_SYNC_END multiple times to cause
the ION buffer kmap_cnt to go negative").  Exporters may refuse END without
START (udmabuf returns EINVAL) or accept it (the system heap); either is
fine, what is not is corrupted state afterwards.

The count itself is private to the exporter (no kernel interface shows
kmap_cnt), so the cases check what a corrupted count does: ION's
end_cpu_access (ion_buffer_kmap_put) unmaps the kernel mapping when the
count reaches zero, under a vmap that still uses it, and once negative the
next kmap_get returns no mapping at all.
"""

from __future__ import annotations

import contextlib

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction, SyncFlag

pytestmark = [pytest.mark.negative_kmap_cnt]

END_FLAGS = [SyncFlag.END | d for d in (SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW)]


def _hammer_end(target, buf, times: int = 16) -> None:
    for flags in END_FLAGS:
        for _ in range(times):
            with contextlib.suppress(InvalidArgument):
                target.sync(buf, flags)


def _user_write(target, buf, m: int, data: bytes) -> None:
    target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_write(m, 0, data)
    target.sync(buf, SyncFlag.END | SyncFlag.WRITE)


def _user_read(target, buf, m: int, length: int) -> bytes:
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    seen = target.cpu_read(m, 0, length)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)
    return seen


@pytest.mark.case("NEGKMAP-001")
def test_unbalanced_sync_end_leaves_the_buffer_usable(target, exporter, pages):
    """After SYNC_END without START, many times in every direction, the buffer still works.

    Contract: an unbalanced END is refused or ignored; it never corrupts
    the exporter's state.  A failing exporter decrements an internal
    mapping count on every END; mapping and SYNC then fail or crash.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    _hammer_end(target, buf)
    m = target.mmap(buf)
    data = pattern(size, seed=0x3B)
    target.sync(buf, SyncFlag.START | SyncFlag.RW)
    target.cpu_write(m, 0, data)
    target.sync(buf, SyncFlag.END | SyncFlag.RW)
    assert_same_bytes(_user_read(target, buf, m, size), data)


@pytest.mark.case("NEGKMAP-002")
@pytest.mark.kernel_side
def test_unbalanced_sync_end_leaves_kernel_mappings_and_device_maps_working(
    target, exporter, vmap_or_none, pages
):
    """A vmap held across unbalanced SYNC_ENDs still maps the buffer; device maps still work.

    Contract: seed 001's kmap_cnt never drops below the users it has,
    whatever user space does; so a kernel mapping held across any number
    of SYNC_END without START stays valid: it reads what was written
    through it before, and what is written through it after reaches a
    device.  A failing exporter (ION's end_cpu_access putting kmap_cnt
    without a matching begin; model:faulty-negative-kmap-cnt) unmaps the
    kernel mapping under the vmap: reading it faults (an oops on a real
    kernel).  Where the exporter has no vmap (6.1 udmabuf) the vmap part is
    left out and the rest runs: a user write after the ENDs still reaches a
    device through a fresh map.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    v = vmap_or_none(buf)  # held across the ENDs
    if v is not None:
        data = pattern(size, seed=0x4C)
        target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
        target.vmap_write(v, 0, data)
        target.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    _hammer_end(target, buf)
    data = pattern(size, seed=0x5D)
    if v is not None:
        target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
        seen = target.vmap_read(v, 0, size)
        target.vmap_write(v, 0, data)
        target.end_cpu_access(buf, Direction.BIDIRECTIONAL)
        assert_same_bytes(
            seen, pattern(size, seed=0x4C), "the vmap held across unbalanced SYNC_END changed"
        )
    else:
        m = target.mmap(buf)
        _user_write(target, buf, m, data)
        target.munmap(m)
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.TO_DEVICE)
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, Direction.TO_DEVICE)
    target.detach(att)
    if v is not None:
        target.vunmap(v)
    assert_same_bytes(seen, data, "a device mapped after the unbalanced ENDs reads other data")
