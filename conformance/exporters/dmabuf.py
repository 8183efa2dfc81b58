"""A dma-buf fd and its user mappings: every user-space operation on one buffer."""

from __future__ import annotations

import ctypes
import errno
import faulthandler
import os
import select
import struct
from dataclasses import dataclass

from conformance.errors import SetupError, kernel_error
from conformance.exporters import libc
from conformance.uapi import dma_buf
from conformance.uapi.ioctl import fast_ioctl, ioctl, raise_for
from conformance.uapi.requests import Request

SET_NAME_REQUESTS: dict[str, Request] = {
    "A": Request.DMA_BUF_SET_NAME_A,
    "B": Request.DMA_BUF_SET_NAME_B,
    # the legacy number is the pointer-sized one, so it resolves to _A or _B
    "legacy": Request(dma_buf.DMA_BUF_SET_NAME),
}


# SYNC is the one ioctl cases issue in loops: its argument is packed directly
# (a u64, wrapped as the ctypes field would wrap it).  The valid flag values
# get one prebuilt buffer each: under TCG building the argument costs as much
# as the ioctl itself (bench/bench_bindings.py).  A bytearray, because fcntl
# tries a writable buffer first and pays a raised-and-cleared TypeError for
# bytes.  SYNC is _IOW: the kernel never writes into it, so sharing is safe.
_SYNC_REQUEST = int(Request.DMA_BUF_IOCTL_SYNC)
_pack_sync = struct.Struct("=Q").pack
_U64_MASK = (1 << 64) - 1
_SYNC_ARGS = tuple(
    bytearray(_pack_sync(f)) for f in range(dma_buf.DMA_BUF_SYNC_VALID_FLAGS_MASK + 1)
)


class BadRequest(SetupError):
    """A caller asked for something that is not an operation (wrong encoding name...)."""


@dataclass
class Mapping:
    """One user mapping of a dma-buf.

    ``buffer_size`` is kept so that accesses past the buffer's last page (only
    reachable after growing the mapping with mremap) are made in a child
    process: the kernel should answer them with SIGBUS, which must not kill
    the suite.
    """

    addr: int
    length: int
    offset: int
    buffer_size: int

    def _check_inside(self, op: str, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.length:
            # outside the mapping: the address is not ours (it may be another mapping)
            raise kernel_error(
                errno.EFAULT,
                op,
                {"offset": offset, "length": length, "mapping_length": self.length},
            )

    def _backed_end(self) -> int:
        return max(0, min(self.length, self.buffer_size - self.offset))

    def _probe_past_buffer(self, op: str, offset: int, length: int) -> None:
        """Touch the pages past the buffer in a child; a fault there becomes EFAULT."""
        start = max(offset, self._backed_end())
        end = offset + length
        if start >= end:
            return
        pid = os.fork()
        if pid == 0:  # child: touch one byte per page, then leave without cleanup
            try:
                # the fault is the expected answer: no traceback dump from faulthandler
                faulthandler.disable()
                page = start - (start % libc.PAGE_SIZE)
                while page < end:
                    ctypes.string_at(self.addr + max(page, start), 1)
                    page += libc.PAGE_SIZE
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = libc.signal_name(os.WTERMSIG(status))
            raise kernel_error(
                errno.EFAULT, op, {"offset": offset, "length": length, "signal": sig}
            )

    def read(self, offset: int, length: int) -> bytes:
        self._check_inside("cpu_read", offset, length)
        self._probe_past_buffer("cpu_read", offset, length)
        return ctypes.string_at(self.addr + offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._check_inside("cpu_write", offset, len(data))
        self._probe_past_buffer("cpu_write", offset, len(data))
        ctypes.memmove(self.addr + offset, data, len(data))

    def remap(self, new_length: int) -> None:
        self.addr = libc.mremap(self.addr, self.length, new_length)
        self.length = new_length

    def unmap(self) -> None:
        libc.munmap(self.addr, self.length)
        self.length = 0


class DmaBuf:
    """Owns one dma-buf fd (the exporter that made it does not matter here)."""

    def __init__(self, fd: int, exporter: str = "") -> None:
        self.fd = fd
        self.exporter = exporter

    # -- lifetime --------------------------------------------------------------
    def __enter__(self) -> DmaBuf:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            self.close()

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        try:
            os.close(fd)
        except OSError as e:
            raise kernel_error(e.errno, "close", {"fd": fd}) from None

    def dup(self) -> DmaBuf:
        return DmaBuf(libc.checked("dup", {"fd": self.fd}, os.dup, self.fd), self.exporter)

    # -- plain syscalls ----------------------------------------------------------
    def lseek(self, offset: int, whence: int) -> int:
        arg = {"offset": offset, "whence": whence}
        return libc.checked("lseek", arg, os.lseek, self.fd, offset, whence)

    @property
    def size(self) -> int:
        return self.lseek(0, os.SEEK_END)

    def mmap(self, length: int | None = None, offset: int = 0, shared: bool = True) -> Mapping:
        size = self.size
        if length is None:
            length = size - offset
        addr = libc.mmap(self.fd, length, offset, shared)
        return Mapping(addr=addr, length=length, offset=offset, buffer_size=size)

    def poll(self, events: int, timeout_ms: int = 0) -> int:
        p = select.poll()
        p.register(self.fd, events)
        ready = libc.checked("poll", {"events": events}, p.poll, timeout_ms)
        return ready[0][1] if ready else 0

    def fdinfo(self) -> dict[str, str]:
        path = f"/proc/self/fdinfo/{self.fd}"
        text = libc.checked("fdinfo", {"path": path}, _read_text, path)
        info: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
        return info

    # -- dma-buf ioctls ------------------------------------------------------------
    def sync(self, flags: int) -> None:
        flags = int(flags) & _U64_MASK
        arg = _SYNC_ARGS[flags] if flags < len(_SYNC_ARGS) else bytearray(_pack_sync(flags))
        err = fast_ioctl(self.fd, _SYNC_REQUEST, arg)
        if err:
            if err < 0:  # an fd fcntl cannot carry: the generic path lets the kernel answer
                ioctl(self.fd, Request.DMA_BUF_IOCTL_SYNC, dma_buf.dma_buf_sync(flags=flags))
                return
            raise_for(err, _SYNC_REQUEST, {"flags": flags})

    def set_name(self, name: bytes, encoding: str = "B") -> None:
        if encoding not in SET_NAME_REQUESTS:
            raise BadRequest(
                f"set_name encoding {encoding!r} unknown; use one of {sorted(SET_NAME_REQUESTS)}"
            )
        # the argument is a user pointer to a NUL-terminated string
        buf = ctypes.create_string_buffer(bytes(name))
        ioctl(
            self.fd,
            SET_NAME_REQUESTS[encoding],
            ctypes.addressof(buf),
            arg_summary={"name": bytes(name)[:64].decode("latin-1"), "encoding": encoding},
        )

    def export_sync_file(self, flags: int) -> int:
        arg = dma_buf.dma_buf_export_sync_file(flags=flags, fd=-1)
        ioctl(self.fd, Request.DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg)
        return int(arg.fd)

    def import_sync_file(self, sync_fd: int, flags: int) -> None:
        arg = dma_buf.dma_buf_import_sync_file(flags=flags, fd=sync_fd)
        ioctl(self.fd, Request.DMA_BUF_IOCTL_IMPORT_SYNC_FILE, arg)


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()
