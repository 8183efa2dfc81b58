"""Cache maintenance at map/unmap, whatever order devices attach and map in.

Sources: seed 004 (Liam Mark on sg_table caching at attach: with a coherent
and a non-coherent device attached, a missing invalidate at the non-coherent
device's unmap lets the coherent device read a stale line), seed 002
(map_dma_buf must return an sg list mapped for the device; dma_map_sg and
dma_unmap_sg are the sync points), seed 000 (the first device map must clean
what the CPU wrote).

How a failure shows: on the model, as stale data in the device's or the CPU's
view; on a real kernel booted with the probe, as data (a non-coherent probe
device sees a bounce copy that only moves at map/unmap/sync) and as a
missing dma_unmap_sg/dma_map_sg in the exporter's DMA event log.

Instruments: the data checks can only fail where a non-coherent device sees
stale data (``swiotlb_bounce``: swiotlb=force, or a machine with real cache
maintenance); on a coherent machine without bouncing every device reads
memory the CPU just wrote, whatever the exporter does.  The DMA-call checks
read the probe's event log (``dma_event_log``).  Each case is marked with
the instruments its assertions depend on, so it is never a pass where one of
them could not fail.
"""

from __future__ import annotations

import pytest

from conformance.bracketed import read_through_mmap, write_through_mmap
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction

pytestmark = [pytest.mark.attach_order_cmo, pytest.mark.kernel_side, pytest.mark.cpu_access]

PAGES = 4  # the buffer of every case, in pages of the target


def _cpu_fill(target, buf, size: int, seed: int) -> bytes:
    data = pattern(size, seed=seed)
    write_through_mmap(target, buf, data)
    return data


def _unmaps(events, device: str):
    return [e for e in events if e.device == device and e.op in ("unmap_sg", "unmap_page")]


@pytest.mark.case("CMO-001")
@pytest.mark.needs("dma_event_log", "swiotlb_bounce")
def test_seed_004_coherent_device_reads_what_noncoherent_device_wrote(target, exporter, pages):
    """Seed 004's 8 steps: the coherent device reads the non-coherent device's data.

    1 attach coherent, 2 attach non-coherent, 3 map non-coherent, 4 it writes,
    5 unmap non-coherent, 6 map coherent, 7 coherent reads, 8 unmap coherent.
    Contract: unmap of the non-coherent device's mapping invalidates the CPU
    cache (dma_unmap_sg), so no stale line is left for the coherent device to
    snoop.  A failing exporter (sg_table cached at attach, no CMO at unmap)
    lets step 7 read the CPU's old data.  Two checks: the exporter's
    dma_unmap_sg at step 5 (DMA event log) and step 7's data (stale only
    where the non-coherent device bounces).
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    _cpu_fill(target, buf, size, seed=0x10)
    coherent = target.attach(buf, "coherent")
    noncoherent = target.attach(buf, "noncoherent")
    target.dma_events(clear=True)
    target.map_attachment(noncoherent, Direction.BIDIRECTIONAL)
    written = pattern(size, seed=0x7E)
    target.device_write(noncoherent, 0, written)
    target.unmap_attachment(noncoherent, Direction.BIDIRECTIONAL)
    events = target.dma_events(clear=True)
    target.map_attachment(coherent, Direction.BIDIRECTIONAL)
    seen = target.device_read(coherent, 0, size)
    target.unmap_attachment(coherent, Direction.BIDIRECTIONAL)
    target.detach(noncoherent)
    target.detach(coherent)
    assert _unmaps(events, "noncoherent"), (
        "the exporter made no dma_unmap_sg on the non-coherent device at step 5: "
        "without it nothing invalidates the CPU cache (seed 004)"
    )
    assert_same_bytes(
        seen, written, "step 7: the coherent device read stale data, not the device's write"
    )


@pytest.mark.case("CMO-002")
@pytest.mark.needs("dma_event_log", "swiotlb_bounce")
@pytest.mark.parametrize(
    "direction", [Direction.TO_DEVICE, Direction.BIDIRECTIONAL], ids=lambda d: d.name
)
def test_first_device_map_cleans_what_the_cpu_wrote(target, exporter, pages, direction):
    """A non-coherent device mapped for the first time reads what the CPU wrote.

    Contract (seeds 000 and 002): map_dma_buf returns an sg list mapped for
    the device, i.e. dma_map_sg cleaned the CPU cache.  A failing exporter
    skips the clean on the first map (or maps with DMA_ATTR_SKIP_CPU_SYNC
    after the CPU touched the buffer) and the device reads old memory.  Two
    checks: the data the device reads (stale only where it bounces) and the
    map call's CPU sync in the DMA event log.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    data = _cpu_fill(target, buf, size, seed=0x21)
    att = target.attach(buf, "noncoherent")
    target.dma_events(clear=True)
    target.map_attachment(att, direction)
    maps = [e for e in target.dma_events(clear=True) if e.device == "noncoherent"]
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, direction)
    target.detach(att)
    assert_same_bytes(seen, data, "the device read memory older than what the CPU wrote")
    skipped = [str(e) for e in maps if e.skip_cpu_sync]
    assert maps and not skipped, (
        "the CPU wrote the buffer, so its first map for a non-coherent device must clean the "
        f"CPU cache; the exporter made: {[str(e) for e in maps] or 'no dma_map_sg'}"
    )


@pytest.mark.case("CMO-003")
@pytest.mark.needs("dma_event_log", "swiotlb_bounce")
@pytest.mark.parametrize(
    "direction", [Direction.FROM_DEVICE, Direction.BIDIRECTIONAL], ids=lambda d: d.name
)
def test_cpu_reads_device_write_after_unmap(target, exporter, pages, direction):
    """After a non-coherent device wrote and was unmapped, SYNC_START|READ shows its data.

    Contract: unmap (dma_unmap_sg) and begin_cpu_access (dma_sync_sg_for_cpu)
    hand the buffer back to the CPU with the device's data visible.  A
    failing exporter does no CMO at unmap and the CPU reads stale lines.
    Two checks: the one dma_unmap_sg with CPU sync in the DMA event log,
    and the data the CPU reads (stale only where the device bounces).
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    _cpu_fill(target, buf, size, seed=0x32)
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, direction)
    written = pattern(size, seed=0x5C)
    target.device_write(att, 0, written)
    target.dma_events(clear=True)
    target.unmap_attachment(att, direction)
    events = target.dma_events(clear=True)
    target.detach(att)
    unmaps = _unmaps(events, "noncoherent")
    assert [(e.direction, e.skip_cpu_sync) for e in unmaps] == [(direction, False)], (
        f"expected one dma_unmap_sg({direction.name}) with CPU sync on the non-coherent device "
        f"at unmap, the exporter made: {[str(e) for e in events] or 'none'}"
    )
    assert_same_bytes(read_through_mmap(target, buf, size), written)


ORDERS = [
    ("attach-both-then-map", ("attach_c", "attach_n", "map_n")),
    ("map-noncoherent-before-coherent-attach", ("attach_n", "map_n", "attach_c")),
    ("coherent-attached-last", ("attach_n", "attach_c", "map_n")),
]


@pytest.mark.case("CMO-004")
@pytest.mark.needs("swiotlb_bounce")
@pytest.mark.parametrize("order", [o for _, o in ORDERS], ids=[n for n, _ in ORDERS])
@pytest.mark.parametrize("cpu_writes_after", [False, True], ids=["no-cpu-write", "cpu-write"])
def test_data_flows_between_devices_and_cpu_in_any_attach_order(
    target, exporter, pages, order, cpu_writes_after
):
    """Data written by one party is what the next reads, for several attach/map orders.

    Contract: the exporter's CMO at map/unmap/begin/end does not depend on
    the order in which devices attach and map (seed 004's point).  The
    non-coherent device writes, is unmapped; the CPU reads (and optionally
    writes new data); the coherent device then reads; the non-coherent
    device is mapped again and reads.  A failing exporter loses a write at
    one of the hand-overs.  Data checks only: they can fail only where the
    non-coherent device bounces.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    _cpu_fill(target, buf, size, seed=0x43)
    handles: dict[str, int] = {}
    for step in order:
        if step == "attach_c":
            handles["c"] = target.attach(buf, "coherent")
        elif step == "attach_n":
            handles["n"] = target.attach(buf, "noncoherent")
        elif step == "map_n":
            target.map_attachment(handles["n"], Direction.BIDIRECTIONAL)
    device_data = pattern(size, seed=0x99)
    target.device_write(handles["n"], 0, device_data)
    target.unmap_attachment(handles["n"], Direction.BIDIRECTIONAL)
    assert_same_bytes(
        read_through_mmap(target, buf, size),
        device_data,
        "CPU read stale data after the device's write",
    )
    expected = device_data
    if cpu_writes_after:
        expected = _cpu_fill(target, buf, size, seed=0xC3)
    target.map_attachment(handles["c"], Direction.BIDIRECTIONAL)
    assert_same_bytes(
        target.device_read(handles["c"], 0, size), expected, "coherent device read stale data"
    )
    target.unmap_attachment(handles["c"], Direction.BIDIRECTIONAL)
    target.map_attachment(handles["n"], Direction.TO_DEVICE)
    assert_same_bytes(
        target.device_read(handles["n"], 0, size),
        expected,
        "non-coherent device read stale data on its second map",
    )
    target.unmap_attachment(handles["n"], Direction.TO_DEVICE)
    for h in handles.values():
        target.detach(h)


@pytest.mark.case("CMO-005", level="SHOULD")
@pytest.mark.needs("swiotlb_bounce")
def test_untouched_buffer_may_be_mapped_without_cpu_sync(target, exporter, pages):
    """A buffer the CPU never touched reads as zeroes on a non-coherent device's first map.

    Contract (seed 000, the DMA_ATTR_SKIP_CPU_SYNC debate): skipping the CPU
    sync is only legal while the CPU has not written; the zeroes the
    exporter put there at allocation must already be clean in memory.  A
    failing exporter zeroes through the cache and never cleans, so the
    device sees the pages' previous contents, which shows only where the
    non-coherent device bounces (or the machine has real cache maintenance).
    """
    size = pages(PAGES)
    for seed in (0x61, 0x62):
        old = target.allocate(exporter.name, size)
        _cpu_fill(target, old, size, seed=seed)
        target.close(old)
    buf = target.allocate(exporter.name, size)
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.TO_DEVICE)
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, Direction.TO_DEVICE)
    target.detach(att)
    assert_same_bytes(seen, bytes(size))


@pytest.mark.case("CMO-006")
@pytest.mark.needs("swiotlb_bounce")
def test_attach_detach_churn_leaves_a_sound_attachment_list(target, exporter, pages):
    """Devices attach, map, unmap and detach in turn; then the CPU reads a device's write.

    Contract: detach takes the attachment off the exporter's list before it
    is freed (system_heap.c / cma_heap.c ``*_detach``: ``list_del`` under the
    buffer lock, then ``kfree``), so the list begin/end_cpu_access walk holds
    exactly the attachments that exist.  Sixteen attach/map/unmap/detach
    rounds over three devices leave freed attachments for the allocator to
    hand out again; then one device attaches, writes, and the CPU reads it
    after START(read).  A failing exporter frees an attachment still on its
    list: the next attach reuses the memory (the list loops, the sync never
    ends) or the walk syncs a freed entry (an oops); either way the case
    fails with the console.  Only one device is mapped at the end, with the
    direction the CPU reads in, so no known direction finding can mask it.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    devices = ("coherent", "noncoherent", "smallseg")
    for i in range(16):
        first, second = devices[i % 3], devices[(i + 1) % 3]
        a = target.attach(buf, first)
        b = target.attach(buf, second)
        target.map_attachment(a, Direction.TO_DEVICE)
        target.unmap_attachment(a, Direction.TO_DEVICE)
        # detach in the order they came, then the other way round
        for att in ((a, b) if i % 2 else (b, a)):
            target.detach(att)
    writer = target.attach(buf, "noncoherent")
    target.map_attachment(writer, Direction.FROM_DEVICE)
    written = pattern(size, seed=0x66)
    target.device_write(writer, 0, written)
    seen = read_through_mmap(target, buf, size)
    target.unmap_attachment(writer, Direction.FROM_DEVICE)
    target.detach(writer)
    assert_same_bytes(seen, written, "after 16 attach/detach rounds the CPU read stale data "
                      "of the one still-mapped device after START(read)")
