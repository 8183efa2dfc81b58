"""The model's fd table: handles, references, dup/close/lseek and RLIMIT_NOFILE (EMFILE).

A process gets ``fd_limit`` fds, buffers and sync files alike; past it an
allocation, ``dup`` or sync-file export fails with EMFILE.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Iterator

from conformance.errors import SetupError, UnknownExporter, kernel_error
from conformance.model.dma import DmaApi
from conformance.model.exporter import Exporter, ModelBuffer
from conformance.model.memory import Cache, PhysicalMemory
from conformance.model.profiles import PROFILES, ExporterProfile


class UnknownHandle(SetupError):
    """A handle the model never handed out, or one already closed."""


@dataclass
class Fd:
    buffer: ModelBuffer
    flags: int


class FdTable:
    """Handles and the fds that hold buffers; the base of every model target part."""

    # Shared state, set up by ModelTarget.__init__ (the mixins only use it).
    memory: PhysicalMemory
    cache: Cache
    dma: DmaApi
    exporter: Exporter
    fd_limit: int
    _handles: Iterator[int]
    _fds: dict[int, Fd]
    _sync_files: set[int]
    _live: set[int]
    _buffers: dict[int, ModelBuffer]
    _memfds: dict[int, list]  # udmabuf's memfds per buffer (model_parts.udmabuf)

    def _handle(self) -> int:
        return next(self._handles)

    def _fd(self, buf: int, op: str) -> Fd:
        fd = self._fds.get(buf)
        if fd is None:
            raise kernel_error(errno.EBADF, op, buf)
        return fd

    def _get(self, table: dict, handle: int, what: str):
        try:
            return table[handle]
        except KeyError:
            raise UnknownHandle(f"no open {what} with handle {handle}") from None

    def _hold(self, b: ModelBuffer) -> None:
        b.refs += 1

    def _put(self, b: ModelBuffer) -> None:
        b.refs -= 1
        if b.refs == 0:
            self.exporter.release(b)
            self._live.discard(b.ino)

    def _check_fd_available(self, op: str) -> None:
        if len(self._fds) + len(self._sync_files) >= self.fd_limit:
            raise kernel_error(errno.EMFILE, op, f"{self.fd_limit} fds open")

    def _open(self, b: ModelBuffer, flags: int, op: str = "dup") -> int:
        self._check_fd_available(op)
        h = self._handle()
        self._fds[h] = Fd(b, flags)
        self._hold(b)
        return h

    def close(self, buf: int) -> None:
        fd = self._fd(buf, "close")
        del self._fds[buf]
        self._memfds.pop(buf, None)
        self._put(fd.buffer)

    def dup(self, buf: int) -> int:
        fd = self._fd(buf, "dup")
        return self._open(fd.buffer, fd.flags & ~os.O_CLOEXEC)

    def buffer_size(self, buf: int) -> int:
        return self.lseek(buf, 0, os.SEEK_END)

    def lseek(self, buf: int, offset: int, whence: int) -> int:
        b = self._fd(buf, "lseek").buffer
        if whence not in (os.SEEK_SET, os.SEEK_END) or offset != 0:
            raise kernel_error(errno.EINVAL, "lseek", (offset, whence))
        return b.size if whence == os.SEEK_END else 0

    def _profile_of_kind(self, exporter: str, kind: str, op: str) -> ExporterProfile:
        profile = PROFILES.get(exporter)
        if profile is None or profile.kind != kind:
            names = ", ".join(n for n, p in PROFILES.items() if p.kind == kind)
            raise UnknownExporter(f"{op} needs a model {kind} exporter ({names}), not {exporter!r}")
        return profile
