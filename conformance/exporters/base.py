"""What every exporter adapter offers: a name, a kind, and ``allocate``."""

from __future__ import annotations

import abc
import errno
import os

from conformance.errors import KernelError, kernel_error
from conformance.exporters.dmabuf import DmaBuf
from conformance.records import ExporterInfo

DEFAULT_FD_FLAGS = os.O_RDWR | os.O_CLOEXEC


def cannot_express(op: str, why: str, **arg: object) -> KernelError:
    """EINVAL for a flag the exporter's uapi has no way to carry, as the kernel would refuse it."""
    return kernel_error(errno.EINVAL, op, {**arg, "why": why})


def refuse_heap_only(op: str, struct_size: int | None, heap_flags: int = 0, who: str = "") -> None:
    """EINVAL for what only the dma-heap ALLOC ioctl carries: heap flags, struct variants."""
    if heap_flags:
        raise cannot_express(op, f"{who} has no heap flags", heap_flags=heap_flags)
    if struct_size is not None:
        raise cannot_express(
            op, "struct_size applies to dma_heap_allocation_data only", struct_size=struct_size
        )


class Exporter(abc.ABC):
    """One source of dma-bufs on this machine (a heap, udmabuf, a vgem card, an ION heap)."""

    name: str
    kind: str
    detail: str = ""

    def info(self) -> ExporterInfo:
        return ExporterInfo(name=self.name, kind=self.kind, detail=self.detail)

    @abc.abstractmethod
    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        """A new dma-buf of ``size`` bytes (the exporter may round up)."""

    def close(self) -> None:  # noqa: B027 - only exporters holding a device fd need it
        """Release what the adapter holds open (device fds)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def open_device(path: str, flags: int = os.O_RDWR | os.O_CLOEXEC) -> int:
    try:
        return os.open(path, flags)
    except OSError as e:
        raise kernel_error(e.errno, "open", {"path": path}) from None


class DeviceNode:
    """A device node (a heap, /dev/udmabuf, a DRM card) opened on first use and kept.

    Kept, as libdmabufheap's BufferAllocator does: the node's fd is not the
    buffer's, and reopening it per allocation cost more than the allocation
    itself under TCG (bench/bench_bindings.py).
    """

    def __init__(self, path: str, flags: int = os.O_RDWR | os.O_CLOEXEC) -> None:
        self.path = path
        self.flags = flags
        self._fd: int | None = None

    def fd(self) -> int:
        if self._fd is None:
            self._fd = open_device(self.path, self.flags)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
