"""vgem: a virtual GEM driver; dumb buffers exported through DRM PRIME."""

from __future__ import annotations

import ctypes
import errno
import glob
import os

from conformance.errors import KernelError, kernel_error
from conformance.exporters import libc
from conformance.exporters.base import (
    DEFAULT_FD_FLAGS,
    DeviceNode,
    Exporter,
    refuse_heap_only,
)
from conformance.exporters.dmabuf import DmaBuf
from conformance.uapi import drm
from conformance.uapi.ioctl import ioctl
from conformance.uapi.requests import Request

DRI_DIR = "/dev/dri"
_NAME_LEN = 64


def driver_name(fd: int) -> str:
    """The DRM driver behind ``fd`` (``DRM_IOCTL_VERSION``)."""
    name = ctypes.create_string_buffer(_NAME_LEN)
    v = drm.drm_version(name_len=_NAME_LEN, name=ctypes.addressof(name))
    ioctl(fd, Request.DRM_IOCTL_VERSION, v)
    return name.raw[: min(v.name_len, _NAME_LEN)].split(b"\0")[0].decode("ascii", "replace")


def find_vgem(directory: str = DRI_DIR) -> str | None:
    """The first DRM node (card*, then renderD*) whose driver is vgem."""
    nodes = sorted(glob.glob(os.path.join(directory, "card*"))) + sorted(
        glob.glob(os.path.join(directory, "renderD*"))
    )
    for node in nodes:
        try:
            fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if driver_name(fd) == "vgem":
                return node
        except KernelError:
            pass
        finally:
            os.close(fd)
    return None


class VgemExporter(Exporter):
    kind = "vgem"
    name = "vgem"

    def __init__(self, node: str) -> None:
        self.node = node
        self.detail = node
        self._node = DeviceNode(node)

    def card(self) -> int:
        return self._node.fd()

    def close(self) -> None:
        self._node.close()

    def create_dumb(self, size: int) -> drm.drm_mode_create_dumb:
        """A dumb buffer of at least ``size`` bytes: rows of one page, 8 bpp."""
        rows = -(-size // libc.PAGE_SIZE) if size > 0 else 0
        arg = drm.drm_mode_create_dumb(height=rows, width=libc.PAGE_SIZE, bpp=8)
        ioctl(
            self.card(),
            Request.DRM_IOCTL_MODE_CREATE_DUMB,
            arg,
            arg_summary={"size": size, "height": rows, "width": libc.PAGE_SIZE, "bpp": 8},
        )
        return arg

    def export(self, handle: int, flags: int = drm.DRM_CLOEXEC | drm.DRM_RDWR) -> int:
        arg = drm.drm_prime_handle(handle=handle, flags=flags, fd=-1)
        ioctl(self.card(), Request.DRM_IOCTL_PRIME_HANDLE_TO_FD, arg)
        return int(arg.fd)

    def import_fd(self, fd: int) -> int:
        """PRIME import: the GEM handle vgem gives a dma-buf fd (its own or foreign)."""
        arg = drm.drm_prime_handle(handle=0, flags=0, fd=fd)
        ioctl(self.card(), Request.DRM_IOCTL_PRIME_FD_TO_HANDLE, arg)
        return int(arg.handle)

    def close_handle(self, handle: int) -> None:
        ioctl(self.card(), Request.DRM_IOCTL_GEM_CLOSE, drm.drm_gem_close(handle=handle))

    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        op = "DRM_IOCTL_MODE_CREATE_DUMB"
        refuse_heap_only(op, struct_size, heap_flags, "vgem")
        if size < 0:
            raise kernel_error(errno.EINVAL, op, {"size": size})
        handle = self.create_dumb(size).handle
        try:
            # PRIME flags are O_CLOEXEC | O_RDWR bits: the kernel judges the rest
            return DmaBuf(self.export(handle, fd_flags), self.name)
        finally:
            # the dma-buf holds its own reference to the object
            self.close_handle(handle)
