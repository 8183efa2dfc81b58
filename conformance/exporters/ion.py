"""Legacy ION (4.12 to 5.10 staging ABI): /dev/ion, heaps found by ION_IOC_HEAP_QUERY."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from conformance.exporters.base import (
    DEFAULT_FD_FLAGS,
    Exporter,
    cannot_express,
    open_device,
    refuse_heap_only,
)
from conformance.exporters.dmabuf import DmaBuf
from conformance.uapi import ion
from conformance.uapi.ioctl import ioctl
from conformance.uapi.requests import Request

ION_PATH = "/dev/ion"
# ion_alloc() installs the fd with O_CLOEXEC on an O_RDWR file, always
_EXPRESSIBLE_FD_FLAGS = (os.O_RDWR | os.O_CLOEXEC,)


@dataclass(frozen=True)
class IonHeap:
    name: str
    type: int
    heap_id: int


def query_heaps(fd: int) -> list[IonHeap]:
    """Every heap /dev/ion offers: a count query, then the array."""
    q = ion.ion_heap_query(cnt=0, heaps=0)
    ioctl(fd, Request.ION_IOC_HEAP_QUERY, q)
    if q.cnt == 0:
        return []
    array = (ion.ion_heap_data * q.cnt)()
    q2 = ion.ion_heap_query(cnt=q.cnt, heaps=ctypes.addressof(array))
    ioctl(fd, Request.ION_IOC_HEAP_QUERY, q2)
    return [
        IonHeap(h.name.decode("ascii", "replace"), int(h.type), int(h.heap_id))
        for h in array[: q2.cnt]
    ]


class IonExporter(Exporter):
    kind = "ion"

    def __init__(self, heap: IonHeap, path: str = ION_PATH) -> None:
        self.heap = heap
        self.path = path
        self.name = f"ion:{heap.name}"
        self.detail = f"{path} heap_id={heap.heap_id} type={heap.type}"

    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        op = "ION_IOC_ALLOC"
        refuse_heap_only(op, struct_size)  # heap_flags are ION's own allocation flags
        if fd_flags not in _EXPRESSIBLE_FD_FLAGS:
            raise cannot_express(op, "ION fds are always O_RDWR | O_CLOEXEC", fd_flags=fd_flags)
        # heap_flags are ION's allocation flags (ION_FLAG_CACHED...): the kernel judges them
        arg = ion.ion_allocation_data(
            len=size, heap_id_mask=1 << self.heap.heap_id, flags=heap_flags
        )
        dev = open_device(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ioctl(dev, Request.ION_IOC_ALLOC, arg)
        finally:
            os.close(dev)
        return DmaBuf(int(arg.fd), self.name)
