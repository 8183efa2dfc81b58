"""udmabuf: a dma-buf over the pages of sealed memfds.

Source: drivers/dma-buf/udmabuf.c of 6.1 (udmabuf_create: IS_ALIGNED checks,
pagecount 0, SEALS_WANTED = F_SEAL_SHRINK, SEALS_DENIED = F_SEAL_WRITE |
F_SEAL_FUTURE_WRITE, shmem_read_mapping_page per page; udmabuf_ioctl_create_list:
head.count > list_limit (1024)), include/uapi/linux/udmabuf.h, and
tools/testing/selftests/drivers/dma-buf/udmabuf.c (the kselftest: "should
fail" cases for bad seals, alignment and size, and the memfd/dma-buf
coherence check).
"""

from __future__ import annotations

import fcntl

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import PAGE_SIZE, assert_same_bytes, pattern

pytestmark = [pytest.mark.exporter_specific, pytest.mark.applies_to("udmabuf")]

MEMFD = 4 * PAGE_SIZE
SEALED = fcntl.F_SEAL_SHRINK
LIST_LIMIT = 1024  # udmabuf.c module parameter list_limit, default value

IOCTLS = pytest.mark.parametrize("use_list", [False, True], ids=["create", "create-list"])


@pytest.mark.case("UDMABUF-001")
@IOCTLS
def test_unsealed_memfd_is_refused(target, exporter, use_list):
    """A memfd without F_SEAL_SHRINK is refused with EINVAL.

    Contract: udmabuf pins the memfd's pages, so the file must not shrink
    under them (SEALS_WANTED).  A failing exporter lets user space truncate
    the file while devices still DMA into the pages.
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, [(MEMFD, 0)], [(0, 0, MEMFD)], use_list=use_list)


@pytest.mark.case("UDMABUF-002")
@IOCTLS
def test_write_sealed_memfd_is_refused(target, exporter, use_list):
    """A memfd sealed with F_SEAL_WRITE is refused with EINVAL, even with F_SEAL_SHRINK.

    Contract: SEALS_DENIED; a write-sealed file promises its data never
    changes, and a dma-buf over it would let devices change it.  A failing
    exporter breaks the seal's promise.
    """
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_WRITE
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, [(MEMFD, seals)], [(0, 0, MEMFD)], use_list=use_list)


@pytest.mark.case("UDMABUF-003")
@IOCTLS
@pytest.mark.parametrize(
    "offset,size",
    [(PAGE_SIZE // 2, PAGE_SIZE), (0, PAGE_SIZE + 1), (0, PAGE_SIZE // 2)],
    ids=["offset", "size", "sub-page"],
)
def test_misaligned_range_is_refused(target, exporter, use_list, offset, size):
    """An offset or size that is not a page multiple is refused with EINVAL.

    Contract: IS_ALIGNED(offset/size, PAGE_SIZE) in udmabuf_create (kselftest
    "should fail (offset not page aligned)" / "(size not multiple of page)").
    A failing exporter rounds the range and exposes bytes the caller did
    not hand over.
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name, [(MEMFD, SEALED)], [(0, offset, size)], use_list=use_list
        )


@pytest.mark.case("UDMABUF-004")
@IOCTLS
def test_empty_range_is_refused(target, exporter, use_list):
    """A size of 0 is refused with EINVAL.

    Contract: udmabuf_create fails when the page count is 0.  A failing
    exporter makes a zero-page dma-buf that importers cannot map.
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, [(MEMFD, SEALED)], [(0, 0, 0)], use_list=use_list)


@pytest.mark.case("UDMABUF-005")
@IOCTLS
@pytest.mark.parametrize(
    "offset,size",
    [(0, MEMFD + PAGE_SIZE), (MEMFD, PAGE_SIZE), (2 * PAGE_SIZE, 3 * PAGE_SIZE)],
    ids=["size-past-end", "offset-at-end", "straddles-end"],
)
def test_range_past_the_memfd_end_is_refused(target, exporter, use_list, offset, size):
    """A range reaching past the memfd's end is refused with EINVAL.

    Contract: shmem_read_mapping_page refuses an index past i_size, so
    udmabuf_create fails (kselftest "should fail (size too big)").  A
    failing exporter hands out pages that are not part of the file.
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name, [(MEMFD, SEALED)], [(0, offset, size)], use_list=use_list
        )


@pytest.mark.case("UDMABUF-006")
def test_list_buffer_holds_the_items_in_order(target, exporter):
    """CREATE_LIST over several memfds gives one buffer whose pages are the items, in order.

    Contract: udmabuf_create appends each item's pages (from its offset)
    to the buffer.  Written through the memfds, read through the dma-buf
    mapping.  A failing exporter reorders the items, ignores an offset or
    drops an item, so devices see the wrong pages.
    """
    items = [(1, PAGE_SIZE, 2 * PAGE_SIZE), (0, 2 * PAGE_SIZE, PAGE_SIZE), (1, 0, PAGE_SIZE)]
    buf = target.udmabuf_create(exporter.name, [(MEMFD, SEALED), (MEMFD, SEALED)], items)
    assert target.buffer_size(buf) == 4 * PAGE_SIZE
    content = {
        (fd, page): pattern(PAGE_SIZE, seed=0x10 * fd + page + 1)
        for fd in (0, 1)
        for page in range(MEMFD // PAGE_SIZE)
    }
    for (fd, page), data in content.items():
        target.memfd_write(buf, fd, page * PAGE_SIZE, data)
    expected = [(1, 1), (1, 2), (0, 2), (1, 0)]  # (memfd, page) of each buffer page
    m = target.mmap(buf)
    for i, (fd, page) in enumerate(expected):
        got = target.cpu_read(m, i * PAGE_SIZE, PAGE_SIZE)
        assert_same_bytes(
            got,
            content[(fd, page)],
            f"buffer page {i} must be page {page} of memfd {fd}; it holds "
            + next(
                (f"page {p} of memfd {f}" for (f, p), d in content.items() if d == got),
                f"other data (starts {got[:8].hex(' ')})",
            ),
        )


@pytest.mark.case("UDMABUF-007")
@pytest.mark.parametrize(
    "count", [0, LIST_LIMIT + 1, 0xFFFFFFFF], ids=["count-0", "past-list-limit", "u32-max"]
)
def test_list_with_bad_count_is_refused(target, exporter, count):
    """CREATE_LIST with count 0, or a count past list_limit (more than the list holds), is EINVAL.

    Contract: udmabuf_ioctl_create_list refuses head.count > list_limit
    before copying the items; count 0 makes no pages.  A failing exporter
    copies count items from user memory that holds one (reading past it,
    or allocating count * 16 bytes of kernel memory first).
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name, [(MEMFD, SEALED)], [(0, 0, PAGE_SIZE)], use_list=True, count=count
        )


@pytest.mark.case("UDMABUF-008")
@IOCTLS
def test_memfd_writes_show_through_the_dma_buf(target, exporter, use_list):
    """Data written to the memfd after the udmabuf is made reads back through its mapping.

    Contract: the buffer's pages are the memfd's page-cache pages (kselftest
    udmabuf's coherence check).  A failing exporter copies the pages at
    create time, so the memfd and the dma-buf drift apart.
    """
    buf = target.udmabuf_create(
        exporter.name, [(MEMFD, SEALED)], [(0, PAGE_SIZE, 2 * PAGE_SIZE)], use_list=use_list
    )
    m = target.mmap(buf)
    first = pattern(2 * PAGE_SIZE, seed=0x21)
    target.memfd_write(buf, 0, PAGE_SIZE, first)
    assert_same_bytes(
        target.cpu_read(m, 0, 2 * PAGE_SIZE), first, "a memfd write is not in the dma-buf"
    )
    second = pattern(100, seed=0x77)
    target.memfd_write(buf, 0, 2 * PAGE_SIZE + 7, second)
    assert_same_bytes(
        target.cpu_read(m, PAGE_SIZE + 7, 100),
        second,
        "a second memfd write is not in the dma-buf: it is a copy, not the memfd's pages",
    )
