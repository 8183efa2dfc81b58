"""DMA_BUF_IOCTL_SYNC: flag validation and bracketed CPU access from user space.

Source: include/uapi/linux/dma-buf.h and dma_buf_ioctl in
drivers/dma-buf/dma-buf.c (flags outside DMA_BUF_SYNC_VALID_FLAGS_MASK, or
with neither READ nor WRITE, are -EINVAL); IGT's invalid-flags check.
"""

from __future__ import annotations

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import PAGE_SIZE, assert_same_bytes, pattern
from conformance.records import SyncFlag

pytestmark = pytest.mark.sync

DIRECTIONS = [SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW]


@pytest.mark.case("SYNC-001")
@pytest.mark.parametrize("direction", DIRECTIONS, ids=lambda d: d.name)
def test_start_then_end_is_accepted(target, exporter, direction):
    """SYNC_START then SYNC_END with the same direction succeeds.

    Contract: dma-buf.h documents START/END brackets with READ, WRITE or
    RW.  A failing exporter refuses a well-formed bracket.
    """
    buf = target.allocate(exporter.name, PAGE_SIZE)
    target.sync(buf, SyncFlag.START | direction)
    target.sync(buf, SyncFlag.END | direction)


@pytest.mark.case("SYNC-002")
@pytest.mark.parametrize(
    "flags",
    [0, int(SyncFlag.END), 8, 1 << 32, 1 << 63, int(SyncFlag.RW) | 8],
    ids=["none", "END-without-direction", "bit3", "bit32", "bit63", "RW+bit3"],
)
def test_invalid_sync_flags_are_einval(target, exporter, flags):
    """Flags with unknown bits, or with neither READ nor WRITE, are refused with EINVAL.

    Contract: dma_buf_ioctl checks DMA_BUF_SYNC_VALID_FLAGS_MASK and that
    READ or WRITE is set, before the exporter is called.  A failing kernel
    or exporter accepts them, so the bits can never get a meaning.
    """
    buf = target.allocate(exporter.name, PAGE_SIZE)
    with pytest.raises(InvalidArgument):
        target.sync(buf, flags)


@pytest.mark.case("SYNC-003")
def test_bracketed_cpu_access_round_trips_data(target, exporter):
    """Data written between SYNC_START|WRITE and SYNC_END is read back after SYNC_START|READ.

    Contract: the CPU owns the buffer inside a START/END bracket, and what it
    wrote is what it reads in the next bracket.  A failing exporter loses or
    corrupts the write around the cache maintenance it does at the brackets.
    """
    size = 4 * PAGE_SIZE
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x67)
    target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_write(m, 0, data)
    target.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    assert_same_bytes(target.cpu_read(m, 0, size), data)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)
