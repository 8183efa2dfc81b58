"""The cache model: dirty lines hide device writes, CMOs fix it, speculation shows a
missing invalidate."""

from __future__ import annotations

from conformance.model.memory import LINEAR, PAGE_SIZE, VMAP, Cache, PhysicalMemory


def make(aliasing: bool = False, capacity: int = 64) -> tuple[PhysicalMemory, Cache, int]:
    mem = PhysicalMemory(256)
    pages = mem.alloc(1)
    assert pages is not None
    return mem, Cache(mem, capacity, aliasing), pages[0]


def test_dirty_line_hides_a_device_write_until_invalidated():
    mem, cache, pfn = make()
    cache.write(pfn, LINEAR, 0, b"\x11" * 64)  # CPU dirties line 0
    mem.write(pfn, 0, b"\x22" * 64)  # a non-coherent device writes memory
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x11" * 64  # the CPU still sees its line
    cache.invalidate(pfn, LINEAR)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x22" * 64


def test_dirty_line_hides_cpu_data_from_memory_until_cleaned():
    mem, cache, pfn = make()
    cache.write(pfn, LINEAR, 128, b"\x33" * 64)
    assert mem.read(pfn, 128, 64) == bytes(64)  # a non-coherent device reads old memory
    cache.clean(pfn, LINEAR)
    assert mem.read(pfn, 128, 64) == b"\x33" * 64
    assert cache.read(pfn, LINEAR, 128, 64) == b"\x33" * 64  # clean keeps the line


def test_partial_line_write_keeps_the_rest_of_the_line():
    mem, cache, pfn = make()
    mem.write(pfn, 0, b"\x44" * 64)
    cache.write(pfn, LINEAR, 10, b"\x55" * 4)
    cache.clean(pfn, LINEAR)
    assert mem.read(pfn, 0, 64) == b"\x44" * 10 + b"\x55" * 4 + b"\x44" * 50


def test_speculative_fill_makes_a_missing_invalidate_visible():
    mem, cache, pfn = make()
    # Without speculation an absent line is read from memory: no invalidate needed.
    mem.write(pfn, 0, b"\x66" * PAGE_SIZE)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x66" * 64
    cache.invalidate(pfn, LINEAR)
    # The CPU prefetches while the device owns the page, then the device writes.
    cache.speculative_fill(pfn, LINEAR)
    mem.write(pfn, 0, b"\x77" * PAGE_SIZE)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x66" * 64  # stale: invalidate was missing
    cache.invalidate(pfn, LINEAR)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x77" * 64


def test_invalidate_discards_dirty_data():
    mem, cache, pfn = make()
    cache.write(pfn, LINEAR, 0, b"\x88" * 64)
    cache.invalidate(pfn, LINEAR)
    assert mem.read(pfn, 0, 64) == bytes(64)
    assert cache.read(pfn, LINEAR, 0, 64) == bytes(64)


def test_aliasing_cache_keeps_separate_lines_per_mapping():
    mem, cache, pfn = make(aliasing=True)
    cache.write(pfn, VMAP, 0, b"\x99" * 64)
    assert cache.read(pfn, LINEAR, 0, 64) == bytes(64)  # the linear map does not see it
    cache.flush(pfn, VMAP)
    cache.invalidate(pfn, LINEAR)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\x99" * 64


def test_pipt_cache_shares_lines_between_mappings():
    mem, cache, pfn = make(aliasing=False)
    cache.write(pfn, VMAP, 0, b"\xaa" * 64)
    assert cache.read(pfn, LINEAR, 0, 64) == b"\xaa" * 64


def test_coherent_snoop_sees_dirty_and_stale_clean_lines():
    mem, cache, pfn = make()
    cache.write(pfn, LINEAR, 0, b"\xbb" * 64)
    assert cache.snoop_read(pfn, 0, 64) == b"\xbb" * 64  # dirty line wins over memory
    cache.speculative_fill(pfn, LINEAR)
    mem.write(pfn, 64, b"\xcc" * 64)  # behind a clean line
    assert cache.snoop_read(pfn, 64, 64) == bytes(64)  # the stale clean line answers
    cache.invalidate(pfn, LINEAR, 64, 64)
    assert cache.snoop_read(pfn, 64, 64) == b"\xcc" * 64


def test_eviction_writes_dirty_lines_back():
    mem, cache, pfn = make(capacity=2)
    others = mem.alloc(2)
    assert others is not None
    cache.write(pfn, LINEAR, 0, b"\xdd" * 64)
    for other in others:
        cache.read(other, LINEAR, 0, 64)
    assert mem.read(pfn, 0, 64) == b"\xdd" * 64


def test_allocator_recycles_freed_pages_with_old_content():
    mem = PhysicalMemory(16)
    pages = mem.alloc(4)
    assert pages is not None
    mem.write(pages[0], 0, b"old")
    mem.free(pages)
    again = mem.alloc(4)
    assert again == pages
    assert mem.read(again[0], 0, 3) == b"old"
    assert mem.alloc(13) is None  # 12 left
