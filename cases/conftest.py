"""Helpers shared by the cases (fixtures only: the contract logic stays in each case)."""

from __future__ import annotations

from typing import Callable

import pytest

from conformance.errors import InvalidArgument, OutOfMemory


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
def vmap_or_skip(target) -> Callable[[int], int]:
    """``target.vmap`` that skips the case when the exporter implements no vmap.

    dma_buf_vmap returns -EINVAL when the exporter has no vmap op, and vmap is
    optional for exporters (seed 003: "It is probably ok for any allocator ...
    to simply not implement vmap"); 6.1's udmabuf has none.
    """

    def vmap(buf: int) -> int:
        try:
            return target.vmap(buf)
        except InvalidArgument:
            pytest.skip("the exporter implements no vmap (dma_buf_vmap: EINVAL); vmap is optional")

    return vmap


@pytest.fixture
def allocate_or_skip(target, exporter) -> Callable[[int], int]:
    """``target.allocate`` that skips when the exporter's memory cannot hold the size.

    A CMA heap is bounded by its area (``cma=`` on the command line); a case
    that needs a large buffer to show its bug is not about that bound.
    """

    def allocate(size: int) -> int:
        try:
            return target.allocate(exporter.name, size)
        except OutOfMemory:
            pytest.skip(f"{exporter.name} cannot allocate {size >> 20} MiB here (ENOMEM)")

    return allocate
