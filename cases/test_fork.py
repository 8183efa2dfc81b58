"""Sharing a dma-buf with a forked child: inherited fd and inherited mapping.

Source: IGT's dma-buf / prime tests (buffers shared across fork), the
dma-buf documentation ("the fd can be passed to other processes", mmap
must be MAP_SHARED), mm/memory.c (a MAP_SHARED mapping is copied into the
child at fork unless the driver set VM_DONTCOPY).
"""

from __future__ import annotations

import pytest

from conformance.patterns import PAGE_SIZE, assert_same_bytes, pattern

pytestmark = pytest.mark.mmap

SIZE = 4 * PAGE_SIZE


@pytest.mark.case("FORK-001")
def test_child_writes_are_seen_by_the_parent(target, exporter):
    """A child's writes, through its inherited mapping and through its own map of the
    inherited fd, are seen through the parent's mapping.

    Contract: a dma-buf mapping is MAP_SHARED and inherited at fork, and the
    fd maps the same pages in any process.  A failing exporter marks its
    mappings VM_DONTCOPY (the child dies with SIGSEGV) or maps private
    copies, so processes that share a buffer by fork do not share data.
    """
    buf = target.allocate(exporter.name, SIZE)
    m = target.mmap(buf)
    target.cpu_write(m, 0, bytes(SIZE))
    inherited = pattern(PAGE_SIZE, seed=0x1F)
    target.fork_write(m, PAGE_SIZE, inherited)
    assert_same_bytes(
        target.cpu_read(m, PAGE_SIZE, PAGE_SIZE),
        inherited,
        "the child's write through its inherited mapping is not in the parent's mapping",
    )
    own = pattern(PAGE_SIZE, seed=0x2E)
    target.fork_mmap_write(buf, 3 * PAGE_SIZE, own)
    assert_same_bytes(
        target.cpu_read(m, 3 * PAGE_SIZE, PAGE_SIZE),
        own,
        "the child's write through its own mapping of the inherited fd is not in the "
        "parent's mapping",
    )
