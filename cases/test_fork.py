"""Sharing a dma-buf with a forked child: inherited fd and inherited mapping.

Source: IGT's dma-buf / prime tests (buffers shared across fork), the
dma-buf documentation ("the fd can be passed to other processes", mmap
must be MAP_SHARED), mm/memory.c (a MAP_SHARED mapping is copied into the
child at fork unless the driver set VM_DONTCOPY).
"""

from __future__ import annotations

import pytest

from conformance.patterns import assert_same_bytes, pattern

pytestmark = [pytest.mark.mmap, pytest.mark.cpu_access]

PAGES = 4  # the buffer, in pages of the target


@pytest.mark.case("FORK-001")
def test_child_writes_are_seen_by_the_parent(target, exporter, pages):
    """A child's writes, through its inherited mapping and through its own map of the
    inherited fd, are seen through the parent's mapping.

    Contract: a dma-buf mapping is MAP_SHARED and inherited at fork, and the
    fd maps the same pages in any process.  A failing exporter marks its
    mappings VM_DONTCOPY (the child dies with SIGSEGV) or maps private
    copies, so processes that share a buffer by fork do not share data.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    target.cpu_write(m, 0, bytes(size))
    inherited = pattern(pages(1), seed=0x1F)
    target.fork_write(m, pages(1), inherited)
    assert_same_bytes(
        target.cpu_read(m, pages(1), pages(1)),
        inherited,
        "the child's write through its inherited mapping is not in the parent's mapping",
    )
    own = pattern(pages(1), seed=0x2E)
    target.fork_mmap_write(buf, pages(3), own)
    assert_same_bytes(
        target.cpu_read(m, pages(3), pages(1)),
        own,
        "the child's write through its own mapping of the inherited fd is not in the "
        "parent's mapping",
    )
