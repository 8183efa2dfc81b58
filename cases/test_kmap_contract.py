"""The kernel-mapping contract: begin_cpu_access, kmap and vmap.

Source: seed 001 (ION dma_buf_vmap/vunmap thread: "This call must always
succeed, any necessary preparations that might fail need to be done in
begin_cpu_access"; begin_cpu_access creating a kernel mapping it does not
need), seed 003 (the heap helpers' vmap_cnt), the dma_buf_vmap kerneldoc.

What a real kernel lets the suite see here, and what it does not: the
dma-buf core counts vmap users itself (``dma_buf->vmapping_counter``, in
every kernel the probe supports, 5.10+) and calls the exporter's vmap only
for the first user and its vunmap only for the last.  An exporter's own
reference count (vmap_cnt, kmap_cnt) is private to it and, behind the
core's, never exercised through dma_buf_vmap: a bug there is invisible and
no case claims to check it.  What is visible, and checked: the data through
the mapping, the exporter's own vmap/vunmap/begin/end_cpu_access calls (the
probe's kprobes on ``dmabuf->ops``, ``dma_events(EXPORTER_LOG)``), and the
kernel's mappings themselves (/proc/vmallocinfo, ``kernel_mappings``).
"""

from __future__ import annotations

import pytest

from conformance.errors import KernelError, NotAvailableOnTarget
from conformance.patterns import MiB, assert_same_bytes, pattern
from conformance.records import EXPORTER_LOG, Direction
from conformance.skips import not_applicable, not_checked

pytestmark = [pytest.mark.kmap_contract, pytest.mark.kernel_side, pytest.mark.cpu_access]

# kernel_mappings counts by size: an odd page count keeps other kernel
# mappings out of the count.  vmallocinfo lists vmap() areas of any size but
# vm_map_ram() ones only above 64 pages (smaller ones live in per-CPU
# blocks), so the case about the exporter's vmap (6.12 udmabuf: vm_map_ram)
# uses more than 64 pages.  KMAP-003 stays below 64 KiB: udmabuf's
# begin_cpu_access maps the buffer for its own misc device, whose segments
# may be 64 KiB at most (a DMA-API debug complaint above that, which is not
# this family's finding).
VMAP_PAGES = 83
BEGIN_PAGES = 15


def _exporter_ops(target) -> list[str]:
    return [e.op for e in target.dma_events(EXPORTER_LOG)]


@pytest.mark.case("KMAP-001")
@pytest.mark.parametrize("large", [False, True], ids=["4-pages", "64MiB"])
def test_kmap_succeeds_after_begin_cpu_access(target, exporter, large, pages, allocate_or_skip):
    """After begin_cpu_access succeeds, dma_buf_kmap of every page succeeds.

    Contract: dma_buf_kmap "must always succeed, any necessary preparations
    that might fail need to be done in begin_cpu_access" (seed 001).  A
    failing exporter defers the fallible kernel mapping to kmap, which then
    fails after begin_cpu_access said yes.  The large buffer is where a
    whole-buffer kernel mapping made in begin_cpu_access can fail (vmalloc
    space), which begin_cpu_access must then report, not swallow.

    Binds kernels before 5.6 only: dma_buf_kmap was removed in 5.6, and its
    successor dma_buf_vmap may fail by contract (it returns an error), so
    there is no "must succeed after begin" left to check.  On newer kernels
    (every one the probe builds for) the case is not applicable; it runs on
    the model's ION-like exporters and on a pre-5.6 kernel.
    """
    # Whether the contract binds here comes first: no kmap, no case (before any
    # allocation that a small CMA area or swiotlb would refuse).
    probe_buf = target.allocate(exporter.name, pages(1))
    try:
        target.kunmap(target.kmap(probe_buf, 0))
    except NotAvailableOnTarget as exc:
        not_applicable(f"the kmap contract binds kernels before 5.6 ({exc})")
    except KernelError:
        pass  # a kmap outside begin/end may fail (ION): the contract is about inside
    target.close(probe_buf)
    size = 64 * MiB if large else pages(4)
    buf = allocate_or_skip(size)
    try:
        target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    except KernelError as exc:
        not_applicable(
            f"begin_cpu_access refused ({exc.errno_name}): allowed, it is where fallible "
            "preparation belongs; the contract is about what follows its success"
        )
    page_count = size // pages(1)
    maps = [target.kmap(buf, page) for page in range(0, page_count, max(1, page_count // 64))]
    for k in maps:
        target.kunmap(k)
    target.end_cpu_access(buf, Direction.BIDIRECTIONAL)


@pytest.mark.case("KMAP-002")
@pytest.mark.needs("dma_event_log")
def test_vmap_is_refcounted(target, exporter, vmap_or_skip, pages):
    """Two vmaps are one mapping that lasts until the second vunmap, made and unmade once.

    Contract: dma_buf_vmap returns the same mapping while it is held and
    counts its users (dma-buf.c vmapping_counter; the heaps' vmap_cnt); the
    exporter is asked to map once and to unmap once, after the last user.
    Checked by what an importer sees (data written through one vmap reads
    back through the other, and still after the first vunmap) and by the
    exporter's own vmap/vunmap calls.  A failing dma-buf core (a vendor copy
    without vmapping_counter; model:faulty-vmap-no-refcount) passes every
    call to the exporter, which maps anew and unmaps at the first vunmap:
    the second user's mapping is gone.  The exporter's own count is shielded
    by the core (module docstring) and not checked.
    """
    size = pages(4)
    buf = target.allocate(exporter.name, size)
    target.counters(buf)  # names the buffer to the probe: its exporter's ops get logged
    target.dma_events(EXPORTER_LOG)
    first = vmap_or_skip(buf)
    second = target.vmap(buf)
    data = pattern(size, seed=0x2D)
    target.vmap_write(first, 0, data)
    assert_same_bytes(
        target.vmap_read(second, 0, size), data, "the two vmaps are not the same mapping"
    )
    target.vunmap(first)
    calls = _exporter_ops(target)
    assert calls.count("vmap") == 1 and "vunmap" not in calls, (
        f"two dma_buf_vmap calls and one vunmap made the exporter's calls {calls}: the "
        "exporter was asked to map twice or to unmap while a user still held the mapping"
    )
    assert_same_bytes(
        target.vmap_read(second, 0, size), data, "the mapping went away at the first vunmap"
    )
    target.vunmap(second)
    calls = _exporter_ops(target)
    assert calls == ["vunmap"], f"the last vunmap made the exporter's calls {calls}, not a vunmap"


@pytest.mark.case("KMAP-003")
def test_begin_cpu_access_creates_no_kernel_mapping(target, exporter, pages):
    """begin_cpu_access does not create a kernel mapping of the buffer.

    Contract (seed 001): the kernel mapping is not needed for
    begin_cpu_access, and creating one there is both slow (alloc_vmap_area)
    and what lets unbalanced SYNC_END drive kmap_cnt negative.  A failing
    exporter (ION: ion_buffer_kmap_get in begin_cpu_access) maps the buffer
    in begin_cpu_access.  Seen in the kernel's list of its mappings
    (/proc/vmallocinfo: a new vmap of the buffer's size), since the
    exporter's count of it is private.  A mapping made with vm_map_ram of
    64 pages or fewer is not listed there and would go unseen.
    """
    buf = target.allocate(exporter.name, pages(BEGIN_PAGES))
    before = target.counters(buf)
    if "kernel_mappings" not in before:
        not_checked("the target cannot list the kernel's mappings (/proc/vmallocinfo, root)")
    target.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    during = target.counters(buf)
    target.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    made = during["kernel_mappings"] - before["kernel_mappings"]
    assert made <= 0, (
        f"begin_cpu_access mapped the buffer into the kernel: {made} new kernel mapping(s) "
        f"of its {BEGIN_PAGES} pages"
    )


@pytest.mark.case("KMAP-004")
@pytest.mark.needs("dma_event_log", "debugfs_bufinfo")
def test_balanced_vmaps_leave_no_kernel_mapping_and_the_buffer_is_freed(
    target, exporter, vmap_or_skip, pages
):
    """After balanced vmap/vunmap pairs no kernel mapping is left and the buffer is freed.

    Contract: every vmap is undone by its vunmap, and the exporter's vunmap
    really unmaps (the heap helpers WARN "buffer still mapped in the kernel"
    at release otherwise).  Checked by the exporter's calls (a vmap then a
    vunmap, each time), the kernel's list of its mappings (none of the
    buffer's size left over) and the buffer count after close.  A failing
    exporter (model:faulty-vmap-leak) keeps a mapping, and its vmalloc
    space, after every vunmap.
    """
    before = target.live_buffers()
    buf = target.allocate(exporter.name, pages(VMAP_PAGES))
    baseline = target.counters(buf)
    target.dma_events(EXPORTER_LOG)
    for _ in range(3):
        v = vmap_or_skip(buf)
        target.vmap_write(v, 0, b"\x01")
        target.vunmap(v)
    calls = _exporter_ops(target)
    assert calls == ["vmap", "vunmap"] * 3, f"the exporter's calls for 3 vmap/vunmap: {calls}"
    after = target.counters(buf)
    counted = "kernel_mappings" in baseline
    if counted:
        left = after["kernel_mappings"] - baseline["kernel_mappings"]
        assert left <= 0, f"{left} kernel mapping(s) of the buffer left after balanced vunmaps"
    target.close(buf)
    assert target.live_buffers() == before, "the buffer outlived its last fd"
    if not counted:
        not_checked(
            "the kernel's mappings could not be counted (/proc/vmallocinfo unreadable), so a "
            "vunmap that leaves its mapping would go unseen; the other checks passed"
        )
