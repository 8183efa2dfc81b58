"""The kernel-mapping contract: begin_cpu_access, kmap and vmap.

Source: seed 001 (ION dma_buf_vmap/vunmap thread: "This call must always
succeed, any necessary preparations that might fail need to be done in
begin_cpu_access"; begin_cpu_access creating a kernel mapping it does not
need), seed 003 (the heap helpers' vmap_cnt), the dma_buf_vmap kerneldoc.
"""

from __future__ import annotations

import pytest

from conformance.errors import KernelError
from conformance.patterns import PAGE_SIZE, MiB, assert_same_bytes, pattern
from conformance.records import Direction

pytestmark = [pytest.mark.kmap_contract, pytest.mark.kernel_side]

SIZE = 4 * PAGE_SIZE


@pytest.mark.case("KMAP-001")
@pytest.mark.parametrize("size", [SIZE, 64 * MiB], ids=["16KiB", "64MiB"])
def test_kmap_succeeds_after_begin_cpu_access(target, exporter, size, allocate_or_skip):
    """After begin_cpu_access succeeds, dma_buf_kmap of every page succeeds.

    Contract: dma_buf_kmap "must always succeed, any necessary preparations
    that might fail need to be done in begin_cpu_access" (seed 001).  A
    failing exporter defers the fallible kernel mapping to kmap, which then
    fails after begin_cpu_access said yes.  Kernels from 5.6 have no kmap:
    there the case is skipped and KMAP-002 covers vmap.  The large buffer
    is where a whole-buffer kernel mapping made in begin_cpu_access can fail
    (vmalloc space), which begin_cpu_access must then report, not swallow.
    """
    buf = allocate_or_skip(size)
    try:
        target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    except KernelError as exc:
        pytest.skip(
            f"begin_cpu_access refused ({exc.errno_name}): allowed, it is where "
            "fallible preparation belongs; the contract is about what follows success"
        )
    maps = [target.kmap(buf, page) for page in range(0, size // PAGE_SIZE, 256)]
    for k in maps:
        target.kunmap(k)
    target.end_cpu_access(buf, Direction.BIDIRECTIONAL)


@pytest.mark.case("KMAP-002")
def test_vmap_is_refcounted(target, exporter, vmap_or_skip):
    """Two vmaps share one mapping and it lasts until the second vunmap.

    Contract: dma_buf_vmap returns the same mapping while it is held and
    counts its users (dma-buf.c vmapping_counter; the heaps' vmap_cnt).  A
    failing exporter (vmap without a reference count) tears the mapping
    down at the first vunmap while the other user still reads through it.
    """
    buf = target.allocate(exporter.name, SIZE)
    first = vmap_or_skip(buf)
    second = target.vmap(buf)
    data = pattern(SIZE, seed=0x2D)
    target.vmap_write(first, 0, data)
    assert_same_bytes(
        target.vmap_read(second, 0, SIZE), data, "the two vmaps are not the same mapping"
    )
    assert target.counters(buf)["vmap_count"] == 2
    target.vunmap(first)
    assert target.counters(buf)["vmap_count"] == 1
    assert_same_bytes(
        target.vmap_read(second, 0, SIZE), data, "the mapping went away at the first vunmap"
    )
    target.vunmap(second)
    assert target.counters(buf)["vmap_count"] == 0


@pytest.mark.case("KMAP-003")
def test_begin_cpu_access_creates_no_kernel_mapping(target, exporter):
    """begin_cpu_access does not create (or count) a kernel mapping.

    Contract (seed 001): the kernel mapping is not needed for
    begin_cpu_access and creating one there is both slow (alloc_vmap_area)
    and what lets unbalanced SYNC_END drive kmap_cnt negative.  A failing
    exporter maps the buffer in begin_cpu_access.
    """
    buf = target.allocate(exporter.name, SIZE)
    target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    counters = target.counters(buf)
    target.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    assert counters.get("vmap_count", 0) == 0, f"begin_cpu_access vmapped the buffer: {counters}"
    assert counters.get("kmap_count", 0) == 0, f"begin_cpu_access kmapped the buffer: {counters}"


@pytest.mark.case("KMAP-004")
def test_vmap_count_is_zero_after_balanced_use(target, exporter, vmap_or_skip):
    """After balanced vmap/vunmap pairs the vmap count is back to zero and the buffer is freed.

    Contract: every vmap is undone by its vunmap; release finds no mapping
    left (the heap helpers WARN "buffer still mapped in the kernel").  A
    failing exporter leaks a count and keeps the mapping (and the pages).
    """
    before = target.live_buffers()
    buf = target.allocate(exporter.name, SIZE)
    for _ in range(3):
        v = vmap_or_skip(buf)
        target.vmap_write(v, 0, b"\x01")
        target.vunmap(v)
    assert target.counters(buf)["vmap_count"] == 0
    target.close(buf)
    assert_same_bytes(target.live_buffers(), before)
