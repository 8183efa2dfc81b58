"""User mappings of a dma-buf.

Source: drivers/dma-buf/dma-buf.c (dma_buf_mmap_internal: the page range
check), the heaps' mmap (VM_SHARED required), the IGT and ion-unit-tests
mapping checks, ../shared/notes/uapi-facts.md.
"""

from __future__ import annotations

import pytest

from conformance.errors import BadAddress, InvalidArgument
from conformance.lockstep import unchecked
from conformance.patterns import PAGE_SIZE, assert_same_bytes, pattern

pytestmark = pytest.mark.mmap

SIZE = 4 * PAGE_SIZE


@pytest.mark.case("MMAP-001")
def test_whole_buffer_mapping_reads_back_what_was_written(target, exporter):
    """A shared read/write mapping of the whole buffer keeps what is written through it.

    Contract: a dma-buf mmap maps the buffer's pages.  A failing exporter
    maps the wrong pages or loses writes.
    """
    buf = target.allocate(exporter.name, SIZE)
    m = target.mmap(buf)
    data = pattern(SIZE, seed=0x31)
    target.cpu_write(m, 0, data)
    assert_same_bytes(target.cpu_read(m, 0, SIZE), data)


@pytest.mark.case("MMAP-002")
def test_private_mapping_is_einval(target, exporter):
    """MAP_PRIVATE is refused with EINVAL.

    Contract: a dma-buf is shared memory; the heaps return -EINVAL unless
    VM_SHARED is set.  A failing exporter gives a private copy-on-write
    mapping whose writes nobody else sees.
    """
    buf = target.allocate(exporter.name, SIZE)
    with pytest.raises(InvalidArgument):
        target.mmap(buf, shared=False)


@pytest.mark.case("MMAP-003")
@pytest.mark.parametrize(
    "length,offset",
    [(SIZE + PAGE_SIZE, 0), (SIZE, PAGE_SIZE), (PAGE_SIZE, SIZE)],
    ids=["longer-than-buffer", "window-past-end", "offset-at-end"],
)
def test_mapping_past_the_end_is_einval(target, exporter, length, offset):
    """A mapping that reaches past the end of the buffer is refused with EINVAL.

    Contract: dma_buf_mmap_internal checks ``vm_pgoff + vma_pages >
    size >> PAGE_SHIFT`` and returns -EINVAL.  A failing exporter maps
    pages that are not the buffer's (an information leak or a crash).
    """
    buf = target.allocate(exporter.name, SIZE)
    with pytest.raises(InvalidArgument):
        target.mmap(buf, length, offset)


@pytest.mark.case("MMAP-004")
def test_mapping_outlives_the_fd(target, exporter):
    """A mapping stays valid, with its data, after the buffer's fd is closed.

    Contract: the mapping holds a reference on the dma-buf file
    (ion-unit-tests "mapping outlives fd").  A failing exporter frees the
    pages at close while they are still mapped.
    """
    buf = target.allocate(exporter.name, SIZE)
    m = target.mmap(buf)
    data = pattern(SIZE, seed=0x44)
    target.cpu_write(m, 0, data)
    target.close(buf)
    assert_same_bytes(target.cpu_read(m, 0, SIZE), data)


@pytest.mark.case("MMAP-005")
def test_two_mappings_share_the_same_pages(target, exporter):
    """Two mappings of one buffer (one at an offset) see each other's writes.

    Contract: every mapping maps the same pages, page offset for page
    offset.  A failing exporter honours the mapping offset wrongly.
    """
    buf = target.allocate(exporter.name, SIZE)
    whole = target.mmap(buf)
    window = target.mmap(buf, PAGE_SIZE, 2 * PAGE_SIZE)
    data = pattern(PAGE_SIZE, seed=0x52)
    target.cpu_write(window, 0, data)
    assert_same_bytes(target.cpu_read(whole, 2 * PAGE_SIZE, PAGE_SIZE), data)


@pytest.mark.case("MMAP-006")
def test_mremap_growth_never_exposes_memory_past_the_buffer(target, exporter):
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
    buf = target.allocate(exporter.name, SIZE)
    m = target.mmap(buf)
    data = pattern(SIZE, seed=0x2F)
    target.cpu_write(m, 0, data)
    raw = unchecked(target)  # the two legal outcomes differ per exporter
    try:
        raw.mremap(m, 2 * SIZE)
    except BadAddress:
        grown = False
    else:
        grown = True
        with pytest.raises(BadAddress, match=""):
            leaked = raw.cpu_read(m, SIZE, PAGE_SIZE)
            pytest.fail(
                f"mremap grew the mapping and the page past the buffer is readable "
                f"(starts {leaked[:8].hex(' ')}): it must fault"
            )
    assert_same_bytes(
        raw.cpu_read(m, 0, SIZE),
        data,
        f"the mapping lost its data after mremap ({'grown' if grown else 'refused'})",
    )


@pytest.mark.case("MMAP-007")
@pytest.mark.applies_to("udmabuf")
def test_grown_udmabuf_mapping_faults_past_the_buffer(target, exporter):
    """A udmabuf mapping grown by mremap keeps its data and faults past the buffer's end.

    Contract: 6.1 udmabuf maps through udmabuf_vm_fault, which returns
    VM_FAULT_SIGBUS for a page offset at or past the page count (measured
    in a 6.1 guest: growth succeeds, access past the end is SIGBUS).  A
    failing exporter maps whatever page lies past its array.
    """
    buf = target.allocate(exporter.name, SIZE)
    m = target.mmap(buf)
    data = pattern(SIZE, seed=0x3E)
    target.cpu_write(m, 0, data)
    target.mremap(m, 2 * SIZE)
    assert_same_bytes(target.cpu_read(m, 0, SIZE), data)
    with pytest.raises(BadAddress):
        target.cpu_read(m, SIZE, PAGE_SIZE)
