"""User mappings of a dma-buf.

Source: drivers/dma-buf/dma-buf.c (dma_buf_mmap_internal: the page range
check), the heaps' mmap (VM_SHARED required), the IGT and ion-unit-tests
mapping checks, ../shared/notes/uapi-facts.md.
"""

from __future__ import annotations

import pytest

from conformance.errors import BadAddress, InvalidArgument
from conformance.lockstep import unchecked
from conformance.patterns import assert_same_bytes, pattern

pytestmark = [pytest.mark.mmap, pytest.mark.cpu_access]

PAGES = 4  # the buffer of every case, in pages of the target

# MMAP-003's windows, in pages: (mapping length, mapping offset), each reaching
# past the end of a PAGES-page buffer
PAST_THE_END = {
    "longer-than-buffer": (PAGES + 1, 0),
    "window-past-end": (PAGES, 1),
    "offset-at-end": (1, PAGES),
}


@pytest.mark.case("MMAP-001")
def test_whole_buffer_mapping_reads_back_what_was_written(target, exporter, pages):
    """A shared read/write mapping of the whole buffer keeps what is written through it.

    Contract: a dma-buf mmap maps the buffer's pages.  A failing exporter
    maps the wrong pages or loses writes.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x31)
    target.cpu_write(m, 0, data)
    assert_same_bytes(target.cpu_read(m, 0, size), data)


@pytest.mark.case("MMAP-002")
def test_private_mapping_is_einval(target, exporter, pages):
    """MAP_PRIVATE is refused with EINVAL.

    Contract: a dma-buf is shared memory; the heaps return -EINVAL unless
    VM_SHARED is set.  A failing exporter gives a private copy-on-write
    mapping whose writes nobody else sees.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    with pytest.raises(InvalidArgument):
        target.mmap(buf, shared=False)


@pytest.mark.case("MMAP-003")
@pytest.mark.parametrize("window", list(PAST_THE_END), ids=list(PAST_THE_END))
def test_mapping_past_the_end_is_einval(target, exporter, pages, window):
    """A mapping that reaches past the end of the buffer is refused with EINVAL.

    Contract: dma_buf_mmap_internal checks ``vm_pgoff + vma_pages >
    size >> PAGE_SHIFT`` and returns -EINVAL.  A failing exporter maps
    pages that are not the buffer's (an information leak or a crash).
    """
    length, offset = PAST_THE_END[window]
    buf = target.allocate(exporter.name, pages(PAGES))
    with pytest.raises(InvalidArgument):
        target.mmap(buf, pages(length), pages(offset))


@pytest.mark.case("MMAP-004")
def test_mapping_outlives_the_fd(target, exporter, pages):
    """A mapping stays valid, with its data, after the buffer's fd is closed.

    Contract: the mapping holds a reference on the dma-buf file
    (ion-unit-tests "mapping outlives fd").  A failing exporter frees the
    pages at close while they are still mapped.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x44)
    target.cpu_write(m, 0, data)
    target.close(buf)
    assert_same_bytes(target.cpu_read(m, 0, size), data)


@pytest.mark.case("MMAP-005")
def test_two_mappings_share_the_same_pages(target, exporter, pages):
    """Two mappings of one buffer (one at an offset) see each other's writes.

    Contract: every mapping maps the same pages, page offset for page
    offset.  A failing exporter honours the mapping offset wrongly.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    whole = target.mmap(buf)
    window = target.mmap(buf, pages(1), pages(2))
    data = pattern(pages(1), seed=0x52)
    target.cpu_write(window, 0, data)
    assert_same_bytes(
        target.cpu_read(whole, pages(2), pages(1)),
        data,
        "page 2 seen through the whole-buffer mapping is not what was written through the "
        "mapping at page offset 2",
    )


@pytest.mark.case("MMAP-006")
def test_mremap_growth_never_exposes_memory_past_the_buffer(target, exporter, pages):
    """Growing a mapping with mremap is refused, or the grown part faults.

    Contract: nothing past the end of a dma-buf is reachable through its
    mapping.  Exporters reach it in two legal ways: the system heap and vgem
    map with VM_PFNMAP|VM_DONTEXPAND, so mremap refuses growth with EFAULT;
    the CMA heap and udmabuf map through a fault handler that returns
    VM_FAULT_SIGBUS at or past the page count (the CMA heap's was off by one
    before 6.1.y got the fix: ``pgoff > pagecount``).  Which one an exporter
    does is its choice, so this step is judged here, not against the model.
    A failing exporter lets the mapping grow and maps whatever page lies
    past the buffer (an information leak, or a crash).
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x2F)
    target.cpu_write(m, 0, data)
    raw = unchecked(target)  # the two legal outcomes differ per exporter
    try:
        raw.mremap(m, 2 * size)
    except BadAddress:
        grown = False
    else:
        grown = True
        with pytest.raises(BadAddress, match=""):
            leaked = raw.cpu_read(m, size, pages(1))
            pytest.fail(
                f"mremap grew the mapping and the page past the buffer is readable "
                f"(starts {leaked[:8].hex(' ')}): it must fault"
            )
    assert_same_bytes(
        raw.cpu_read(m, 0, size),
        data,
        f"the mapping lost its data after mremap ({'grown' if grown else 'refused'})",
    )


@pytest.mark.case("MMAP-007")
@pytest.mark.applies_to("udmabuf")
def test_grown_udmabuf_mapping_faults_past_the_buffer(target, exporter, pages):
    """A udmabuf mapping grown by mremap keeps its data and faults past the buffer's end.

    Contract: growing a mapping must never expose memory past the buffer.
    Two answers keep it, and which one a kernel gives changed upstream:
    up to 6.10 udmabuf maps through udmabuf_vm_fault, which returns
    VM_FAULT_SIGBUS for a page offset at or past the page count (measured
    in a 6.1 guest: growth succeeds, access past the end is SIGBUS); from
    6.11 (7d79cd784470) the mapping is VM_DONTEXPAND and mremap refuses the
    growth with EFAULT, the stricter answer, which leaves the mapping as it
    was.  A failing exporter maps whatever page lies past its array, or a
    refused growth damages the mapping.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x3E)
    target.cpu_write(m, 0, data)
    try:
        # Either answer is legal on any kernel, so the case judges this step itself.
        unchecked(target).mremap(m, 2 * size)
    except BadAddress:
        assert_same_bytes(
            target.cpu_read(m, 0, size), data, "the mapping changed when mremap refused to grow it"
        )
        return
    assert_same_bytes(target.cpu_read(m, 0, size), data)
    with pytest.raises(BadAddress):
        target.cpu_read(m, size, pages(1))
