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
from conformance.skips import not_checked

pytestmark = [pytest.mark.negative_kmap_cnt, pytest.mark.cpu_access]

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


def _mappings_begin_makes(target, buf) -> int | None:
    """How many kernel mappings of the buffer a begin_cpu_access bracket holds (None: unseen)."""
    before = target.counters(buf).get("kernel_mappings")
    target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    during = target.counters(buf).get("kernel_mappings")
    target.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    if before is None or during is None:
        return None
    return during - before


@pytest.mark.case("NEGKMAP-002")
@pytest.mark.kernel_side
def test_unbalanced_sync_end_leaves_kernel_mappings_and_device_maps_working(
    target, exporter, vmap_or_none, pages
):
    """After unbalanced SYNC_ENDs kernel mappings behave as before: held ones stay, new ones work.

    Contract: seed 001's kmap_cnt never drops below the users it has,
    whatever user space does.  So a vmap held across any number of
    SYNC_END without START stays valid (it reads what was written through
    it, and what is written through it reaches a device), and
    begin_cpu_access makes the same kernel mappings as before the ENDs.
    A failing exporter (ION's end_cpu_access putting kmap_cnt without a
    matching begin: seed 001, still in 5.10's staging ION; model:
    faulty-negative-kmap-cnt) unmaps the kernel mapping under a held vmap
    (reading it faults: the probe refuses with EFAULT where a driver would
    oops), and once the count is negative begin_cpu_access maps nothing
    (ion_buffer_kmap_get returns the NULL vaddr of a non-zero count).  The
    mappings are counted in /proc/vmallocinfo (``kernel_mappings``); where
    the exporter has no vmap (6.1 udmabuf, 5.10 ION) that part is left
    out and the rest runs.
    """
    size = pages(5)  # an odd page count: kernel_mappings counts mappings by size
    buf = target.allocate(exporter.name, size)
    made_before = _mappings_begin_makes(target, buf)
    v = vmap_or_none(buf)  # held across the ENDs
    if v is not None:
        target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
        target.vmap_write(v, 0, pattern(size, seed=0x4C))
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
        target.vunmap(v)
    else:
        m = target.mmap(buf)
        _user_write(target, buf, m, data)
        target.munmap(m)
    made_after = _mappings_begin_makes(target, buf)
    if made_before is not None and made_after is not None:
        assert made_after == made_before, (
            f"after unbalanced SYNC_END, begin_cpu_access holds {made_after} kernel mapping(s) "
            f"of the buffer where it held {made_before} before: the exporter's count of its "
            "kernel mapping went wrong (seed 001: kmap_cnt driven negative)"
        )
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.TO_DEVICE)
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, Direction.TO_DEVICE)
    target.detach(att)
    assert_same_bytes(seen, data, "a device mapped after the unbalanced ENDs reads other data")
    if made_before is None or made_after is None:
        not_checked(
            "the kernel mappings begin_cpu_access holds could not be counted "
            "(/proc/vmallocinfo unreadable); the other checks passed"
        )
