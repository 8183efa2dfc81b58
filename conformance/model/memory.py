"""Physical pages and a write-back CPU data cache with per-line valid/dirty state.

Why a cache at all: every bug class the suite hunts (seeds 000-004) is a
line that holds different data from memory at the moment some other agent
looks.  The cache is per page and per *colour*: on a PIPT cache every
mapping of a page shares colour 0; with ``aliasing=True`` (VIPT/VIVT) the
kernel vmap alias gets its own colour, so it can hold lines the linear map
does not see (seed 003).  Lines are 64 bytes; a page's line state is two
64-bit masks so range operations stay cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

PAGE_SIZE = 4096
LINE_SIZE = 64
LINES_PER_PAGE = PAGE_SIZE // LINE_SIZE
ALL_LINES = (1 << LINES_PER_PAGE) - 1
_ZERO_PAGE = bytes(PAGE_SIZE)

# Mapping colours.  User mappings share the linear map's colour: the kernel
# colours shared user mappings (SHMLBA) so only the vmap alias can differ.
LINEAR = 0
VMAP = 1
COLOUR_NAMES = {LINEAR: "linear", VMAP: "vmap"}


def line_mask(offset: int, length: int) -> int:
    """The lines of one page touched by ``[offset, offset + length)``."""
    first = offset // LINE_SIZE
    last = (offset + length - 1) // LINE_SIZE
    return ((1 << (last - first + 1)) - 1) << first


class PhysicalMemory:
    """Page frames and their content, with an allocator that recycles freed pages.

    Freed frames keep their old bytes and are handed out again first, in the
    order they were freed: an exporter that forgets to zero shows the previous
    owner's data.  Frames never written read as zeroes.
    """

    FIRST_PFN = 0x1000  # keeps DMA addresses away from 0

    def __init__(self, total_pages: int) -> None:
        self.total_pages = total_pages
        self.used_pages = 0
        self._content: dict[int, bytearray] = {}
        self._free: list[int] = []
        self._next_pfn = self.FIRST_PFN

    def alloc(self, npages: int) -> list[int] | None:
        if npages > self.total_pages - self.used_pages:
            return None
        take = min(npages, len(self._free))
        pages = self._free[len(self._free) - take :] if take else []
        if take:
            del self._free[len(self._free) - take :]
            pages.reverse()
        fresh = npages - take
        if fresh:
            pages.extend(range(self._next_pfn, self._next_pfn + fresh))
            self._next_pfn += fresh
        self.used_pages += npages
        return pages

    def free(self, pages: list[int]) -> None:
        self._free.extend(reversed(pages))
        self.used_pages -= len(pages)

    def read(self, pfn: int, offset: int, length: int) -> bytes:
        page = self._content.get(pfn)
        if page is None:
            return _ZERO_PAGE[:length]
        return bytes(page[offset : offset + length])

    def page(self, pfn: int) -> bytearray:
        page = self._content.get(pfn)
        if page is None:
            page = self._content[pfn] = bytearray(PAGE_SIZE)
        return page

    def write(self, pfn: int, offset: int, data: bytes) -> None:
        self.page(pfn)[offset : offset + len(data)] = data


class CachePage:
    __slots__ = ("data", "valid", "dirty")

    def __init__(self) -> None:
        self.data = bytearray(PAGE_SIZE)
        self.valid = 0
        self.dirty = 0


@dataclass(frozen=True)
class CacheOp:
    """One cache-maintenance operation, for ``ModelTarget.cmo_log()``."""

    op: str  # clean | invalidate | flush (clean + invalidate)
    mapping: str  # linear | vmap
    phys: int
    length: int
    cause: str

    def __str__(self) -> str:
        return f"{self.op}({self.mapping}, {self.phys:#x}+{self.length}) by {self.cause}"


class Cache:
    """A write-back, write-allocate data cache of ``capacity_pages`` pages (LRU)."""

    def __init__(self, memory: PhysicalMemory, capacity_pages: int, aliasing: bool) -> None:
        self.memory = memory
        self.capacity = capacity_pages
        self.aliasing = aliasing
        self._pages: OrderedDict[tuple[int, int], CachePage] = OrderedDict()

    def colour(self, colour: int) -> int:
        return colour if self.aliasing else LINEAR

    # -- CPU accesses ----------------------------------------------------------
    def _get(self, pfn: int, colour: int) -> CachePage:
        key = (pfn, colour)
        cp = self._pages.get(key)
        if cp is None:
            cp = self._pages[key] = CachePage()
            if len(self._pages) > self.capacity:
                self._evict()
        else:
            self._pages.move_to_end(key)
        return cp

    def _evict(self) -> None:
        (pfn, _colour), victim = self._pages.popitem(last=False)
        self._write_back(pfn, victim, victim.dirty)

    def _write_back(self, pfn: int, cp: CachePage, mask: int) -> None:
        if not mask:
            return
        if mask == ALL_LINES:
            self.memory.page(pfn)[:] = cp.data
            return
        page = self.memory.page(pfn)
        for i in _bits(mask):
            s = i * LINE_SIZE
            page[s : s + LINE_SIZE] = cp.data[s : s + LINE_SIZE]

    def _fill(self, pfn: int, cp: CachePage, mask: int) -> None:
        missing = mask & ~cp.valid
        if not missing:
            return
        src = self.memory._content.get(pfn)
        if missing == ALL_LINES:
            cp.data[:] = src if src is not None else _ZERO_PAGE
        else:
            for i in _bits(missing):
                s = i * LINE_SIZE
                cp.data[s : s + LINE_SIZE] = (
                    src[s : s + LINE_SIZE] if src is not None else _ZERO_PAGE[:LINE_SIZE]
                )
        cp.valid |= missing

    def read(self, pfn: int, colour: int, offset: int, length: int) -> bytes:
        cp = self._get(pfn, self.colour(colour))
        self._fill(pfn, cp, line_mask(offset, length))
        return bytes(cp.data[offset : offset + length])

    def write(self, pfn: int, colour: int, offset: int, data: bytes) -> None:
        cp = self._get(pfn, self.colour(colour))
        mask = line_mask(offset, len(data))
        if len(data) == PAGE_SIZE:
            cp.valid = ALL_LINES  # a whole-page store needs no line fill
        else:
            self._fill(pfn, cp, mask)
        cp.data[offset : offset + len(data)] = data
        cp.dirty |= mask

    def speculative_fill(self, pfn: int, colour: int) -> None:
        """The CPU prefetches the whole page through a cacheable mapping, as it may at any time."""
        self._fill(pfn, self._get(pfn, self.colour(colour)), ALL_LINES)

    # -- maintenance -----------------------------------------------------------
    def clean(self, pfn: int, colour: int, offset: int = 0, length: int = PAGE_SIZE) -> None:
        cp = self._pages.get((pfn, self.colour(colour)))
        if cp is not None:
            mask = cp.dirty & line_mask(offset, length)
            self._write_back(pfn, cp, mask)
            cp.dirty &= ~mask

    def invalidate(self, pfn: int, colour: int, offset: int = 0, length: int = PAGE_SIZE) -> None:
        key = (pfn, self.colour(colour))
        cp = self._pages.get(key)
        if cp is not None:
            mask = line_mask(offset, length)
            cp.valid &= ~mask
            cp.dirty &= ~mask  # dirty data is discarded: that is what invalidate means
            if not cp.valid:
                del self._pages[key]

    def flush(self, pfn: int, colour: int, offset: int = 0, length: int = PAGE_SIZE) -> None:
        self.clean(pfn, colour, offset, length)
        self.invalidate(pfn, colour, offset, length)

    # -- a snooping (coherent) device ------------------------------------------
    def _holders(self, pfn: int) -> list[CachePage]:
        cps = [self._pages.get((pfn, LINEAR))]
        if self.aliasing:
            cps.append(self._pages.get((pfn, VMAP)))
        return [cp for cp in cps if cp is not None]

    def snoop_read(self, pfn: int, offset: int, length: int) -> bytes:
        """What a coherent device reads: a cached line (dirty first) wins over memory."""
        holders = self._holders(pfn)
        if not holders:
            return self.memory.read(pfn, offset, length)
        out = bytearray(self.memory.read(pfn, 0, PAGE_SIZE))
        mask = line_mask(offset, length)
        # clean lines first, dirty lines last, so the newest CPU data wins
        for want_dirty in (False, True):
            for cp in holders:
                sel = (cp.dirty if want_dirty else cp.valid & ~cp.dirty) & mask
                for i in _bits(sel):
                    s = i * LINE_SIZE
                    out[s : s + LINE_SIZE] = cp.data[s : s + LINE_SIZE]
        return bytes(out[offset : offset + length])

    def snoop_write(self, pfn: int, offset: int, data: bytes) -> None:
        """A coherent device write updates memory and every cached copy of the line."""
        self.memory.write(pfn, offset, data)
        for cp in self._holders(pfn):
            cp.data[offset : offset + len(data)] = data


def _bits(mask: int):
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1
