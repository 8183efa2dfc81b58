"""Two importers mapped at the same time do not disturb each other.

Sources:

* include/linux/dma-buf.h, struct dma_buf_ops ``map_dma_buf``: it returns
  "A &sg_table scatter list of the backing storage of the DMA buffer,
  already mapped into the device address space of the &device attached with
  the provided &dma_buf_attachment", and "exporters should not try to cache
  the scatter list, or return the same one for multiple calls"; struct
  dma_buf_attachment: "The list contains one attachment struct per device
  attached to the buffer".  Each attachment's mapping is its own.
* drivers/dma-buf/heaps/system_heap.c (6.1) ``system_heap_attach``: every
  attachment gets its own copy of the buffer's table (``dup_sg_table``), so
  mapping one device writes DMA addresses into that copy only.
* seed 002 (Laura Abbott, Ion caching): "Ion currently does nothing except
  pass back the same sg_table each time without calling dma_map", the bug
  class a shared table belongs to; seed 004 (coherent and non-coherent
  devices attached at once, in either order); seed 000 (SYNC_END "will sync
  for device access for all currently attached devices").

A failing exporter hands every attachment one table (model:faulty-shared-sg-
table): mapping the second device re-maps the first one's table for it (its
DMA addresses change under it), and unmapping either tears down both.

Directions: the DMA API lets the same memory be mapped for several devices
only while at most one of them may write it (CONFIG_DMA_API_DEBUG:
"cacheline tracking EEXIST, overlapping mappings aren't supported" for two
mappings that are not DMA_TO_DEVICE), so every pair below has at most one
writer (FROM_DEVICE or BIDIRECTIONAL) and a TO_DEVICE reader.  Data moves
between the two only through the hand-over points the protocol has: the
writer's unmap (dma_unmap_sg) and SYNC_END for the reader still mapped
(dma_sync_sg_for_device).  The 6.1 heaps sync every mapped attachment with
the CPU's direction, not the one it was mapped with (README: GEN-001's
finding), which DMA-API debug reports for a TO_DEVICE reader at any SYNC
with READ; the cases therefore use write brackets while a reader is mapped,
so that finding does not hide this contract.
"""

from __future__ import annotations

import pytest

from conformance.bracketed import read_through_mmap, write_through_mmap
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction

pytestmark = [pytest.mark.two_importers, pytest.mark.kernel_side, pytest.mark.cpu_access]

PAGES = 4  # the buffer of every case, in pages of the target

# (device, direction) of importer A and importer B: at most one writer per pair.
PAIRS = {
    "noncoherent-FROM_DEVICE+coherent-TO_DEVICE": (
        ("noncoherent", Direction.FROM_DEVICE),
        ("coherent", Direction.TO_DEVICE),
    ),
    "coherent-BIDIRECTIONAL+noncoherent-TO_DEVICE": (
        ("coherent", Direction.BIDIRECTIONAL),
        ("noncoherent", Direction.TO_DEVICE),
    ),
    "noncoherent-BIDIRECTIONAL+smallseg-TO_DEVICE": (
        ("noncoherent", Direction.BIDIRECTIONAL),
        ("smallseg", Direction.TO_DEVICE),
    ),
    "noncoherent-TO_DEVICE+smallseg-TO_DEVICE": (
        ("noncoherent", Direction.TO_DEVICE),
        ("smallseg", Direction.TO_DEVICE),
    ),
}
# The three pairs with a writer (A) for the data hand-over.
WRITER_PAIRS = {k: v for k, v in PAIRS.items() if v[0][1] != Direction.TO_DEVICE}
ORDERS = ["A-first", "B-first"]  # which importer attaches and maps first


def _page_data(size: int, page_size: int, seed: int) -> bytes:
    """Every page different (its index in its first byte), so a page shown elsewhere shows."""
    out = bytearray(pattern(size, seed=seed))
    for i in range(0, size, page_size):
        out[i] = (i // page_size + seed) & 0xFF
    return bytes(out)


def _shown(segments) -> str:
    return ", ".join(f"{s.dma_address:#x}+{s.length:#x}" for s in segments) or "none"


def _attach_and_map(target, buf: int, pair, order: str) -> dict[str, tuple[int, Direction, list]]:
    """Attach and map both importers in ``order``; name -> (attachment, direction, segments)."""
    a, b = pair
    first, second = (a, b) if order == "A-first" else (b, a)
    atts = {dev: target.attach(buf, dev) for dev, _ in (first, second)}
    return {
        dev: (atts[dev], direction, target.map_attachment(atts[dev], direction))
        for dev, direction in (first, second)
    }


@pytest.mark.case("TWOIMP-001")
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("pair", list(PAIRS.values()), ids=list(PAIRS))
def test_each_importer_keeps_its_own_mapping(target, exporter, page_size, pair, order):
    """Two devices mapped at once each keep their own sg list; one's unmap leaves the other's.

    Contract: each attachment's map returns a table mapped for that device
    (dma-buf.h ``map_dma_buf``; system_heap.c ``dup_sg_table`` per
    attachment), so mapping the second device leaves the first one's DMA
    segments as they were, and unmapping and detaching either leaves the
    other's segments and the data it reads as they were.  Checked by reading
    each importer's segments again (``attachment_segments``: the table its
    map returned, as it is now) and by what the still-mapped readers read
    (the CPU's data; on a bouncing device its own copy).  A failing exporter
    shares one table (model:faulty-shared-sg-table; seed 002): the first
    importer's segments turn into the second device's addresses, or vanish
    when the other unmaps.
    """
    size = PAGES * page_size
    buf = target.allocate(exporter.name, size)
    data = _page_data(size, page_size, 0x41)
    write_through_mmap(target, buf, data)
    mapped = _attach_and_map(target, buf, pair, order)
    first, second = list(mapped)
    again = {dev: target.attachment_segments(att) for dev, (att, _, _) in mapped.items()}
    reads = {
        dev: target.device_read(att, 0, size)
        for dev, (att, direction, _) in mapped.items()
        if direction != Direction.FROM_DEVICE
    }
    att, direction, _ = mapped[first]
    target.unmap_attachment(att, direction)
    target.detach(att)
    left_att, left_dir, left_segments = mapped[second]
    after = target.attachment_segments(left_att)
    left_read = target.device_read(left_att, 0, size) if left_dir != Direction.FROM_DEVICE else None
    target.unmap_attachment(left_att, left_dir)
    target.detach(left_att)
    target.close(buf)

    for dev, (_, direction, segments) in mapped.items():
        assert sum(s.length for s in segments) == size, (
            f"{dev}'s map ({direction.name}) returned {_shown(segments)} for {size} bytes"
        )
        assert again[dev] == segments, (
            f"with both mapped, {dev}'s segments changed from {_shown(segments)} to "
            f"{_shown(again[dev])}: the other device's map rewrote its table"
        )
    for dev, seen in reads.items():
        assert_same_bytes(seen, data, f"{dev}, mapped beside the other device", page_size)
    assert after == left_segments, (
        f"unmapping and detaching {first} changed {second}'s segments from "
        f"{_shown(left_segments)} to {_shown(after)}: the two shared one table"
    )
    if left_read is not None:
        assert_same_bytes(left_read, data, f"{second}, after {first} was unmapped", page_size)


@pytest.mark.case("TWOIMP-002")
@pytest.mark.needs("swiotlb_bounce")
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("pair", list(WRITER_PAIRS.values()), ids=list(WRITER_PAIRS))
def test_one_importers_write_reaches_the_other(target, exporter, page_size, pair, order):
    """What one device wrote, the other device, still mapped, reads after the hand-over.

    Contract: with two devices mapped at once, the writer's unmap
    (dma_unmap_sg) hands its data back to memory, and SYNC_END syncs the
    still-mapped reader for the device (seed 000: "sync for device access
    for all currently attached devices"; system_heap.c
    ``system_heap_dma_buf_end_cpu_access``), so the reader sees the
    writer's data, and the CPU's own write in the same bracket.  The writer
    is then detached: the reader, mapped all along, keeps working (its
    segments unchanged) and the CPU reads the result after it unmaps.  Data
    checks: a stale copy shows only where a non-coherent device bounces.  A
    failing exporter shares one table between the attachments
    (model:faulty-shared-sg-table): the writer's unmap tears down the
    reader's mapping, which then is synced by nobody; or it skips the
    reader at SYNC_END (the streaming-DMA finding on udmabuf and vgem).
    """
    (writer, w_dir), (reader, r_dir) = pair
    size = PAGES * page_size
    buf = target.allocate(exporter.name, size)
    before = _page_data(size, page_size, 0x51)
    write_through_mmap(target, buf, before)
    mapped = _attach_and_map(target, buf, pair, order)
    w_att, r_att = mapped[writer][0], mapped[reader][0]
    reader_segments = mapped[reader][2]
    at_map = target.device_read(r_att, 0, size)
    written = _page_data(size, page_size, 0x62)
    target.device_write(w_att, 0, written)
    target.unmap_attachment(w_att, w_dir)
    target.detach(w_att)
    after_detach = target.attachment_segments(r_att)
    # The CPU's hand-over bracket: it writes the last page, END syncs the reader.
    cpu_page = _page_data(page_size, page_size, 0x73)
    write_through_mmap(target, buf, cpu_page, size - page_size)
    expected = written[: size - page_size] + cpu_page
    seen = target.device_read(r_att, 0, size)
    target.unmap_attachment(r_att, r_dir)
    target.detach(r_att)
    cpu_sees = read_through_mmap(target, buf, size)
    target.close(buf)

    assert_same_bytes(at_map, before, f"{reader} at its map, beside {writer}", page_size)
    assert after_detach == reader_segments, (
        f"unmapping and detaching {writer} changed {reader}'s segments from "
        f"{_shown(reader_segments)} to {_shown(after_detach)}: the two shared one table"
    )
    assert_same_bytes(
        seen,
        expected,
        f"{reader} ({r_dir.name}, mapped all along) after {writer} ({w_dir.name}) wrote and "
        "was unmapped and the CPU wrote the last page between SYNC START and END",
        page_size,
    )
    assert_same_bytes(cpu_sees, expected, "the CPU after both devices were unmapped", page_size)
