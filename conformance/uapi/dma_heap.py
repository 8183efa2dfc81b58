"""include/uapi/linux/dma-heap.h."""

from __future__ import annotations

import ctypes
import os

from conformance.uapi.ioc import IOWR, with_size

DMA_HEAP_IOC_MAGIC = "H"
DMA_HEAP_VALID_FD_FLAGS = os.O_CLOEXEC | os.O_ACCMODE
DMA_HEAP_VALID_HEAP_FLAGS = 0


class dma_heap_allocation_data(ctypes.Structure):  # noqa: N801 - the kernel's name
    _fields_ = [
        ("len", ctypes.c_uint64),
        ("fd", ctypes.c_uint32),  # out; must be 0 on input
        ("fd_flags", ctypes.c_uint32),
        ("heap_flags", ctypes.c_uint64),
    ]


DMA_HEAP_IOCTL_ALLOC = IOWR(DMA_HEAP_IOC_MAGIC, 0x0, dma_heap_allocation_data)


def alloc_request(struct_size: int | None = None) -> int:
    """``DMA_HEAP_IOCTL_ALLOC`` for a shorter or longer struct variant.

    The size is part of the request number; dma_heap_ioctl() copies
    min(in_size, sizeof) bytes, zero-fills a short tail and ignores a long one.
    """
    if struct_size is None:
        return DMA_HEAP_IOCTL_ALLOC
    return with_size(DMA_HEAP_IOCTL_ALLOC, struct_size)
