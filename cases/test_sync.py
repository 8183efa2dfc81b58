"""DMA_BUF_IOCTL_SYNC: flag validation and bracketed CPU access from user space.

Source: include/uapi/linux/dma-buf.h and dma_buf_ioctl in
drivers/dma-buf/dma-buf.c (flags outside DMA_BUF_SYNC_VALID_FLAGS_MASK, or
with neither READ nor WRITE, are -EINVAL); IGT's invalid-flags check.
"""

from __future__ import annotations

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import SyncFlag

pytestmark = pytest.mark.sync

DIRECTIONS = [SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW]


@pytest.mark.case("SYNC-001")
@pytest.mark.parametrize("direction", DIRECTIONS, ids=lambda d: d.name)
def test_start_then_end_is_accepted(target, exporter, pages, direction):
    """SYNC_START then SYNC_END with the same direction succeeds.

    Contract: dma-buf.h documents START/END brackets with READ, WRITE or
    RW.  A failing exporter refuses a well-formed bracket.
    """
    buf = target.allocate(exporter.name, pages(1))
    target.sync(buf, SyncFlag.START | direction)
    target.sync(buf, SyncFlag.END | direction)


@pytest.mark.case("SYNC-002")
@pytest.mark.parametrize(
    "flags",
    [0, int(SyncFlag.END), 8, 1 << 32, 1 << 63, int(SyncFlag.RW) | 8],
    ids=["none", "END-without-direction", "bit3", "bit32", "bit63", "RW+bit3"],
)
def test_invalid_sync_flags_are_einval(target, exporter, pages, flags):
    """Flags with unknown bits, or with neither READ nor WRITE, are refused with EINVAL.

    Contract: dma_buf_ioctl checks DMA_BUF_SYNC_VALID_FLAGS_MASK and that
    READ or WRITE is set, before the exporter is called.  A failing kernel
    or exporter accepts them, so the bits can never get a meaning.
    """
    buf = target.allocate(exporter.name, pages(1))
    with pytest.raises(InvalidArgument):
        target.sync(buf, flags)


@pytest.mark.case("SYNC-003")
@pytest.mark.cpu_access
@pytest.mark.needs("dma_api_debug")
def test_bracketed_cpu_access_round_trips_data(target, exporter, pages):
    """Data written between SYNC_START|WRITE and SYNC_END is read back after SYNC_START|READ.

    Contract: the CPU owns the buffer inside a START/END bracket, and what it
    wrote is what it reads in the next bracket, and the cache maintenance
    the exporter does at the brackets (begin/end_cpu_access) keeps the DMA
    API's rules: a sync in the direction the buffer was mapped with.  A
    failing exporter loses or corrupts the write around that maintenance,
    or syncs with another direction (6.1's udmabuf syncs its own misc
    device with the CPU access direction, not the one it mapped with).

    Two checks: the data round trip is asserted here and can fail on any
    target; the direction is checked by CONFIG_DMA_API_DEBUG ("syncs DMA
    memory with different direction"), which the run reads after the case,
    and nothing else sees it.  The case is marked as needing DMA-API debug
    so that it is never a pass where the second check could not fail.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x67)
    target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_write(m, 0, data)
    target.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    assert_same_bytes(target.cpu_read(m, 0, size), data)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)
