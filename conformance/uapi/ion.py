"""Legacy ION, the 4.12+ ABI: drivers/staging/android/uapi/ion.h.

Source: torvalds/linux at commit 36c2e4d70ce87c70ad767ec65925654c1bb15c1a
(the header as it stood from 4.12 until ION left staging in 5.11; identical in
v5.10).  No distribution ships this header any more, so
tests/test_uapi_numbers.py compiles the struct text copied from that source and
also checks the numbers written down here:

    sizeof(struct ion_allocation_data) == 24
    sizeof(struct ion_heap_data)       == 52
    sizeof(struct ion_heap_query)      == 24
    ION_IOC_ALLOC      == _IOWR('I', 0, 24) == 0xC0184900  (generic _IOC layout)
    ION_IOC_HEAP_QUERY == _IOWR('I', 8, 24) == 0xC0184908
"""

from __future__ import annotations

import ctypes
import enum

from conformance.uapi.ioc import IOWR

ION_IOC_MAGIC = "I"
MAX_HEAP_NAME = 32
ION_NUM_HEAP_IDS = 32  # sizeof(unsigned int) * 8
ION_FLAG_CACHED = 1


class IonHeapType(enum.IntEnum):
    """``enum ion_heap_type``."""

    SYSTEM = 0
    SYSTEM_CONTIG = 1
    CARVEOUT = 2
    CHUNK = 3
    DMA = 4
    CUSTOM = 5


class ion_allocation_data(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("len", ctypes.c_uint64),
        ("heap_id_mask", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("fd", ctypes.c_uint32),  # out: the dma-buf fd
        ("unused", ctypes.c_uint32),
    ]


class ion_heap_data(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("name", ctypes.c_char * MAX_HEAP_NAME),
        ("type", ctypes.c_uint32),
        ("heap_id", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("reserved1", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
    ]


class ion_heap_query(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("cnt", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("heaps", ctypes.c_uint64),  # user pointer to ion_heap_data[cnt]
        ("reserved1", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
    ]


ION_IOC_ALLOC = IOWR(ION_IOC_MAGIC, 0, ion_allocation_data)
ION_IOC_HEAP_QUERY = IOWR(ION_IOC_MAGIC, 8, ion_heap_query)
