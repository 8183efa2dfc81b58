"""The dma-buf and dma-heap uapi on the model: allocation, SYNC, names, fdinfo, sync files, poll.

Semantics follow drivers/dma-buf/dma-buf.c and dma-heap.c of 6.1.  A new
buffer whose fd cannot be installed is released (dma_heap_ioctl_allocate
calls dma_buf_put).  ``allocate`` with ``struct_size < 12``: the kernel
allocates but cannot return the fd (it lies past the struct), so nothing
can name the buffer: refused as a SetupError.
"""

from __future__ import annotations

import errno
import os
import select

from conformance.errors import SetupError, UnknownExporter, kernel_error
from conformance.model.memory import PAGE_SIZE
from conformance.model.profiles import PROFILES
from conformance.records import Direction, SyncFlag
from conformance.targets.base import DEFAULT_FD_FLAGS
from conformance.targets.model_parts.fds import FdTable

_U64 = (1 << 64) - 1
_VALID_FD_FLAGS = os.O_CLOEXEC | os.O_ACCMODE
_SYNC_VALID = int(SyncFlag.RW | SyncFlag.END)
DMA_BUF_NAME_LEN = 32
_ALLOC_STRUCT_SIZE = 24  # struct dma_heap_allocation_data
_POLL_MASK = select.POLLIN | select.POLLOUT


class DmaBufUapi(FdTable):
    """DMA_HEAP_IOCTL_ALLOC and the ioctls on a dma-buf fd."""

    def allocate(
        self,
        exporter: str,
        size: int,
        *,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> int:
        profile = PROFILES.get(exporter)
        if profile is None:
            raise UnknownExporter(
                f"the model has no exporter {exporter!r}; it offers: {', '.join(PROFILES)}"
            )
        op = "DMA_HEAP_IOCTL_ALLOC"
        length, fd_flags, heap_flags = size & _U64, fd_flags & 0xFFFFFFFF, heap_flags & _U64
        if struct_size is not None:
            if struct_size < 12:
                raise SetupError(
                    f"struct_size {struct_size}: the fd field (bytes 8-11) would not be "
                    "copied back, so the new buffer could not be named"
                )
            # dma_heap_ioctl zero-fills what a short struct does not carry
            if struct_size < 16:
                fd_flags = 0
            if struct_size < _ALLOC_STRUCT_SIZE:
                heap_flags = 0
        arg = {"len": size, "fd_flags": fd_flags, "heap_flags": heap_flags}
        if fd_flags & ~_VALID_FD_FLAGS or heap_flags:
            raise kernel_error(errno.EINVAL, op, arg)
        aligned = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64
        if aligned == 0:
            raise kernel_error(errno.EINVAL, op, arg)
        b = self.exporter.allocate(profile, aligned)
        self._buffers[b.ino] = b
        self._live.add(b.ino)
        try:
            return self._open(b, fd_flags, op)
        except OSError:
            if profile.put_on_fd_failure:
                self._hold(b)
                self._put(b)  # the only reference: released with its pages
            raise

    def sync(self, buf: int, flags: int) -> None:
        b = self._fd(buf, "DMA_BUF_IOCTL_SYNC").buffer
        op = "DMA_BUF_IOCTL_SYNC"
        if flags & ~_SYNC_VALID or flags < 0:
            raise kernel_error(errno.EINVAL, op, flags)
        rw = flags & SyncFlag.RW
        if rw == 0:
            raise kernel_error(errno.EINVAL, op, flags)
        direction = {
            SyncFlag.READ: Direction.FROM_DEVICE,
            SyncFlag.WRITE: Direction.TO_DEVICE,
            SyncFlag.RW: Direction.BIDIRECTIONAL,
        }[SyncFlag(rw)]
        if flags & SyncFlag.END:
            self.exporter.end_cpu_access(b, direction, op)
        else:
            self.exporter.begin_cpu_access(b, direction, op)

    def set_name(self, buf: int, name: bytes, encoding: str = "B") -> None:
        b = self._fd(buf, "DMA_BUF_SET_NAME").buffer
        if encoding not in ("A", "B", "legacy"):
            raise SetupError(f"set_name encoding {encoding!r}: use 'A', 'B' or 'legacy'")
        op = "DMA_BUF_SET_NAME" + ("" if encoding == "legacy" else f"_{encoding}")
        text = bytes(name).split(b"\0", 1)[0]
        # strndup_user(buf, DMA_BUF_NAME_LEN): the string with its NUL must fit
        if len(text) + 1 > DMA_BUF_NAME_LEN and b.profile.name_len_checked:
            raise kernel_error(errno.EINVAL, op, bytes(name))
        b.name = text.decode("utf-8", "replace")

    def fdinfo(self, buf: int) -> dict[str, str]:
        fd = self._fd(buf, "fdinfo")
        b = fd.buffer
        info = {
            "pos": "0",
            "flags": f"0{fd.flags | os.O_RDWR:o}",
            "mnt_id": "0",
            "ino": str(b.ino),
            "size": str(b.size),
            "count": str(b.refs),
            "exp_name": b.profile.exp_name,
        }
        if b.name is not None:
            info["name"] = b.name
        return info

    @staticmethod
    def _sync_file_flags(flags: int, op: str) -> None:
        if flags & ~int(SyncFlag.RW) or not flags & int(SyncFlag.RW):
            raise kernel_error(errno.EINVAL, op, flags)

    def _sync_file_ioctl(self, buf: int, op: str) -> None:
        # dma_buf_ioctl of a kernel before 6.0 does not know the sync-file ioctls
        if not self._fd(buf, op).buffer.profile.sync_file_ioctls:
            raise kernel_error(errno.ENOTTY, op, "no sync-file ioctls before 6.0")

    def export_sync_file(self, buf: int, flags: int) -> int:
        self._sync_file_ioctl(buf, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        self._sync_file_flags(flags, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        self._check_fd_available("DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        h = self._handle()  # the model has no pending fences: a signalled stub
        self._sync_files.add(h)
        return h

    def import_sync_file(self, buf: int, sync_file: int, flags: int) -> None:
        op = "DMA_BUF_IOCTL_IMPORT_SYNC_FILE"
        self._sync_file_ioctl(buf, op)
        self._sync_file_flags(flags, op)
        if sync_file not in self._sync_files:
            raise kernel_error(errno.EINVAL, op, sync_file)

    def close_sync_file(self, sync_file: int) -> None:
        if sync_file not in self._sync_files:
            raise kernel_error(errno.EBADF, "close", sync_file)
        self._sync_files.discard(sync_file)

    def poll(self, buf: int, events: int, timeout_ms: int = 0) -> int:
        self._fd(buf, "poll")
        return events & _POLL_MASK  # every fence in the model is signalled
