"""Unbalanced DMA_BUF_SYNC_END must not drive an exporter's counters below zero.

Source: seed 001 (Liam Mark: "a malicious client could call the
DMA_BUF_IOCTL_SYNC IOCTL with flags DMA_BUF_SYNC_END multiple times to cause
the ION buffer kmap_cnt to go negative").  Exporters may refuse END without
START (udmabuf returns EINVAL) or accept it (the system heap); either is
fine, what is not is corrupted state afterwards.
"""

from __future__ import annotations

import contextlib

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import PAGE_SIZE, assert_same_bytes, pattern
from conformance.records import Direction, SyncFlag

pytestmark = [pytest.mark.negative_kmap_cnt]

SIZE = 4 * PAGE_SIZE
END_FLAGS = [SyncFlag.END | d for d in (SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW)]


def _hammer_end(target, buf, times: int = 16) -> None:
    for flags in END_FLAGS:
        for _ in range(times):
            with contextlib.suppress(InvalidArgument):
                target.sync(buf, flags)


@pytest.mark.case("NEGKMAP-001")
def test_unbalanced_sync_end_leaves_the_buffer_usable(target, exporter):
    """After SYNC_END without START, many times in every direction, the buffer still works.

    Contract: an unbalanced END is refused or ignored; it never corrupts
    the exporter's state.  A failing exporter decrements an internal
    mapping count on every END; mapping and SYNC then fail or crash.
    """
    buf = target.allocate(exporter.name, SIZE)
    _hammer_end(target, buf)
    m = target.mmap(buf)
    data = pattern(SIZE, seed=0x3B)
    target.sync(buf, SyncFlag.START | SyncFlag.RW)
    target.cpu_write(m, 0, data)
    target.sync(buf, SyncFlag.END | SyncFlag.RW)
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    assert_same_bytes(target.cpu_read(m, 0, SIZE), data)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)


@pytest.mark.case("NEGKMAP-002")
@pytest.mark.kernel_side
def test_unbalanced_sync_end_never_makes_a_counter_negative(target, exporter, vmap_or_skip):
    """No exporter counter goes below zero, and vmap and device mapping still work.

    Contract: seed 001's kmap_cnt must stay >= 0 whatever user space does.
    A failing exporter (end_cpu_access decrementing a kmap count without a
    matching begin) shows a negative count here, and the kernel mapping it
    then creates or tears down is wrong.
    """
    buf = target.allocate(exporter.name, SIZE)
    _hammer_end(target, buf)
    negative = {k: v for k, v in target.counters(buf).items() if v < 0}
    assert not negative, f"counters went negative after unbalanced SYNC_END: {negative}"
    v = vmap_or_skip(buf)
    target.vmap_write(v, 0, pattern(PAGE_SIZE, seed=0x4C))
    target.vunmap(v)
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.BIDIRECTIONAL)
    target.unmap_attachment(att, Direction.BIDIRECTIONAL)
    target.detach(att)
    negative = {k: v for k, v in target.counters(buf).items() if v < 0}
    assert not negative, f"counters negative after vmap and map: {negative}"
