"""Protected (secure) heaps: memory the CPU must never reach.

Source: drivers/tee/tee_heap.c (6.18, the TEE protected heaps
``protected,secure-video`` and friends: dma_buf_ops with attach, detach,
map, unmap and release only) and the dma-buf core, which refuses a mapping
an exporter has no op for: dma_buf_mmap_internal and dma_buf_vmap return
-EINVAL without ``ops->mmap`` / ``ops->vmap``.  Vendor secure heaps (Android's
``*secure*``) keep the same rule.  Discovery gives these heaps their own kind
(``protected-heap``), and the cases that need CPU access are not applicable to
them (``cpu_access`` marker); these are the contracts that bind them instead.
"""

from __future__ import annotations

import pytest

from conformance.errors import InvalidArgument
from conformance.records import Direction

pytestmark = [pytest.mark.exporter_specific, pytest.mark.applies_to("protected-heap")]

PAGES = 4


@pytest.mark.case("PROT-001")
def test_protected_heap_refuses_user_mappings(target, exporter, pages):
    """mmap of a protected heap's dma-buf is refused with EINVAL, whatever the window.

    Contract: protected memory is owned by the secure world; a CPU mapping
    of it would fault or, worse, leak it (tee_heap.c has no mmap op, so the
    core answers EINVAL).  A failing exporter hands user space a mapping of
    protected pages.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    for length, offset in ((pages(PAGES), 0), (pages(1), pages(1))):
        with pytest.raises(InvalidArgument):
            target.mmap(buf, length, offset)


@pytest.mark.case("PROT-002")
@pytest.mark.kernel_side
def test_protected_heap_refuses_kernel_mappings_but_devices_map_it(target, exporter, pages):
    """dma_buf_vmap of a protected buffer is refused; a device still attaches and maps it.

    Contract: the kernel's CPU must not reach protected memory either
    (tee_heap.c has no vmap op: dma_buf_vmap returns EINVAL), while a
    device, the reason the heap exists, maps it like any dma-buf.  A failing
    exporter gives the kernel a vmap of protected pages, or refuses devices.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    with pytest.raises(InvalidArgument):
        target.vmap(buf)
    att = target.attach(buf, "noncoherent")
    sg = target.map_attachment(att, Direction.BIDIRECTIONAL)
    assert sum(s.length for s in sg) == size, f"the device got {sg} for a {size}-byte buffer"
    target.unmap_attachment(att, Direction.BIDIRECTIONAL)
    target.detach(att)
