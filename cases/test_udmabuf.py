"""udmabuf: a dma-buf over the pages of sealed memfds.

Source: drivers/dma-buf/udmabuf.c of 6.1 (udmabuf_create: IS_ALIGNED checks,
pagecount 0, SEALS_WANTED = F_SEAL_SHRINK, SEALS_DENIED = F_SEAL_WRITE |
F_SEAL_FUTURE_WRITE, shmem_read_mapping_page per page; udmabuf_ioctl_create_list:
head.count > list_limit, a module parameter, 1024 by default),
include/uapi/linux/udmabuf.h, and
tools/testing/selftests/drivers/dma-buf/udmabuf.c (the kselftest: "should
fail" cases for bad seals, alignment and size, and the memfd/dma-buf
coherence check).
"""

from __future__ import annotations

import fcntl

import pytest

from conformance.errors import InvalidArgument
from conformance.exporters.udmabuf import DEFAULT_LIST_LIMIT, limits_of
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import ExporterInfo
from conformance.skips import not_checked

pytestmark = [pytest.mark.exporter_specific, pytest.mark.applies_to("udmabuf")]

MEMFD_PAGES = 4  # each memfd, in pages of the target
SEALED = fcntl.F_SEAL_SHRINK

# UDMABUF-003's ranges, (offset, size) for a page size: each not page-aligned
MISALIGNED = {
    "offset": lambda page: (page // 2, page),
    "size": lambda page: (0, page + 1),
    "sub-page": lambda page: (0, page // 2),
}
# UDMABUF-005's ranges, (offset, size) in pages: each reaches past a MEMFD_PAGES memfd
PAST_THE_END = {
    "size-past-end": (0, MEMFD_PAGES + 1),
    "offset-at-end": (MEMFD_PAGES, 1),
    "straddles-end": (2, 3),
}
BAD_COUNTS = ["count-0", "past-list-limit", "u32-max"]

IOCTLS = pytest.mark.parametrize("use_list", [False, True], ids=["create", "create-list"])


def list_limit(exporter: ExporterInfo) -> int:
    """The list_limit the exporter's kernel applies now.

    A real udmabuf reports its module parameter (read from sysfs by the
    adapter, see conformance.exporters.udmabuf); the model's udmabuf stand-in
    keeps udmabuf.c's default.
    """
    if exporter.kind == "model":
        return DEFAULT_LIST_LIMIT
    limit = limits_of(exporter).get("list_limit")
    if limit is None:
        not_checked(f"udmabuf's list_limit module parameter is unknown here: {exporter.detail}")
    if limit < 0:
        # udmabuf compares the u32 count with the int parameter: a negative
        # limit converts to a huge one, so no count is past it
        not_checked(f"list_limit is {limit}: no count is past it")
    return limit


@pytest.mark.case("UDMABUF-001")
@IOCTLS
def test_unsealed_memfd_is_refused(target, exporter, pages, use_list):
    """A memfd without F_SEAL_SHRINK is refused with EINVAL.

    Contract: udmabuf pins the memfd's pages, so the file must not shrink
    under them (SEALS_WANTED).  A failing exporter lets user space truncate
    the file while devices still DMA into the pages.
    """
    memfd = pages(MEMFD_PAGES)
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, [(memfd, 0)], [(0, 0, memfd)], use_list=use_list)


@pytest.mark.case("UDMABUF-002")
@IOCTLS
def test_write_sealed_memfd_is_refused(target, exporter, pages, use_list):
    """A memfd sealed with F_SEAL_WRITE is refused with EINVAL, even with F_SEAL_SHRINK.

    Contract: SEALS_DENIED; a write-sealed file promises its data never
    changes, and a dma-buf over it would let devices change it.  A failing
    exporter breaks the seal's promise.
    """
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_WRITE
    memfd = pages(MEMFD_PAGES)
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, [(memfd, seals)], [(0, 0, memfd)], use_list=use_list)


@pytest.mark.case("UDMABUF-003")
@IOCTLS
@pytest.mark.parametrize("misaligned", list(MISALIGNED), ids=list(MISALIGNED))
def test_misaligned_range_is_refused(target, exporter, pages, use_list, misaligned):
    """An offset or size that is not a page multiple is refused with EINVAL.

    Contract: IS_ALIGNED(offset/size, PAGE_SIZE) in udmabuf_create (kselftest
    "should fail (offset not page aligned)" / "(size not multiple of page)").
    A failing exporter rounds the range and exposes bytes the caller did
    not hand over.
    """
    offset, size = MISALIGNED[misaligned](pages(1))
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name, [(pages(MEMFD_PAGES), SEALED)], [(0, offset, size)], use_list=use_list
        )


@pytest.mark.case("UDMABUF-004")
@IOCTLS
def test_empty_range_is_refused(target, exporter, pages, use_list):
    """A size of 0 is refused with EINVAL.

    Contract: udmabuf_create fails when the page count is 0.  A failing
    exporter makes a zero-page dma-buf that importers cannot map.
    """
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name, [(pages(MEMFD_PAGES), SEALED)], [(0, 0, 0)], use_list=use_list
        )


@pytest.mark.case("UDMABUF-005")
@IOCTLS
@pytest.mark.parametrize("reach", list(PAST_THE_END), ids=list(PAST_THE_END))
def test_range_past_the_memfd_end_is_refused(target, exporter, pages, use_list, reach):
    """A range reaching past the memfd's end is refused with EINVAL.

    Contract: shmem_read_mapping_page refuses an index past i_size, so
    udmabuf_create fails (kselftest "should fail (size too big)").  A
    failing exporter hands out pages that are not part of the file.
    """
    offset, size = PAST_THE_END[reach]
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name,
            [(pages(MEMFD_PAGES), SEALED)],
            [(0, pages(offset), pages(size))],
            use_list=use_list,
        )


@pytest.mark.case("UDMABUF-006")
def test_list_buffer_holds_the_items_in_order(target, exporter, pages):
    """CREATE_LIST over several memfds gives one buffer whose pages are the items, in order.

    Contract: udmabuf_create appends each item's pages (from its offset)
    to the buffer.  Written through the memfds, read through the dma-buf
    mapping.  A failing exporter reorders the items, ignores an offset or
    drops an item, so devices see the wrong pages.
    """
    page_size, memfd = pages(1), pages(MEMFD_PAGES)
    items = [(1, pages(1), pages(2)), (0, pages(2), pages(1)), (1, 0, pages(1))]
    buf = target.udmabuf_create(exporter.name, [(memfd, SEALED), (memfd, SEALED)], items)
    assert target.buffer_size(buf) == pages(4)
    content = {
        (fd, page): pattern(page_size, seed=0x10 * fd + page + 1)
        for fd in (0, 1)
        for page in range(MEMFD_PAGES)
    }
    for (fd, page), data in content.items():
        target.memfd_write(buf, fd, pages(page), data)
    expected = [(1, 1), (1, 2), (0, 2), (1, 0)]  # (memfd, page) of each buffer page
    m = target.mmap(buf)
    for i, (fd, page) in enumerate(expected):
        got = target.cpu_read(m, pages(i), page_size)
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
@pytest.mark.parametrize("bad_count", BAD_COUNTS, ids=BAD_COUNTS)
def test_list_with_bad_count_is_refused(target, exporter, pages, bad_count):
    """CREATE_LIST with count 0, or a count past list_limit (more than the list holds), is EINVAL.

    Contract: udmabuf_ioctl_create_list refuses head.count > list_limit
    before copying the items; count 0 makes no pages.  list_limit is the
    module parameter the kernel has now (1024 unless changed), read from
    sysfs.  A failing exporter copies count items from user memory that
    holds one (reading past it, or allocating count * 16 bytes of kernel
    memory first).
    """
    if bad_count == "count-0":
        count = 0
    elif bad_count == "past-list-limit":
        count = list_limit(exporter) + 1
    else:
        count = 0xFFFFFFFF
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(
            exporter.name,
            [(pages(MEMFD_PAGES), SEALED)],
            [(0, 0, pages(1))],
            use_list=True,
            count=count,
        )


@pytest.mark.case("UDMABUF-008")
@IOCTLS
def test_memfd_writes_show_through_the_dma_buf(target, exporter, pages, use_list):
    """Data written to the memfd after the udmabuf is made reads back through its mapping.

    Contract: the buffer's pages are the memfd's page-cache pages (kselftest
    udmabuf's coherence check).  A failing exporter copies the pages at
    create time, so the memfd and the dma-buf drift apart.
    """
    buf = target.udmabuf_create(
        exporter.name, [(pages(MEMFD_PAGES), SEALED)], [(0, pages(1), pages(2))], use_list=use_list
    )
    m = target.mmap(buf)
    first = pattern(pages(2), seed=0x21)
    target.memfd_write(buf, 0, pages(1), first)
    assert_same_bytes(
        target.cpu_read(m, 0, pages(2)), first, "a memfd write is not in the dma-buf"
    )
    second = pattern(100, seed=0x77)
    target.memfd_write(buf, 0, pages(2) + 7, second)
    assert_same_bytes(
        target.cpu_read(m, pages(1) + 7, 100),
        second,
        "a second memfd write is not in the dma-buf: it is a copy, not the memfd's pages",
    )
