"""udmabuf's module limits: size_limit_mb and list_limit are enforced at the value root sets.

Source: drivers/dma-buf/udmabuf.c of 6.1.192:
- :16-22, two ``int`` module parameters, mode 0644 (root may change them at
  run time under /sys/module/udmabuf/parameters/): ``list_limit`` (default
  1024) and ``size_limit_mb`` (default 64);
- :187 ``ret = -EINVAL``, :194 ``pglimit = ((u64)size_limit_mb * 1024 * 1024)
  >> PAGE_SHIFT``, :195-203 the page count summed over the items, and
  ``if (ubuf->pagecount > pglimit) goto err``: a buffer over the limit is
  EINVAL, one of exactly the limit is accepted, and the limit is on the
  whole buffer, not on each item;
- :341-342 ``if (head.count > list_limit) return -EINVAL;`` in
  ``udmabuf_ioctl_create_list``, before the items are copied: a list of
  exactly list_limit items is accepted.
Before they became parameters the limits were constants (5.10.223
udmabuf.c:15-16); UDMABUF-007 checks the limit in force without changing it.

Each case lowers a parameter for its own duration and restores the value it
found afterwards, also when it fails (the ``lowered`` fixture).  The
parameters are global: on a board, do not run other udmabuf work (or pytest
with -n) at the same time.
"""

from __future__ import annotations

import fcntl

import pytest

from conformance.errors import InvalidArgument, NotAvailableOnTarget
from conformance.lockstep import unchecked
from conformance.patterns import MiB
from conformance.skips import not_applicable, not_checked

pytestmark = [pytest.mark.exporter_specific, pytest.mark.applies_to("udmabuf")]

SEALED = fcntl.F_SEAL_SHRINK
SIZE_LIMIT_MB = 1  # size_limit_mb while UDMABUF-009 runs
LIST_LIMIT = 2  # list_limit while UDMABUF-010 runs


@pytest.fixture
def lowered(target):
    """``lowered(name, value)``: set udmabuf's parameter ``name`` for this case only.

    The old value is restored after the case, pass or fail, on the target
    itself (the model standing in for it in a lockstep run is made afresh
    for each case).  A parameter that does not exist here (a udmabuf
    without it, udmabuf not loaded) or cannot be written (no root) ends
    the case as not checked, with the reason.
    """
    changed: dict[str, str] = {}

    def lower(name: str, value: int) -> None:
        try:
            old = target.set_module_param("udmabuf", name, str(value))
        except NotAvailableOnTarget as exc:
            not_checked(f"udmabuf's {name} cannot be lowered here: {exc}")
        changed.setdefault(name, old)
        now = target.module_param("udmabuf", name)
        assert now == str(value), f"udmabuf.{name} reads {now!r} after writing {value}"

    yield lower
    real = unchecked(target)
    for name, old in changed.items():
        real.set_module_param("udmabuf", name, old)


@pytest.mark.case("UDMABUF-009")
@pytest.mark.parametrize("use_list", [False, True], ids=["create", "create-list"])
def test_size_limit_mb_is_enforced(target, exporter, pages, page_size, lowered, use_list):
    """With size_limit_mb lowered, a udmabuf of exactly the limit is made and one a page over
    it is refused with EINVAL, also when each list item is under the limit.

    Contract: udmabuf.c:194-203 sums the pages of every item and fails the
    create (EINVAL, :187) once the sum passes size_limit_mb, read at every
    create.  A failing exporter ignores the parameter (a compiled-in limit),
    is off by one at the limit, or checks each item alone, so a list of
    small items makes a buffer of any size, pinning that much shmem.
    """
    limit = SIZE_LIMIT_MB * MiB
    if limit % page_size:
        not_applicable(f"{SIZE_LIMIT_MB} MiB is not a whole number of {page_size} B pages")
    lowered("size_limit_mb", SIZE_LIMIT_MB)
    page = pages(1)
    memfds = [(limit + page, SEALED), (page, SEALED)]
    if use_list:
        at_limit = [(0, 0, limit - page), (1, 0, page)]
        over = [(0, 0, limit), (1, 0, page)]  # each item within the limit, the sum over it
    else:
        at_limit, over = [(0, 0, limit)], [(0, 0, limit + page)]
    buf = target.udmabuf_create(exporter.name, memfds, at_limit, use_list=use_list)
    assert target.buffer_size(buf) == limit
    target.close(buf)
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, memfds, over, use_list=use_list)


@pytest.mark.case("UDMABUF-010")
def test_list_limit_is_enforced(target, exporter, pages, lowered):
    """With list_limit lowered, CREATE_LIST takes exactly list_limit items and refuses one more
    with EINVAL.

    Contract: udmabuf_ioctl_create_list returns -EINVAL when head.count >
    list_limit (udmabuf.c:341-342), the parameter's value at that moment.
    A failing exporter keeps its compiled-in 1024 (or no limit at all),
    so root cannot bound how many items, and how much kernel memory for
    them (memdup_user of count * 16 bytes), one ioctl takes.
    """
    lowered("list_limit", LIST_LIMIT)
    page = pages(1)
    memfds = [(pages(LIST_LIMIT + 1), SEALED)]
    items = [(0, i * page, page) for i in range(LIST_LIMIT + 1)]
    buf = target.udmabuf_create(exporter.name, memfds, items[:LIST_LIMIT])
    assert target.buffer_size(buf) == pages(LIST_LIMIT)
    target.close(buf)
    with pytest.raises(InvalidArgument):
        target.udmabuf_create(exporter.name, memfds, items)
