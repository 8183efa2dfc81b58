"""The vmap alias and the device view stay coherent.

Source: seed 003 (Christoph Hellwig on the heap helpers: "you need to use
flush_kernel_vmap_range and invalidate_kernel_vmap_range in the right places
to ensure coherency between the vmap and device view"; dma_sync_sg_for_*
only maintains the kernel direct mapping, and VIVT/VIPT caches index the
vmap alias separately).  The model's aliasing-cache option makes the missing
flush visible as data; on physically indexed caches the case still checks
the hand-over through begin/end_cpu_access.
"""

from __future__ import annotations

import pytest

from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction

# Both cases judge by what a non-coherent device and the vmap see: without a
# bounce copy or real cache maintenance a missing CMO does not show, so
# they could not fail there (swiotlb_bounce).
pytestmark = [
    pytest.mark.vmap_aliasing,
    pytest.mark.kernel_side,
    pytest.mark.cpu_access,
    pytest.mark.needs("swiotlb_bounce"),
]


@pytest.mark.case("VMAP-001")
def test_device_reads_what_the_kernel_wrote_through_vmap(target, exporter, vmap_or_skip, pages):
    """What the kernel writes through a vmap, between begin/end_cpu_access, reaches the device.

    Contract: end_cpu_access (or the next map) flushes the vmap alias
    (flush_kernel_vmap_range) as well as the linear map.  A failing
    exporter only syncs the linear map; on an aliasing cache the device
    reads old data.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    v = vmap_or_skip(buf)
    data = pattern(size, seed=0x6A)
    target.begin_cpu_access(buf, Direction.TO_DEVICE)
    target.vmap_write(v, 0, data)
    target.end_cpu_access(buf, Direction.TO_DEVICE)
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.TO_DEVICE)
    seen = target.device_read(att, 0, size)
    target.unmap_attachment(att, Direction.TO_DEVICE)
    target.detach(att)
    target.vunmap(v)
    assert_same_bytes(seen, data)


@pytest.mark.case("VMAP-002")
def test_vmap_reads_what_the_device_wrote(target, exporter, vmap_or_skip, pages):
    """After a device wrote and was unmapped, a vmap read inside begin_cpu_access shows its data.

    Contract: begin_cpu_access invalidates the vmap alias
    (invalidate_kernel_vmap_range) as well as the linear map.  A failing
    exporter leaves stale alias lines that the kernel then reads.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    v = vmap_or_skip(buf)
    target.begin_cpu_access(buf, Direction.FROM_DEVICE)
    before = target.vmap_read(v, 0, size)  # pulls the alias into the cache
    target.end_cpu_access(buf, Direction.FROM_DEVICE)
    assert_same_bytes(before, bytes(size))
    att = target.attach(buf, "noncoherent")
    target.map_attachment(att, Direction.FROM_DEVICE)
    written = pattern(size, seed=0x7B)
    target.device_write(att, 0, written)
    target.unmap_attachment(att, Direction.FROM_DEVICE)
    target.detach(att)
    target.begin_cpu_access(buf, Direction.FROM_DEVICE)
    seen = target.vmap_read(v, 0, size)
    target.end_cpu_access(buf, Direction.FROM_DEVICE)
    target.vunmap(v)
    assert_same_bytes(seen, written)
