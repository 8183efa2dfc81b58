"""Buffers and their pages are freed when the last reference goes.

Source: ../shared/notes/uapi-facts.md (debugfs dma_buf/bufinfo lists live
buffers; "double free or leak when installing the fd fails"), Android's
libdmabufheap repeated-allocation tests, ion-unit-tests "exit with live
mappings".
"""

from __future__ import annotations

import pytest

from conformance.errors import OutOfMemory
from conformance.patterns import MiB

pytestmark = pytest.mark.leak

PAGES = 16  # LEAK-001's buffer, in pages of the target


@pytest.mark.case("LEAK-001")
@pytest.mark.cpu_access
@pytest.mark.needs("debugfs_bufinfo")
def test_buffer_is_released_when_fd_and_mappings_are_gone(target, exporter, pages):
    """A dma-buf disappears from the kernel's list once its fd, dups and mappings are closed.

    Contract: the dma-buf file holds the buffer; fds and mappings hold the
    file.  A failing exporter keeps an extra reference and the buffer (and
    its memory) lives until reboot.  Every check counts the kernel's live
    dma-bufs in debugfs ``dma_buf/bufinfo``, so the case needs that
    instrument: without it nothing here can fail.
    """
    before = target.live_buffers()
    buf = target.allocate(exporter.name, pages(PAGES))
    second = target.dup(buf)
    m = target.mmap(buf)
    assert target.live_buffers() == before + 1
    target.close(buf)
    target.close(second)
    assert target.live_buffers() == before + 1, "the mapping no longer holds the buffer"
    target.munmap(m)
    assert target.live_buffers() == before, "the buffer outlived its last fd and mapping"


@pytest.mark.case("LEAK-002")
def test_allocating_and_freeing_more_than_memory_keeps_working(target, exporter):
    """Allocating and freeing, in turn, twice the machine's memory never runs out.

    Contract: release returns the buffer's pages.  A failing exporter frees
    the dma-buf but never its pages, and allocation fails with ENOMEM (or
    the OOM killer runs) well before twice the memory has been cycled.
    """
    mem_total = int(target.info().extra.get("mem_total_bytes", 1024 * MiB))
    chunk = 64 * MiB
    while True:  # the largest chunk a fresh exporter can give (a CMA area may be small)
        try:
            target.close(target.allocate(exporter.name, chunk))
            break
        except OutOfMemory:
            if chunk <= MiB:
                raise
            chunk //= 2
    rounds = min(max(2 * mem_total // chunk, 4), 512)
    for i in range(rounds):
        try:
            buf = target.allocate(exporter.name, chunk)
        except OutOfMemory:
            pytest.fail(
                f"ENOMEM at round {i + 1} of {rounds} allocating {chunk // MiB} MiB after "
                f"{i * chunk // MiB} MiB were allocated and freed: released pages are not reused"
            )
        target.close(buf)
