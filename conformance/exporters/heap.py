"""DMA-BUF heaps: /dev/dma_heap/<name>, one DMA_HEAP_IOCTL_ALLOC per buffer."""

from __future__ import annotations

import ctypes
import os

from conformance.exporters.base import DEFAULT_FD_FLAGS, Exporter
from conformance.exporters.dmabuf import BadRequest, DmaBuf
from conformance.uapi import dma_heap
from conformance.uapi.ioctl import ioctl

HEAP_DIR = "/dev/dma_heap"
_FD_END = dma_heap.dma_heap_allocation_data.fd.offset + 4


class HeapExporter(Exporter):
    kind = "heap"

    def __init__(self, heap: str, directory: str = HEAP_DIR) -> None:
        self.heap = heap
        self.path = os.path.join(directory, heap)
        self.name = f"heap:{heap}"
        self.detail = self.path

    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        data = dma_heap.dma_heap_allocation_data(
            len=size, fd=0, fd_flags=fd_flags, heap_flags=heap_flags
        )
        if struct_size is not None and struct_size < _FD_END:
            raise BadRequest(
                f"struct_size {struct_size} is too short to carry the returned fd "
                f"(dma_heap_allocation_data.fd ends at byte {_FD_END}); use >= {_FD_END}"
            )
        summary = {"len": size, "fd_flags": fd_flags, "heap_flags": heap_flags}
        arg = _sized(data, struct_size)
        if struct_size is not None:
            summary["struct_size"] = struct_size
        # opened per allocation, as applications do; the heap's fd is not the buffer's
        heap_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ioctl(heap_fd, dma_heap.alloc_request(struct_size), arg, arg_summary=summary)
        finally:
            os.close(heap_fd)
        out = dma_heap.dma_heap_allocation_data.from_buffer_copy(
            bytes(arg)[: ctypes.sizeof(data)].ljust(ctypes.sizeof(data), b"\0")
        )
        return DmaBuf(int(out.fd), self.name)


def _sized(data: ctypes.Structure, struct_size: int | None) -> ctypes.Structure | ctypes.Array:
    """``data`` cut or zero-padded to ``struct_size`` bytes, as an older/newer caller sends it."""
    if struct_size is None:
        return data
    raw = bytes(data)[:struct_size].ljust(struct_size, b"\0")
    return ctypes.create_string_buffer(raw, struct_size)
