"""The core contracts at every size an exporter has a code path for.

Source: issue 11 ("Sizes": a contract checked at one size is checked once).
The 6.1 system heap builds a buffer from chunks of page order 8, 4 and 0
(drivers/dma-buf/heaps/system_heap.c: ``orders[] = {8, 4, 0}``, one GFP
flag set per order in ``order_flags[]``, the largest order that fits taken
first by ``alloc_largest_available``, one sg entry per chunk), the CMA heap
from one contiguous area, udmabuf and vgem from shmem pages that merge into
longer sg entries when they happen to be contiguous.  A bug in one order's
path (its GFP flags, the per-entry loops of mmap, vmap, sync and the sg
table) shows only at the sizes that reach it, so every contract here runs
over one ladder, in pages of the target:

* 1 and 2 pages, and 7 (odd, seven order-0 chunks);
* 16 (one order-4 chunk) and 256 (one order-8 chunk);
* 273 = 256 + 16 + 1 (above the largest order, every order in one buffer);
* 515 = 2 x 256 + 3 (several order-8 chunks, then single pages).

Large buffers are written and compared page by page where the buffer is:
the target fills a view with a known pattern (``cpu_fill``, ``device_fill``)
and returns per-page checksums of what a view reads (``cpu_digests``,
``device_digests``, ``vmap_digests``), so nothing large crosses a guest
channel.  Every page of the pattern carries its own index
(``targets.base.page_pattern``): a page shown in the place of another is
seen, which a pattern repeating every 256 bytes hides.

What a failing exporter does wrong is said per case; the faulty model
exporters ``no-zero-high-order``, ``mmap-pgoff-in-entries``,
``sync-first-entry-only``, ``vmap-chunk-head-pages``,
``sg-drops-order0-tail`` and ``mmap-ref-leak-high-order`` (profiles.py)
each break one order's path and fail only at the sizes that reach it.
"""

from __future__ import annotations

import os

import pytest

from conformance.errors import KernelError, OutOfMemory
from conformance.exporters.udmabuf import limits_of
from conformance.model.chunks import system_heap_chunks
from conformance.patterns import MiB, page_count_id
from conformance.records import Direction, SyncFlag
from conformance.skips import not_applicable, not_checked
from conformance.targets.base import digests, page_pattern

pytestmark = pytest.mark.size_ladder

# In pages of the target: see the module docstring for why each rung.
LADDER = [1, 2, 7, 16, 256, 256 + 16 + 1, 2 * 256 + 3]
LADDER_IDS = [page_count_id(n) for n in LADDER]

# swiotlb bounces at most 128 slots of 2 KiB per segment (qemu/probe/README.md:
# "Limit of the bounce realisation"); a longer sg entry fails to map on a bouncing device.
SWIOTLB_MAX_SEGMENT = 256 * 1024


def _layout(page_count: int) -> str:
    """The system heap's chunks for the size, for failure messages: '256+16+1 pages'."""
    return "+".join(str(c.pages) for c in system_heap_chunks(page_count)) + " pages"


def _expected(size: int, page_size: int, seed: int) -> list[int]:
    """Per-page checksums of what ``cpu_fill``/``device_fill`` with ``seed`` write."""
    return digests(page_pattern(size, page_size, seed), page_size)


def _assert_pages(got: list[int], expected: list[int], what: str, page_count: int) -> None:
    """Per-page checksums equal; else name the pages that differ and the chunk layout."""
    __tracebackhide__ = True
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert len(got) == len(expected) and not bad, (
        f"{what}: {len(bad)} of {len(expected)} pages differ (got {len(got)} checksums), "
        f"first at page(s) {bad[:8]}; the system heap builds {page_count} pages as "
        f"{_layout(page_count)}"
    )


def _allocate(target, exporter, page_count: int, size: int) -> int:
    """A buffer of ``size`` bytes, or the case ends where the exporter cannot make it here."""
    limit_mb = limits_of(exporter).get("size_limit_mb") if exporter.kind == "udmabuf" else None
    if limit_mb is not None and size > limit_mb * MiB:
        not_applicable(
            f"udmabuf's size_limit_mb is {limit_mb}: a {page_count}-page buffer "
            f"({size} bytes) is refused by design"
        )
    try:
        return target.allocate(exporter.name, size)
    except OutOfMemory:
        not_checked(
            f"{exporter.name} cannot allocate {page_count} pages here (ENOMEM): a CMA heap "
            "is bounded by its area (cma= on the kernel command line), the contract is not"
        )


# The user-space cases (SIZE-001, -002, -006) map and touch the buffer without a
# SYNC bracket, as ZERO-001 and the mmap cases do: no device is attached, so the
# bracket would add nothing to check, only udmabuf's known SYNC findings (README: its
# misc device synced with the CPU's direction, and under swiotlb a SYNC of a buffer
# with contiguous pages longer than 256 KiB fails with EIO), which would hide the
# contract at exactly the sizes the ladder is about.  The kernel-side cases
# (SIZE-003, -004) hand data over between the CPU and a device or the kernel, so
# there the bracket is the contract.
def _cpu_fill(
    target, buf: int, size: int, page_size: int, seed: int, *, bracket: bool = False
) -> list[int]:
    """The CPU fills the buffer through a user mapping (inside a write bracket when asked);
    returns the per-page checksums of what it wrote."""
    m = target.mmap(buf)
    if bracket:
        target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_fill(m, 0, size, page_size, seed)
    if bracket:
        target.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    target.munmap(m)
    return _expected(size, page_size, seed)


def _cpu_digests(target, buf: int, size: int, page_size: int) -> list[int]:
    """Per-page checksums of what the CPU reads through a fresh mapping."""
    m = target.mmap(buf)
    got = target.cpu_digests(m, 0, size, page_size)
    target.munmap(m)
    return got


@pytest.mark.case("SIZE-001")
@pytest.mark.cpu_access
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_every_page_is_zeroed_at_allocation(target, exporter, page_size, page_count):
    """A new buffer reads as zeroes on every page, at every size, after pages were recycled.

    Contract: an exporter never hands user space memory holding another
    user's data (uapi-facts.md "non-zeroed pages handed to user space";
    kselftest dmabuf-heaps "zeroed"; seed 000).  On the system heap every
    page order has its own GFP flags (system_heap.c ``order_flags[]``:
    LOW/MID/HIGH_ORDER_GFP, each of which must carry ``__GFP_ZERO``), so the
    contract is checked once per order.  Buffers of the same size are
    dirtied and freed first, so the pages the allocator hands out again
    hold data.  A failing exporter (model:faulty-no-zero-high-order) leaves
    one order's chunks unzeroed: the old data shows from 16 pages up.
    """
    size = page_count * page_size
    for seed in (0x31, 0x32):
        old = _allocate(target, exporter, page_count, size)
        _cpu_fill(target, old, size, page_size, seed)
        target.close(old)
    buf = _allocate(target, exporter, page_count, size)
    got = _cpu_digests(target, buf, size, page_size)
    target.close(buf)
    _assert_pages(got, digests(bytes(size), page_size), "not zeroed", page_count)


@pytest.mark.case("SIZE-002")
@pytest.mark.cpu_access
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_mmap_writes_read_back_through_fresh_mappings(target, exporter, page_size, page_count):
    """What the CPU wrote through one mapping reads back through fresh ones, at page offsets too.

    Contract: a dma-buf has the size it was made with (lseek(0, SEEK_END),
    uapi-facts.md) and every user mapping of it, at any page offset, shows
    the same pages (dma_buf_mmap's vm_pgoff is in pages: system_heap.c
    ``for_each_sgtable_page(table, &piter, vma->vm_pgoff)``; IGT dma-buf
    mmap tests).  The buffer is written whole, then read back through a
    fresh whole mapping and through mappings starting at its middle and at
    its last page.  A failing exporter counts the offset in sg entries
    (model:faulty-mmap-pgoff-in-entries): right while every entry is one
    page, the wrong pages (or none: SIGBUS) once the buffer has 64 KiB or
    1 MiB chunks.
    """
    size = page_count * page_size
    buf = _allocate(target, exporter, page_count, size)
    assert target.buffer_size(buf) == size, "lseek(0, SEEK_END) is not the size allocated"
    assert target.lseek(buf, 0, os.SEEK_SET) == 0
    expected = _cpu_fill(target, buf, size, page_size, 0x5A)
    _assert_pages(
        _cpu_digests(target, buf, size, page_size), expected, "a fresh mapping", page_count
    )
    for first in sorted({page_count // 2, page_count - 1} - {0}):
        length = size - first * page_size
        m = target.mmap(buf, length, first * page_size)
        try:
            got = target.cpu_digests(m, 0, length, page_size)
        except KernelError as exc:
            pytest.fail(
                f"reading a mapping at page offset {first} of {page_count} pages failed "
                f"({exc}): the exporter mapped no page there ({_layout(page_count)})"
            )
        target.munmap(m)
        _assert_pages(
            got,
            expected[first:],
            f"a mapping at page offset {first} (its page 0 = {first})",
            page_count,
        )
    target.close(buf)


def _covered(events, ops: tuple[str, ...]) -> int:
    return sum(e.length for e in events if e.op in ops)


@pytest.mark.case("SIZE-003")
@pytest.mark.kernel_side
@pytest.mark.cpu_access
@pytest.mark.needs("dma_event_log")
@pytest.mark.parametrize(
    "device",
    [pytest.param("noncoherent", marks=pytest.mark.needs("swiotlb_bounce")), "coherent"],
)
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_device_and_cpu_see_each_others_data_over_the_whole_buffer(
    target, exporter, page_size, page_count, device
):
    """A mapped device and the CPU see each other's writes on every page, at every size.

    Contract: the attach-order CMO core (seeds 000, 002, 004) on the whole
    buffer.  The device's first map hands it what the CPU wrote
    (dma_map_sg cleans, map_dma_buf kerneldoc: "already mapped into the
    device address space"); while it stays mapped, SYNC_START makes its
    writes visible to the CPU (dma_sync_sg_for_cpu) and SYNC_END makes the
    CPU's writes visible to it (dma_sync_sg_for_device), system_heap.c
    ``system_heap_dma_buf_begin/end_cpu_access`` over every entry of the
    table.  Checked by the data on every page (a non-coherent device sees a
    bounce copy, so a missing or partial sync shows) and by the DMA event
    log: each of the map and the two syncs covers the buffer's size, which
    is what a coherent device's data cannot show.  A failing exporter syncs
    part of the table (model:faulty-sync-first-entry-only: the first entry,
    i.e. all of a one-chunk buffer and one page of a 7-page one).
    """
    size = page_count * page_size
    buf = _allocate(target, exporter, page_count, size)
    first = _cpu_fill(target, buf, size, page_size, 0x11, bracket=True)
    att = target.attach(buf, device)
    target.dma_events(device, clear=True)
    try:
        target.map_attachment(att, Direction.BIDIRECTIONAL)
    except KernelError as exc:
        if device == "noncoherent" and size > SWIOTLB_MAX_SEGMENT:
            not_checked(
                f"mapping {page_count} pages for the bouncing non-coherent probe device failed "
                f"({exc.errno_name}): swiotlb maps at most {SWIOTLB_MAX_SEGMENT} bytes per sg "
                "entry and this exporter's entries are longer (the system heap's 1 MiB "
                "chunks, a CMA area, contiguous shmem pages), which the device's max segment "
                "size allows; the coherent variant checks this size"
            )
        raise
    # Each step is judged as soon as it is made: an exporter that fails one (udmabuf
    # and vgem sync no mapped attachment) is not driven through the rest, whose DMA-API
    # debug reports would only repeat the first (and, at 515 pages, take seconds each).
    # The plugin releases what is left inside the case (fixtures/plugin.py).
    map_events = target.dma_events(device, clear=True)
    mapped = _covered(map_events, ("map_sg", "map_page"))
    assert mapped >= size, f"the map covered {mapped} of {size} bytes: {_log(map_events)}"
    at_map = target.device_digests(att, 0, size, page_size)
    _assert_pages(at_map, first, f"{device} after its map", page_count)
    target.device_fill(att, 0, size, page_size, 0x22)
    m = target.mmap(buf)
    target.sync(buf, SyncFlag.START | SyncFlag.READ)
    for_cpu = target.dma_events(device, clear=True)
    synced = _covered(for_cpu, ("sync_sg_for_cpu", "sync_single_for_cpu"))
    assert synced >= size, (
        f"SYNC_START|READ with {device} mapped synced {synced} of {size} bytes for the CPU: "
        f"{_log(for_cpu)}"
    )
    cpu_sees = target.cpu_digests(m, 0, size, page_size)
    target.sync(buf, SyncFlag.END | SyncFlag.READ)
    _assert_pages(
        cpu_sees, _expected(size, page_size, 0x22), f"CPU after {device} wrote", page_count
    )
    target.dma_events(device, clear=True)
    target.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    target.cpu_fill(m, 0, size, page_size, 0x33)
    target.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    for_device = target.dma_events(device, clear=True)
    synced = _covered(for_device, ("sync_sg_for_device", "sync_single_for_device"))
    assert synced >= size, (
        f"SYNC_END|WRITE with {device} mapped synced {synced} of {size} bytes for the "
        f"device: {_log(for_device)}"
    )
    target.munmap(m)
    device_sees = target.device_digests(att, 0, size, page_size)
    target.unmap_attachment(att, Direction.BIDIRECTIONAL)
    target.detach(att)
    target.close(buf)
    _assert_pages(
        device_sees,
        _expected(size, page_size, 0x33),
        f"{device} after the CPU wrote",
        page_count,
    )


def _log(events) -> str:
    return ", ".join(str(e) for e in events) or "none"


@pytest.mark.case("SIZE-004")
@pytest.mark.kernel_side
@pytest.mark.cpu_access
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_vmap_reads_what_mmap_wrote(target, exporter, page_size, page_count, vmap_or_skip):
    """The kernel's vmap of the buffer shows, page for page, what user space wrote.

    Contract: dma_buf_vmap maps the buffer's pages in order (dma_buf_vmap
    kerneldoc; system_heap.c ``system_heap_do_vmap`` builds its page array
    with ``for_each_sgtable_page``; seeds 001, 003), read inside
    begin/end_cpu_access.  Every page is checked, so the first, middle and
    last ones of each chunk are among them.  A failing exporter builds the
    page array per sg entry without stepping through the entry
    (model:faulty-vmap-chunk-head-pages): from 16 pages up, every page of a
    64 KiB or 1 MiB chunk shows the chunk's first page.  Not applicable where
    the exporter has no vmap.
    """
    size = page_count * page_size
    buf = _allocate(target, exporter, page_count, size)
    target.vunmap(vmap_or_skip(buf))  # whether the exporter has a vmap at all comes first
    expected = _cpu_fill(target, buf, size, page_size, 0x44, bracket=True)
    v = target.vmap(buf)
    target.begin_cpu_access(buf, Direction.FROM_DEVICE)
    got = target.vmap_digests(v, 0, size, page_size)
    target.end_cpu_access(buf, Direction.FROM_DEVICE)
    target.vunmap(v)
    target.close(buf)
    _assert_pages(got, expected, "the vmap", page_count)


@pytest.mark.case("SIZE-005")
@pytest.mark.kernel_side
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_sg_list_covers_exactly_the_buffer(target, exporter, page_size, page_count):
    """The sg list a device gets covers the whole buffer once: no page short, none twice.

    Contract: map_dma_buf returns "a &sg_table scatter list of the backing
    storage of the DMA buffer ... The addresses and lengths in the scatter
    list are PAGE_SIZE aligned" (include/linux/dma-buf.h, struct
    dma_buf_ops); the system heap makes one entry per chunk
    (system_heap.c ``sg_alloc_table(table, i)``, ``sg_set_page(sg, page,
    page_size(page), 0)``).  Mapped for the coherent device (DMA address =
    the page, no bounce limit): the segment lengths add up to the size, no
    two segments overlap, each is page aligned.  A failing exporter drops
    the order-0 chunks that follow a high-order one
    (model:faulty-sg-drops-order0-tail): the list stops short at 273 and
    515 pages.
    """
    size = page_count * page_size
    buf = _allocate(target, exporter, page_count, size)
    att = target.attach(buf, "coherent")
    segments = target.map_attachment(att, Direction.BIDIRECTIONAL)
    target.unmap_attachment(att, Direction.BIDIRECTIONAL)
    target.detach(att)
    target.close(buf)
    shown = [f"{s.dma_address:#x}+{s.length:#x}" for s in segments[:8]]
    total = sum(s.length for s in segments)
    assert total == size, (
        f"{len(segments)} segments cover {total} bytes of the {size}-byte buffer "
        f"({_layout(page_count)} on the system heap): {shown}"
    )
    unaligned = [s for s in segments if s.dma_address % page_size or s.length % page_size]
    assert not unaligned, f"segments not page aligned: {unaligned[:4]}"
    ordered = sorted(segments, key=lambda s: s.dma_address)
    overlaps = [
        (a, b) for a, b in zip(ordered, ordered[1:]) if a.dma_address + a.length > b.dma_address
    ]
    assert not overlaps, f"segments overlap (the same memory listed twice): {overlaps[:4]}"


@pytest.mark.case("SIZE-006")
@pytest.mark.cpu_access
@pytest.mark.needs("debugfs_bufinfo")
@pytest.mark.parametrize("page_count", LADDER, ids=LADDER_IDS)
def test_buffer_is_freed_after_use_at_every_size(target, exporter, page_size, page_count):
    """A buffer that was mapped and written is gone once its fd and mapping are.

    Contract: the dma-buf file holds the buffer, fds and mappings hold the
    file (dma-buf.c dma_buf_mmap_internal: the mapping takes the file,
    munmap drops it); nothing else may keep it (uapi-facts.md "double free
    or leak").  Counted in debugfs ``dma_buf/bufinfo``.  A failing exporter
    takes an extra reference in one size's path
    (model:faulty-mmap-ref-leak-high-order: buffers holding a 1 MiB chunk,
    256 pages and up, are never freed).
    """
    size = page_count * page_size
    before = target.live_buffers()
    buf = _allocate(target, exporter, page_count, size)
    m = target.mmap(buf)
    target.cpu_write(m, 0, b"\x01" * 8)
    target.cpu_write(m, size - 8, b"\x02" * 8)
    target.close(buf)
    target.munmap(m)
    left = target.live_buffers() - before
    assert left == 0, (
        f"{left} buffer(s) left after the last fd and mapping of a {page_count}-page buffer "
        f"went ({_layout(page_count)} on the system heap)"
    )
