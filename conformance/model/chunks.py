"""The page-order chunks the 6.1 system heap builds a buffer from, for the model's exporter.

drivers/dma-buf/heaps/system_heap.c (6.1): ``orders[] = {8, 4, 0}``.
``system_heap_allocate`` takes, while size remains, the largest order that
fits in what remains and is not above the previous chunk's order
(``alloc_largest_available``, ``max_order = compound_order(page)``), and
makes one sg entry per chunk (``sg_set_page(sg, page, page_size(page), 0)``).
So a buffer of 273 pages is one order-8 chunk, one order-4 chunk and one
page; 7 pages are seven order-0 chunks.

Exporters take different code paths by chunk order (the GFP flags per
order, the sg entry per chunk), so a bug can live in one order's path only
and show only at the sizes that reach it.  The model's pages are single
frames; this module gives the chunk layout a buffer of that many pages
*has* on the system heap, which the faulty profiles that break one order's
path act on (profiles.py, issue 11's size ladder).  The layout assumes every
high-order allocation succeeds (the real heap falls back to lower orders
under fragmentation, which only moves a buffer towards order 0).
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM_HEAP_ORDERS = (8, 4, 0)


@dataclass(frozen=True)
class Chunk:
    """One allocation of ``2**order`` pages, starting at page ``first`` of the buffer."""

    first: int
    order: int

    @property
    def pages(self) -> int:
        return 1 << self.order

    @property
    def end(self) -> int:
        return self.first + self.pages


def system_heap_chunks(npages: int, orders: tuple[int, ...] = SYSTEM_HEAP_ORDERS) -> list[Chunk]:
    """The chunks, in sg-table order, of an ``npages``-page system-heap buffer."""
    chunks: list[Chunk] = []
    remaining, first, max_order = npages, 0, orders[0]
    while remaining > 0:
        order = next(o for o in orders if o <= max_order and (1 << o) <= remaining)
        chunks.append(Chunk(first, order))
        first += 1 << order
        remaining -= 1 << order
        max_order = order
    return chunks


def chunk_of_page(chunks: list[Chunk], page: int) -> Chunk:
    """The chunk holding page ``page`` of the buffer."""
    for c in chunks:
        if c.first <= page < c.end:
            return c
    raise IndexError(f"page {page} is past the buffer's {chunks[-1].end if chunks else 0} pages")
