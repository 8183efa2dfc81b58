"""Streaming DMA: CPU access while a device keeps its mapping.

Source: seed 000 (Liam Mark's ION thread: "If there are already attachments,
then ion_dma_buf_begin_cpu_access() will sync for CPU access against all of
the attached devices ... ion_dma_buf_end_cpu_access() will sync for device
access for all currently attached devices") and seed 001 (begin/end
_cpu_access as the bracket the kernel's own CPU access goes through).  The
DMA API's streaming rule behind it: while a mapping lives, the CPU may touch
the memory only between dma_sync_*_for_cpu and dma_sync_*_for_device.  A
dma-buf exporter does these syncs for its importers in begin_cpu_access
(DMA_BUF_IOCTL_SYNC START) and end_cpu_access (SYNC END): for every mapped
attachment, whatever order the devices attached in.

A failing exporter skips the sync for mapped attachments (or syncs only the
first, or caches its sg table and never syncs at all): the CPU reads what the
device's cache or bounce buffer never handed back, and the device reads what
the CPU's cache never wrote out.

How a failure shows: as data, and in the DMA event log.  On a machine
without cache maintenance (x86) only a bounce copy (swiotlb=force) makes a
missing sync visible in the data, so every case needs ``swiotlb_bounce``; on
the model, the non-coherent device reads memory under the CPU's dirty lines.
A coherent device's data cannot show a missing sync anywhere: there the
event log is the evidence (the DMA API wants the sync call whatever the
device; dma-direct makes it cheap), so STREAM-001/002 also need
``dma_event_log`` and check the sync call on the device for both kinds.
"""

from __future__ import annotations

import pytest

from conformance.bracketed import read_through_mmap, write_through_mmap
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction

pytestmark = [
    pytest.mark.streaming_dma,
    pytest.mark.kernel_side,
    pytest.mark.cpu_access,
    pytest.mark.needs("swiotlb_bounce"),
]

SYNCS_FOR_CPU = ("sync_sg_for_cpu", "sync_single_for_cpu")
SYNCS_FOR_DEVICE = ("sync_sg_for_device", "sync_single_for_device")


def _assert_synced(target, device: str, ops: tuple[str, ...], what: str) -> None:
    """The exporter made one of ``ops`` on ``device`` since the events were last cleared."""
    events = target.dma_events(device, clear=True)
    assert any(e.op in ops for e in events), (
        f"{what}: expected a {' or '.join(ops)} on the still-mapped {device} device, "
        f"the exporter made: {', '.join(str(e) for e in events) or 'none'}"
    )

PAGES = 4  # the buffer of every case, in pages of the target

# The directions a device may map with to write (FROM_DEVICE) or read (TO_DEVICE) the buffer.
DEVICE_WRITES = [Direction.FROM_DEVICE, Direction.BIDIRECTIONAL]
DEVICE_READS = [Direction.TO_DEVICE, Direction.BIDIRECTIONAL]
DEVICES = ["noncoherent", "coherent"]
PATHS = ["uapi", "kernel"]  # SYNC ioctl + user mmap, or begin/end_cpu_access + vmap (probe)


def _kernel_mapping(buf, path: str, vmap_or_skip) -> int | None:
    """The kernel path's vmap, taken before any device maps and held to the end (an
    importer keeps its vmap); None on the user path."""
    return vmap_or_skip(buf) if path == "kernel" else None


def _cpu_read(target, buf, size: int, vmap: int | None) -> bytes:
    """What the CPU reads inside a read bracket, through the kernel (vmap) or the user path."""
    if vmap is not None:
        target.begin_cpu_access(buf, Direction.FROM_DEVICE)
        data = target.vmap_read(vmap, 0, size)
        target.end_cpu_access(buf, Direction.FROM_DEVICE)
        return data
    return read_through_mmap(target, buf, size)


def _cpu_write(target, buf, data: bytes, vmap: int | None) -> None:
    """The CPU writes ``data`` in a write bracket, through the kernel (vmap) or the user path."""
    if vmap is not None:
        target.begin_cpu_access(buf, Direction.TO_DEVICE)
        target.vmap_write(vmap, 0, data)
        target.end_cpu_access(buf, Direction.TO_DEVICE)
        return
    write_through_mmap(target, buf, data)


@pytest.mark.case("STREAM-001")
@pytest.mark.needs("dma_event_log")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("direction", DEVICE_WRITES, ids=lambda d: d.name)
def test_cpu_reads_what_a_still_mapped_device_wrote(
    target, exporter, pages, vmap_or_skip, direction, device, path
):
    """A device writes and stays mapped; START(read) shows its data to the CPU.

    Contract: begin_cpu_access (SYNC_START|READ, or dma_buf_begin_cpu_access
    in the kernel) syncs every mapped attachment for the CPU
    (dma_sync_sgtable_for_cpu), so what the device wrote is what the CPU
    reads, without an unmap.  A failing exporter skips the sync for mapped
    attachments: the CPU reads the buffer's old contents (a non-coherent
    device's data is still in its bounce buffer, or behind stale cache lines).
    The kernel variant is not applicable where the exporter has no vmap.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    vmap = _kernel_mapping(buf, path, vmap_or_skip)
    att = target.attach(buf, device)
    target.map_attachment(att, direction)
    written = pattern(size, seed=0x51)
    target.device_write(att, 0, written)
    target.dma_events(device, clear=True)
    seen = _cpu_read(target, buf, size, vmap)
    _assert_synced(target, device, SYNCS_FOR_CPU, "begin_cpu_access (START|READ)")
    target.unmap_attachment(att, direction)
    target.detach(att)
    if vmap is not None:
        target.vunmap(vmap)
    assert_same_bytes(
        seen, written, f"the CPU read stale data while {device} stayed mapped {direction.name}"
    )


@pytest.mark.case("STREAM-002")
@pytest.mark.needs("dma_event_log")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("direction", DEVICE_READS, ids=lambda d: d.name)
def test_still_mapped_device_reads_what_the_cpu_wrote(
    target, exporter, pages, vmap_or_skip, direction, device, path
):
    """A device is mapped; the CPU writes; after END(write) the device reads the CPU's data.

    Contract: end_cpu_access (SYNC_END|WRITE, or dma_buf_end_cpu_access in
    the kernel) syncs every mapped attachment for the device
    (dma_sync_sgtable_for_device), so a device that stayed mapped reads what
    the CPU wrote.  A failing exporter skips the sync for mapped
    attachments: the device reads the zeroes it saw at map time (its bounce
    buffer, or memory under the CPU's dirty lines).
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    vmap = _kernel_mapping(buf, path, vmap_or_skip)
    att = target.attach(buf, device)
    target.map_attachment(att, direction)
    data = pattern(size, seed=0x52)
    target.dma_events(device, clear=True)
    _cpu_write(target, buf, data, vmap)
    _assert_synced(target, device, SYNCS_FOR_DEVICE, "end_cpu_access (END|WRITE)")
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, direction)
    target.detach(att)
    if vmap is not None:
        target.vunmap(vmap)
    assert_same_bytes(
        seen, data, f"{device}, mapped {direction.name}, read stale data after END(write)"
    )


def _map_all(target, buf, directions: dict[str, Direction]) -> dict[str, int]:
    """Attach and map each device, in the dict's order, with its direction."""
    atts = {}
    for device, direction in directions.items():
        atts[device] = target.attach(buf, device)
        target.map_attachment(atts[device], direction)
    return atts


def _unmap_all(target, atts: dict[str, int], directions: dict[str, Direction]) -> None:
    for device, att in atts.items():
        target.unmap_attachment(att, directions[device])
        target.detach(att)


ATTACH_ORDERS = {
    "noncoherent-first": ("noncoherent", "smallseg", "coherent"),
    "noncoherent-last": ("coherent", "smallseg", "noncoherent"),
}


@pytest.mark.case("STREAM-003")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("order", list(ATTACH_ORDERS.values()), ids=list(ATTACH_ORDERS))
def test_every_mapped_attachment_reads_what_the_cpu_wrote(
    target, exporter, pages, vmap_or_skip, order, path
):
    """Three devices stay mapped at once; after END(write) each reads the CPU's data.

    Contract: end_cpu_access syncs every mapped attachment, not only the
    first (seed 000: "sync for device access for all currently attached
    devices").  Two non-coherent devices (``noncoherent``, ``smallseg``) and
    a coherent one are mapped in either attach order.  A failing exporter
    syncs only the first attachment on its list (or none): another
    non-coherent device reads stale data.  The CPU-read direction is not
    checked with several writers: with bounce buffers each device's sync for
    the CPU copies its whole bounce buffer back, so concurrent writers
    through two mappings have no defined result.  Every device maps
    TO_DEVICE: the DMA API allows overlapping mappings of the same memory
    only when no device writes it (CONFIG_DMA_API_DEBUG: "cacheline tracking
    EEXIST, overlapping mappings aren't supported" for BIDIRECTIONAL ones).
    """
    direction = Direction.TO_DEVICE
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    vmap = _kernel_mapping(buf, path, vmap_or_skip)
    directions = dict.fromkeys(order, direction)
    atts = _map_all(target, buf, directions)
    data = pattern(size, seed=0x53)
    _cpu_write(target, buf, data, vmap)
    seen = {device: target.device_read(att, 0, size) for device, att in atts.items()}
    _unmap_all(target, atts, directions)
    if vmap is not None:
        target.vunmap(vmap)
    for device in order:
        assert_same_bytes(
            seen[device],
            data,
            f"{device} (attached {order.index(device) + 1} of {len(order)}), mapped "
            f"{direction.name}, read stale data after END(write)",
        )


WRITER_POSITIONS = {
    # STREAM-003's two orders, named for the writer (``noncoherent``): list_add() puts a
    # new attachment at the head of the exporter's list, so the device attached first is
    # the last one an exporter's walk reaches.
    "writer-attached-first": ATTACH_ORDERS["noncoherent-first"],
    "writer-attached-last": ATTACH_ORDERS["noncoherent-last"],
}


@pytest.mark.case("STREAM-004")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("order", list(WRITER_POSITIONS.values()), ids=list(WRITER_POSITIONS))
def test_cpu_reads_what_one_of_several_mapped_devices_wrote(
    target, exporter, pages, vmap_or_skip, order, path
):
    """Three devices stay mapped; the non-coherent one writes; START(read) shows its data.

    Contract: begin_cpu_access syncs every mapped attachment for the CPU, not
    only the first (seed 000: "sync for CPU access against all of the
    attached devices"), so the device's writes reach the CPU wherever it sits
    in the exporter's attachment list.  The writer (``noncoherent``, mapped
    FROM_DEVICE, its data in a bounce buffer) is attached first or last; the
    others map TO_DEVICE, which the DMA API lets overlap one writing mapping
    (dma-debug tracks no TO_DEVICE cacheline); a correct exporter syncs them
    in their own direction, which copies nothing back.  An exporter that
    syncs them in the CPU's direction (6.1's heaps) copies their stale
    bounce buffers over the writer's data, or DMA-API debug reports the
    direction.  A failing exporter also stops after the first mapped
    attachment on its list (or skips mapped ones): the CPU reads the zeroes
    of allocation.  STREAM-003 checks the END(write) side.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    vmap = _kernel_mapping(buf, path, vmap_or_skip)
    writer = "noncoherent"
    directions = {d: Direction.FROM_DEVICE if d == writer else Direction.TO_DEVICE for d in order}
    atts = _map_all(target, buf, directions)
    written = pattern(size, seed=0x54)
    target.device_write(atts[writer], 0, written)
    seen = _cpu_read(target, buf, size, vmap)
    _unmap_all(target, atts, directions)
    if vmap is not None:
        target.vunmap(vmap)
    assert_same_bytes(
        seen,
        written,
        f"the CPU read stale data after START(read): {writer} (attached "
        f"{order.index(writer) + 1} of {len(order)}) wrote while {len(order)} devices "
        "stayed mapped",
    )
