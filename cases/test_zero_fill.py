"""Memory handed to user space is zeroed, including pages that were used and freed before.

Source: the kselftest dmabuf-heaps "zeroed" test (4 KiB and 1 MiB after
reuse), Android's libdmabufheap tests, seed 000 (stale zeroes and data
readable through an alias), ../shared/notes/uapi-facts.md ("non-zeroed
pages handed to user space (information leak)").
"""

from __future__ import annotations

import pytest

from conformance.patterns import assert_same_bytes, page_count_id
from conformance.targets.base import digests

pytestmark = [pytest.mark.zero_fill, pytest.mark.cpu_access]

# Buffer sizes in pages of the target: one page, and what are the kselftest's
# 64 KiB and 1 MiB on a 4 KiB-page kernel.  Counted in pages because the system
# heap allocates in page orders 8, 4 and 0 (system_heap.c orders[]): 1, 16 and
# 256 pages reach the order-0, order-4 and order-8 pools on any page size.
PAGE_COUNTS = [1, 16, 256]


@pytest.mark.case("ZERO-001", level="MUST")
@pytest.mark.parametrize("page_count", PAGE_COUNTS, ids=page_count_id)
def test_new_buffer_is_zeroed_after_reuse_of_dirtied_pages(target, exporter, pages, page_count):
    """A buffer allocated after others were dirtied and freed reads as all zeroes.

    Contract: an exporter never hands user space memory that still holds
    another user's data.  A failing exporter recycles freed pages without
    clearing them: the new buffer shows the old pattern (an information leak).
    """
    size, page = pages(page_count), pages(1)
    for seed in (0x11, 0x22, 0x33, 0x44):
        old = target.allocate(exporter.name, size)
        m = target.mmap(old)
        # a pattern stamped per page, written where the buffer is: a megabyte need not
        # cross a guest's channel to dirty it
        target.cpu_fill(m, 0, size, page, seed)
        target.munmap(m)
        target.close(old)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    # checksums per page first; the bytes are read (and compared with the reference
    # model's, step by step) when a page is not zero, for the message
    if target.cpu_digests(m, 0, size, page) != digests(bytes(size), page):
        assert_same_bytes(target.cpu_read(m, 0, size), bytes(size), page_size=page)
