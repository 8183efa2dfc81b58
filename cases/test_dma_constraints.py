"""The sg list an exporter hands a device honours that device's DMA constraints.

Source: the DMA API (dma_get_max_seg_size, dma_get_seg_boundary; the
CONFIG_DMA_API_DEBUG check "mapping sg segment longer than device claims to
support"), ../shared/notes/uapi-facts.md, seed 002 (map_dma_buf returns a
list mapped for *this* device).
"""

from __future__ import annotations

import pytest

from conformance.bracketed import write_through_mmap
from conformance.errors import KernelError
from conformance.patterns import MiB, assert_same_bytes, pattern
from conformance.records import Direction

pytestmark = [pytest.mark.dma_constraints, pytest.mark.kernel_side]


def _map_or_explain(target, att: int, direction: Direction, spec) -> list:
    try:
        return target.map_attachment(att, direction)
    except KernelError as exc:
        refused = exc.errno_name
    pytest.fail(
        f"dma_buf_map_attachment for {spec.name} (max segment {spec.max_segment} B) failed "
        f"with {refused}: the DMA layer could not map the exporter's sg list for this device, "
        "whose segments are longer than it can take (the kernel log says which; under swiotlb "
        "no segment may exceed the 256 KiB bounce limit)"
    )


@pytest.mark.case("DMACON-001")
def test_segments_fit_the_devices_max_segment_size_and_boundary(target, exporter):
    """Every segment mapped for the small-segment device fits its max size and boundary.

    Contract: an exporter builds the sg table for the attaching device, so
    no segment is longer than dma_get_max_seg_size(dev) or crosses its
    segment boundary.  A failing exporter reuses one table built for
    another device (or for none), with segments too long for this one.
    """
    spec = {d.name: d for d in target.devices()}["smallseg"]
    size = 2 * MiB
    buf = target.allocate(exporter.name, size)
    att = target.attach(buf, "smallseg")
    segments = _map_or_explain(target, att, Direction.BIDIRECTIONAL, spec)
    target.unmap_attachment(att, Direction.BIDIRECTIONAL)
    target.detach(att)
    assert sum(s.length for s in segments) == size
    too_long = [s for s in segments if spec.max_segment and s.length > spec.max_segment]
    assert not too_long, (
        f"{len(too_long)} of {len(segments)} segments exceed the device's max segment size "
        f"{spec.max_segment}: lengths {sorted({s.length for s in too_long})}"
    )
    if spec.segment_boundary:
        window = spec.segment_boundary
        crossing = [
            s
            for s in segments
            if s.dma_address // window != (s.dma_address + s.length - 1) // window
        ]
        assert not crossing, f"{len(crossing)} segments cross a {window:#x} boundary"


@pytest.mark.case("DMACON-002")
@pytest.mark.cpu_access
def test_device_sees_the_whole_buffer_through_small_segments(target, exporter, vmap_or_none):
    """Data written by the CPU reaches the small-segment device intact, in order.

    Contract: splitting into segments keeps the byte order of the buffer.
    A failing exporter drops or reorders pages when it splits.  The CPU
    writes through a kernel vmap where the exporter has one, else through
    the user mapping (6.1 udmabuf has no vmap): how the data gets in is not
    the point, its order at the device is.
    """
    spec = {d.name: d for d in target.devices()}["smallseg"]
    size = 1 * MiB
    buf = target.allocate(exporter.name, size)
    data = pattern(size, seed=0x1F)
    v = vmap_or_none(buf)
    if v is not None:
        target.begin_cpu_access(buf, Direction.TO_DEVICE)
        target.vmap_write(v, 0, data)
        target.end_cpu_access(buf, Direction.TO_DEVICE)
        target.vunmap(v)
    else:
        write_through_mmap(target, buf, data)
    att = target.attach(buf, "smallseg")
    _map_or_explain(target, att, Direction.TO_DEVICE, spec)
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, Direction.TO_DEVICE)
    target.detach(att)
    assert_same_bytes(seen, data)
