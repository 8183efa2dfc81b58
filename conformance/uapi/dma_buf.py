"""include/uapi/linux/dma-buf.h."""

from __future__ import annotations

import ctypes

from conformance.uapi.ioc import IOW, IOWR

DMA_BUF_BASE = "b"

DMA_BUF_SYNC_READ = 1 << 0
DMA_BUF_SYNC_WRITE = 2 << 0
DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE
DMA_BUF_SYNC_START = 0 << 2
DMA_BUF_SYNC_END = 1 << 2
DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END

DMA_BUF_NAME_LEN = 32  # including the terminating NUL


class dma_buf_sync(ctypes.Structure):  # noqa: N801
    _fields_ = [("flags", ctypes.c_uint64)]


class dma_buf_export_sync_file(ctypes.Structure):  # noqa: N801
    _fields_ = [("flags", ctypes.c_uint32), ("fd", ctypes.c_int32)]


class dma_buf_import_sync_file(ctypes.Structure):  # noqa: N801
    _fields_ = [("flags", ctypes.c_uint32), ("fd", ctypes.c_int32)]


DMA_BUF_IOCTL_SYNC = IOW(DMA_BUF_BASE, 0, dma_buf_sync)
# The legacy number encodes sizeof(const char *), so it equals _B on 64-bit
# and _A on 32-bit kernels; the kernel accepts both explicit encodings.
DMA_BUF_SET_NAME = IOW(DMA_BUF_BASE, 1, ctypes.c_void_p)
DMA_BUF_SET_NAME_A = IOW(DMA_BUF_BASE, 1, ctypes.c_uint32)
DMA_BUF_SET_NAME_B = IOW(DMA_BUF_BASE, 1, ctypes.c_uint64)
DMA_BUF_IOCTL_EXPORT_SYNC_FILE = IOWR(DMA_BUF_BASE, 2, dma_buf_export_sync_file)
DMA_BUF_IOCTL_IMPORT_SYNC_FILE = IOW(DMA_BUF_BASE, 3, dma_buf_import_sync_file)
