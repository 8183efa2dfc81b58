"""udmabuf: a dma-buf over the pages of a sealed memfd (/dev/udmabuf).

udmabuf's limits are module parameters (udmabuf.c: ``list_limit``, the most
items one CREATE_LIST takes, default 1024; ``size_limit_mb``, the largest
buffer, default 64), writable by root at run time.  The adapter reads them from
sysfs and reports them in its ``ExporterInfo.detail`` (``list_limit=1024
size_limit_mb=64``), the one field that reaches the cases on every target,
across the QEMU guest's JSON protocol too; ``limits_of`` reads them back.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from dataclasses import dataclass

from conformance.errors import kernel_error
from conformance.exporters import libc
from conformance.exporters.base import (
    DEFAULT_FD_FLAGS,
    DeviceNode,
    Exporter,
    cannot_express,
    refuse_heap_only,
)
from conformance.exporters.dmabuf import DmaBuf
from conformance.records import ExporterInfo
from conformance.uapi import memfd, udmabuf
from conformance.uapi.ioctl import ioctl
from conformance.uapi.requests import Request

UDMABUF_PATH = "/dev/udmabuf"
# module parameters show here whether udmabuf is a module or built in (both are 0644)
UDMABUF_PARAMS = "/sys/module/udmabuf/parameters"
LIMIT_NAMES = ("list_limit", "size_limit_mb")
# udmabuf.c's defaults: what the reference model's udmabuf stand-in enforces
DEFAULT_LIST_LIMIT = 1024
DEFAULT_SIZE_LIMIT_MB = 64
# udmabuf's own file is always O_RDWR; only close-on-exec can be chosen
_EXPRESSIBLE_FD_FLAGS = (os.O_RDWR, os.O_RDWR | os.O_CLOEXEC)


@dataclass(frozen=True)
class ListItem:
    """One ``udmabuf_create_item``: a page range of a memfd."""

    memfd: int
    offset: int
    size: int


def read_limits(params_dir: str = UDMABUF_PARAMS) -> tuple[dict[str, int], list[str]]:
    """udmabuf's limit parameters as found in ``params_dir``, and why any is missing."""
    limits: dict[str, int] = {}
    missing: list[str] = []
    if not os.path.exists(params_dir):
        # Before the limits became module parameters they were constants
        # (5.10.223 udmabuf.c:15-16, `static const u32 list_limit = 1024`):
        # a udmabuf with no parameters at all enforces the compiled-in defaults.
        return {"list_limit": DEFAULT_LIST_LIMIT, "size_limit_mb": DEFAULT_SIZE_LIMIT_MB}, []
    for name in LIMIT_NAMES:
        path = os.path.join(params_dir, name)
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError as e:
            missing.append(f"{name}: cannot read {path} ({e.strerror})")
            continue
        try:
            limits[name] = int(text)
        except ValueError:
            missing.append(f"{name}: {path} holds {text!r}, not a number")
    return limits, missing


def limits_of(info: ExporterInfo) -> dict[str, int]:
    """The limit parameters a udmabuf exporter's ``detail`` reports (empty if none)."""
    limits: dict[str, int] = {}
    for token in info.detail.split():
        key, sep, value = token.partition("=")
        if sep and key in LIMIT_NAMES:
            try:
                limits[key] = int(value)
            except ValueError:
                pass  # "list_limit=?" : unknown, as if absent
    return limits


class UdmabufExporter(Exporter):
    kind = "udmabuf"
    name = "udmabuf"

    def __init__(self, path: str = UDMABUF_PATH, params_dir: str = UDMABUF_PARAMS) -> None:
        self.path = path
        self.params_dir = params_dir
        self._node = DeviceNode(path)

    @property
    def detail(self) -> str:  # type: ignore[override]
        """The device node and the limits in force now.

        Read at every call, not at discovery: root may change the parameters
        while the suite runs, and a case must try the limit the kernel applies.
        """
        limits, missing = read_limits(self.params_dir)
        words = [self.path] + [f"{k}={v}" for k, v in limits.items()]
        if missing:
            words.append(f"(unknown: {'; '.join(missing)})")
        return " ".join(words)

    def _device(self) -> int:
        return self._node.fd()

    def close(self) -> None:
        self._node.close()

    # -- raw building blocks, for the seal/alignment cases ---------------------
    @staticmethod
    def make_memfd(
        size: int, seals: int = memfd.F_SEAL_SHRINK, *, hugetlb: bool = False, name: str = "udmabuf"
    ) -> int:
        """A shmem (or hugetlbfs) memfd of ``size`` bytes with ``seals`` added."""
        flags = memfd.MFD_ALLOW_SEALING | memfd.MFD_CLOEXEC | (memfd.MFD_HUGETLB if hugetlb else 0)
        fd = libc.memfd_create(name, flags)
        try:
            libc.checked("ftruncate", {"size": size}, os.ftruncate, fd, size)
            if seals:
                libc.checked(
                    "fcntl(F_ADD_SEALS)",
                    {"seals": seals},
                    fcntl.fcntl,
                    fd,
                    memfd.F_ADD_SEALS,
                    seals,
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create(self, memfd: int, offset: int, size: int, flags: int) -> DmaBuf:
        """``UDMABUF_CREATE`` exactly as given."""
        arg = udmabuf.udmabuf_create(memfd=memfd, flags=flags, offset=offset, size=size)
        fd = ioctl(self._device(), Request.UDMABUF_CREATE, arg)
        return DmaBuf(fd, self.name)

    def create_list(
        self,
        items: list[ListItem],
        flags: int = udmabuf.UDMABUF_FLAGS_CLOEXEC,
        *,
        count: int | None = None,
    ) -> DmaBuf:
        """``UDMABUF_CREATE_LIST``; ``count`` may lie about ``len(items)`` (overflow cases)."""
        raw_items = [
            udmabuf.udmabuf_create_item(memfd=i.memfd, offset=i.offset, size=i.size) for i in items
        ]
        buf = udmabuf.create_list_buffer(flags, raw_items)
        if count is not None:
            # the head's count field is the second u32
            buf[4:8] = count.to_bytes(4, sys.byteorder)
        summary = {
            "flags": flags,
            "count": len(items) if count is None else count,
            "items": [(i.offset, i.size) for i in items],
        }
        fd = ioctl(self._device(), Request.UDMABUF_CREATE_LIST, buf, arg_summary=summary)
        return DmaBuf(fd, self.name)

    # -- the common interface ----------------------------------------------------
    def allocate(
        self,
        size: int,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> DmaBuf:
        op = "UDMABUF_CREATE"
        refuse_heap_only(op, struct_size, heap_flags, "udmabuf")
        if fd_flags not in _EXPRESSIBLE_FD_FLAGS:
            raise cannot_express(
                op, "udmabuf fds are always O_RDWR; only O_CLOEXEC is selectable", fd_flags=fd_flags
            )
        if size < 0:
            raise kernel_error(errno.EINVAL, op, {"size": size})
        flags = udmabuf.UDMABUF_FLAGS_CLOEXEC if fd_flags & os.O_CLOEXEC else 0
        # size goes to the kernel unrounded: udmabuf refuses sizes that are not
        # page multiples (EINVAL) and that is the behaviour under test
        memfd = self.make_memfd(size)
        try:
            return self.create(memfd, 0, size, flags)
        finally:
            os.close(memfd)  # the udmabuf holds the pages (and the file) itself
