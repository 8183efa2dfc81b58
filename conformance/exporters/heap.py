"""DMA-BUF heaps: /dev/dma_heap/<name>, one DMA_HEAP_IOCTL_ALLOC per buffer."""

from __future__ import annotations

import ctypes
import os
import struct

from conformance.exporters.base import DEFAULT_FD_FLAGS, DeviceNode, Exporter
from conformance.exporters.dmabuf import BadRequest, DmaBuf
from conformance.exporters.heap_names import PROTECTED_KIND
from conformance.uapi import dma_heap
from conformance.uapi.ioctl import fast_ioctl, ioctl, raise_for

HEAP_DIR = "/dev/dma_heap"
_FD_END = dma_heap.dma_heap_allocation_data.fd.offset + 4
# The default-size allocation is packed directly (len, fd, fd_flags,
# heap_flags; no padding), wrapped as the ctypes fields would wrap the values.
_ALLOC_REQUEST = int(dma_heap.DMA_HEAP_IOCTL_ALLOC)
_ALLOC = struct.Struct("=QIIQ")
_ALLOC_FD_OFFSET = dma_heap.dma_heap_allocation_data.fd.offset
_U64_MASK = (1 << 64) - 1
_U32_MASK = (1 << 32) - 1
if _ALLOC.size != ctypes.sizeof(dma_heap.dma_heap_allocation_data):
    raise ImportError("dma_heap_allocation_data packing disagrees with the ctypes struct")


class HeapExporter(Exporter):
    """A heap entry.  ``same_as``: the entry naming the same heap (the default CMA
    heap's legacy name next to ``default_cma_region``, heap_names.py)."""

    kind = "heap"

    def __init__(self, heap: str, directory: str = HEAP_DIR, same_as: str | None = None) -> None:
        self.heap = heap
        self.path = os.path.join(directory, heap)
        self.name = f"heap:{heap}"
        self.same_as = None if same_as is None else f"heap:{same_as}"
        self.detail = self.path
        if self.same_as is not None:
            self.detail += (
                f" (the same CMA heap as {self.same_as}: its pre-6.17 name, kept by "
                "CONFIG_DMABUF_HEAPS_CMA_LEGACY)"
            )
        self._node = DeviceNode(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def _device(self) -> int:
        return self._node.fd()

    def close(self) -> None:
        self._node.close()

    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        if struct_size is None:
            heap_fd = self._device()
            buf = bytearray(
                _ALLOC.pack(size & _U64_MASK, 0, fd_flags & _U32_MASK, heap_flags & _U64_MASK)
            )
            err = fast_ioctl(heap_fd, _ALLOC_REQUEST, buf)
            if not err:
                return DmaBuf(_ALLOC.unpack(buf)[1], self.name)
            if err > 0:
                raise_for(
                    err,
                    _ALLOC_REQUEST,
                    {"len": size, "fd_flags": fd_flags, "heap_flags": heap_flags},
                )
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
        ioctl(self._device(), dma_heap.alloc_request(struct_size), arg, arg_summary=summary)
        out = dma_heap.dma_heap_allocation_data.from_buffer_copy(
            bytes(arg)[: ctypes.sizeof(data)].ljust(ctypes.sizeof(data), b"\0")
        )
        return DmaBuf(int(out.fd), self.name)


class ProtectedHeapExporter(HeapExporter):
    """A protected (secure) heap: allocation and device access only; mmap, vmap and CPU
    access are refused by design, so the contract for them is not the CPU-visible one."""

    kind = PROTECTED_KIND

    def __init__(self, heap: str, directory: str = HEAP_DIR) -> None:
        super().__init__(heap, directory)
        self.detail += " (protected memory: no mmap, vmap or CPU access by design)"


def _sized(data: ctypes.Structure, struct_size: int | None) -> ctypes.Structure | ctypes.Array:
    """``data`` cut or zero-padded to ``struct_size`` bytes, as an older/newer caller sends it."""
    if struct_size is None:
        return data
    raw = bytes(data)[:struct_size].ljust(struct_size, b"\0")
    return ctypes.create_string_buffer(raw, struct_size)
