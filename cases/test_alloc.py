"""Allocation contract of the dma-buf exporters' allocation ioctls.

Source: include/uapi/linux/dma-heap.h and drivers/dma-buf/dma-heap.c
(dma_heap_ioctl_allocate, dma_heap_ioctl), the kselftest dmabuf-heaps
compatibility checks, and ../shared/notes/uapi-facts.md.
"""

from __future__ import annotations

import os

import pytest

from conformance.errors import InvalidArgument
from conformance.lockstep import unchecked
from conformance.patterns import MiB

pytestmark = pytest.mark.alloc

# (pages, bytes): a size is pages of the target's page size plus bytes, so a
# "one page" buffer is one page on a 16 KiB- or 64 KiB-page kernel too.
SIZES = {"1-page": (1, 0), "3-pages": (3, 0), "64KiB": (0, 64 * 1024), "1MiB": (0, MiB),
         "8MiB": (0, 8 * MiB)}  # fmt: skip
UNALIGNED = {"1B": (0, 1), "1-page-1B": (1, -1), "1-page+1B": (1, 1), "3-pages+17B": (3, 17)}


@pytest.mark.case("ALLOC-001")
@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
def test_allocation_has_the_size_asked_for(target, exporter, size, pages, allocate_or_skip):
    """A page-multiple allocation succeeds and the dma-buf reports exactly that size.

    Contract: dma_heap_ioctl_allocate hands back a dma-buf of ``len`` bytes;
    ``lseek(fd, 0, SEEK_END)`` returns dmabuf->size.  A failing exporter
    refuses an ordinary size or reports a different one.  ENOMEM is not
    checked here, only reported as such: a physically contiguous heap is
    bounded (5.10's ion_system_contig_heap by the buddy allocator's largest
    order, 4 MiB on x86; a CMA heap by its area).
    """
    size = pages(size[0]) + size[1]
    buf = allocate_or_skip(size)
    assert target.buffer_size(buf) == size


@pytest.mark.case("ALLOC-002")
@pytest.mark.applies_to("heap", "protected-heap", "ion", "vgem")
@pytest.mark.parametrize("size", list(UNALIGNED.values()), ids=list(UNALIGNED))
def test_allocation_rounds_up_to_whole_pages(target, exporter, size, page_size):
    """A length that is not a page multiple is rounded up to whole pages.

    Contract: dma-heap.c does ``len = PAGE_ALIGN(len)`` before calling the
    heap.  A failing exporter refuses the length or hands out a buffer
    smaller than asked (the tail of a mapping would then fault).
    """
    size = size[0] * page_size + size[1]
    buf = target.allocate(exporter.name, size)
    assert target.buffer_size(buf) == -(-size // page_size) * page_size


@pytest.mark.case("ALLOC-003")
@pytest.mark.applies_to("heap", "protected-heap", "udmabuf", "ion")
def test_zero_length_is_einval(target, exporter):
    """A zero length is refused with EINVAL.

    Contract: dma-heap.c returns -EINVAL when PAGE_ALIGN(len) is 0; udmabuf
    refuses size 0 with -EINVAL.  A failing exporter creates an empty
    dma-buf (whose mmap and map_attachment then misbehave).
    """
    with pytest.raises(InvalidArgument):
        target.allocate(exporter.name, 0)


@pytest.mark.case("ALLOC-004")
@pytest.mark.applies_to("heap", "protected-heap")
def test_length_that_wraps_when_page_aligned_is_einval(target, exporter):
    """A length within a page of 2**64 is refused with EINVAL, not wrapped to 0.

    Contract: PAGE_ALIGN(len) == 0 -> -EINVAL (dma-heap.c).  A failing
    exporter lets the arithmetic overflow and allocates a tiny buffer for
    an absurd request.
    """
    with pytest.raises(InvalidArgument):
        target.allocate(exporter.name, (1 << 64) - 1)


@pytest.mark.case("ALLOC-005")
@pytest.mark.applies_to("heap", "protected-heap")
@pytest.mark.parametrize(
    "fd_flags",
    [os.O_RDWR | os.O_APPEND, os.O_RDWR | os.O_NONBLOCK, os.O_RDWR | 0x4000_0000],
    ids=["O_APPEND", "O_NONBLOCK", "bit30"],
)
def test_fd_flags_outside_cloexec_and_accmode_are_einval(target, exporter, fd_flags, pages):
    """fd_flags other than O_CLOEXEC and the access mode are refused with EINVAL.

    Contract: DMA_HEAP_VALID_FD_FLAGS is O_CLOEXEC | O_ACCMODE (dma-heap.h).
    A failing exporter ignores unknown bits, so a later kernel cannot give
    them a meaning.
    """
    with pytest.raises(InvalidArgument):
        target.allocate(exporter.name, pages(1), fd_flags=fd_flags)


@pytest.mark.case("ALLOC-006")
@pytest.mark.applies_to("heap", "protected-heap")
@pytest.mark.parametrize("heap_flags", [1, 1 << 32, 1 << 63])
def test_heap_flags_are_einval(target, exporter, heap_flags, pages):
    """Any heap_flags bit is refused with EINVAL.

    Contract: DMA_HEAP_VALID_HEAP_FLAGS is 0 (dma-heap.h).  A failing
    exporter accepts vendor bits through the generic interface.
    """
    with pytest.raises(InvalidArgument):
        target.allocate(exporter.name, pages(1), heap_flags=heap_flags)


@pytest.mark.case("ALLOC-007")
@pytest.mark.applies_to("heap", "protected-heap")
@pytest.mark.parametrize("struct_size", [16, 24, 48], ids=["older-16B", "exact-24B", "newer-48B"])
def test_shorter_and_longer_allocation_structs_are_accepted(target, exporter, struct_size, pages):
    """The ALLOC ioctl accepts an older (shorter) and a newer (longer) struct.

    Contract: dma_heap_ioctl zero-fills the tail of a short struct and
    ignores the extra bytes of a long one (the kselftest "compat" checks).
    A failing exporter refuses one of them, breaking old or new user space.
    """
    buf = target.allocate(exporter.name, pages(1), struct_size=struct_size)
    assert target.buffer_size(buf) == pages(1)


@pytest.mark.case("ALLOC-008")
@pytest.mark.applies_to("heap", "protected-heap")
@pytest.mark.parametrize(
    "fd_flags",
    [os.O_RDWR, os.O_RDWR | os.O_CLOEXEC, os.O_RDONLY | os.O_CLOEXEC],
    ids=["O_RDWR", "O_RDWR|O_CLOEXEC", "O_RDONLY|O_CLOEXEC"],
)
def test_valid_fd_flags_are_accepted(target, exporter, fd_flags, pages):
    """Every combination of O_CLOEXEC and an access mode is accepted.

    Contract: DMA_HEAP_VALID_FD_FLAGS (dma-heap.h).  A failing exporter
    rejects a valid combination.
    """
    buf = target.allocate(exporter.name, pages(1), fd_flags=fd_flags)
    assert target.buffer_size(buf) == pages(1)


# Far beyond the RAM and swap of any machine this suite targets, yet small
# enough that no size arithmetic on the way (PAGE_ALIGN, page counts) wraps.
OVERSIZE = 1 << 40


@pytest.mark.case("ALLOC-009")
@pytest.mark.applies_to("heap", "protected-heap", "ion")
def test_oversize_allocation_is_enomem(target, exporter, pages):
    """An allocation larger than all memory fails with ENOMEM, and the next one works.

    Contract: a heap that cannot provide ``len`` bytes returns -ENOMEM (the
    Android ion-unit-tests "3 GiB alloc -> ENOMEM" check), without
    overflowing its size arithmetic and without taking the machine down.
    A failing exporter wraps the size into a small buffer, or has no
    up-front bound: it takes pages until memory runs out and the OOM killer
    ends the caller instead of the ioctl returning ENOMEM.

    The request is made by a child of the process serving the target
    (``allocate_in_child``), so that an exporter that fails this way fails
    the case with the evidence, not the run.  Known finding (6.1,
    drivers/dma-buf/heaps/system_heap.c): system_heap_allocate has no
    up-front bound and takes pages one chunk at a time until alloc_pages
    fails, so the child is OOM-killed (SIGKILL) on heap:system; the CMA heap
    (cma_alloc fails at once for more pages than the area has) returns ENOMEM.
    On 5.10 the system heap (heap-helpers) returns ENOMEM but sizes its page
    array with kmalloc_array without __GFP_NOWARN, so the request WARNs in
    the page allocator (order >= MAX_ORDER): a kernel warning user space can
    trigger, which fails the case through the kernel-health check.
    """
    outcome = unchecked(target).allocate_in_child(exporter.name, OVERSIZE)
    if outcome.startswith("signal:"):
        pytest.fail(
            f"a child asking {exporter.name} for {OVERSIZE >> 30} GiB was killed "
            f"({outcome.removeprefix('signal:')}) instead of getting ENOMEM: the exporter has "
            "no up-front size bound and drains memory until the OOM killer steps in"
        )
    assert outcome == "errno:ENOMEM", (
        f"an allocation of {OVERSIZE >> 30} GiB from {exporter.name} ended {outcome!r}, not ENOMEM"
    )
    buf = target.allocate(exporter.name, pages(1))
    assert target.buffer_size(buf) == pages(1)
