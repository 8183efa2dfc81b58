"""Helpers shared by the cases (fixtures only: the contract logic stays in each case)."""

from __future__ import annotations

from typing import Callable

import pytest

from conformance.errors import InvalidArgument, OutOfMemory
from conformance.skips import not_applicable, not_checked


@pytest.fixture
def page_size(target) -> int:
    """The target kernel's page size: cases size their buffers in pages of it.

    arm64 kernels run with 4, 16 or 64 KiB pages (Android ships 16 KiB-page
    devices); a size written as 4096 bytes is a sub-page buffer there.
    """
    return int(target.info().page_size)


@pytest.fixture
def pages(page_size) -> Callable[[int], int]:
    """``pages(n)``: the byte size of ``n`` pages of the target."""

    def size(n: int) -> int:
        return n * page_size

    return size


@pytest.fixture
def vmap_or_none(target) -> Callable[[int], int | None]:
    """``target.vmap``, or None when the exporter implements no vmap.

    For cases where a kernel mapping is one way among others to reach the
    buffer: without vmap the rest of the case still runs.  dma_buf_vmap
    returns -EINVAL when the exporter has no vmap op, and vmap is optional
    for exporters (seed 003: "It is probably ok for any allocator ... to
    simply not implement vmap"); 6.1's udmabuf has none, 6.12's has one.
    """

    def vmap(buf: int) -> int | None:
        try:
            return target.vmap(buf)
        except InvalidArgument:
            return None

    return vmap


@pytest.fixture
def vmap_or_skip(vmap_or_none) -> Callable[[int], int]:
    """``target.vmap`` for cases about vmap itself: not applicable without one.

    Only where the vmap is the point of the case; where it is incidental,
    use ``vmap_or_none`` and go on without it.
    """

    def vmap(buf: int) -> int:
        v = vmap_or_none(buf)
        if v is None:
            not_applicable(
                "the exporter implements no vmap (dma_buf_vmap: EINVAL); vmap is optional "
                "for exporters and this case is about what a vmap must do"
            )
        return v

    return vmap


@pytest.fixture
def allocate_or_skip(target, exporter) -> Callable[[int], int]:
    """``target.allocate`` that ends the case as not checked when memory cannot hold the size.

    A CMA heap is bounded by its area (``cma=`` on the command line); a case
    that needs a large buffer to show its bug is not about that bound, but
    the contract still binds, so the run could not check it.
    """

    def allocate(size: int) -> int:
        try:
            return target.allocate(exporter.name, size)
        except OutOfMemory:
            not_checked(f"{exporter.name} cannot allocate {size} bytes here (ENOMEM)")

    return allocate
