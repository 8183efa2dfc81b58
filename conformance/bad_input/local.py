"""Run a batch of bad inputs on this machine's kernel (``LocalTarget.bad_input_batch``).

Inside a QEMU guest the agent runs this next to the kernel, so ten thousand
inputs cost one message each way.  Every input is one raw syscall with the
exact argument the input describes: request numbers built here with this
machine's ``_IOC`` layout, structs packed by hand (their layouts are the
ctypes structs of ``conformance.uapi``, checked against the C headers by
tests/test_uapi_numbers.py), pointers that are NULL or point at a page mapped
PROT_NONE.  Whatever an accepted input makes (a dma-buf fd, a sync file, a
mapping, a GEM handle) is closed at once, so the batch leaves nothing behind.

Stdlib and ``conformance`` only: the guest agent imports it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import mmap as _mmap
import os
import struct
from typing import Any, Callable

from conformance.bad_input import inputs as I  # noqa: N812 - a namespace of constants
from conformance.errors import SetupError
from conformance.exporters import libc
from conformance.uapi import dma_buf, drm, memfd, udmabuf

FIXTURE_PAGES = 4  # the model's batch uses the same (model_parts/bad_input.py)
GUARD_DATA_PAGES = 16  # room for a list of list_limit + a few udmabuf items
_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1
_HUGE_FD = 1 << 30  # above fs.nr_open's ceiling: fget() never finds it
_CLOSED_FROM = 900  # a number no input reaches (they open a few fds at a time)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
]  # fmt: skip
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value

_SYNC = struct.Struct("=Q")  # struct dma_buf_sync
_SYNC_FILE = struct.Struct("=Ii")  # struct dma_buf_export/import_sync_file
_UDMABUF_CREATE = struct.Struct("=IIQQ")  # struct udmabuf_create
_UDMABUF_HEAD = struct.Struct("=II")  # struct udmabuf_create_list (its head)
_UDMABUF_ITEM = struct.Struct("=IIQQ")  # struct udmabuf_create_item
_PRIME = struct.Struct("=IIi")  # struct drm_prime_handle
_GEM_CLOSE = struct.Struct("=II")  # struct drm_gem_close
_DUMB = struct.Struct("=IIIIIIQ")  # struct drm_mode_create_dumb
for _s, _c in (
    (_SYNC, dma_buf.dma_buf_sync), (_SYNC_FILE, dma_buf.dma_buf_export_sync_file),
    (_UDMABUF_CREATE, udmabuf.udmabuf_create), (_UDMABUF_HEAD, udmabuf.udmabuf_create_list),
    (_UDMABUF_ITEM, udmabuf.udmabuf_create_item), (_PRIME, drm.drm_prime_handle),
    (_GEM_CLOSE, drm.drm_gem_close), (_DUMB, drm.drm_mode_create_dumb),
):  # fmt: skip
    if _s.size != ctypes.sizeof(_c):
        raise ImportError(f"{_c.__name__} packs to {_s.size} bytes, the header says "
                          f"{ctypes.sizeof(_c)}")  # fmt: skip

_SET_NAME = {
    "A": dma_buf.DMA_BUF_SET_NAME_A,
    "B": dma_buf.DMA_BUF_SET_NAME_B,
    "legacy": dma_buf.DMA_BUF_SET_NAME,
}


def _ioctl(fd: int, request: int, buf: bytearray) -> tuple[int, int]:
    """``(return value, 0)`` or ``(-1, errno)``; what the kernel wrote lands in ``buf``."""
    try:
        return fcntl.ioctl(fd, request, buf, True), 0
    except OSError as e:
        return -1, e.errno or errno.EIO


def _ioctl_ptr(fd: int, request: int, pointer: int) -> tuple[int, int]:
    """ioctl with a raw user pointer (NULL, an unmapped page, a string)."""
    ret = _libc.ioctl(fd, request, pointer)
    return (ret, 0) if ret >= 0 else (-1, ctypes.get_errno())


class GuardPages:
    """``GUARD_DATA_PAGES`` read/write pages followed by one PROT_NONE page at ``end``."""

    def __init__(self, pages: int = GUARD_DATA_PAGES) -> None:
        self.page = _mmap.PAGESIZE
        self.length = (pages + 1) * self.page
        addr = _libc.mmap(None, self.length, _mmap.PROT_READ | _mmap.PROT_WRITE,
                          _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS, -1, 0)  # fmt: skip
        if addr in (None, _MAP_FAILED):
            why = os.strerror(ctypes.get_errno())
            raise SetupError(f"bad inputs: cannot map guard pages ({why})")
        self.base = int(addr)
        self.end = self.base + pages * self.page
        if _libc.mprotect(self.end, self.page, 0) != 0:  # PROT_NONE
            raise SetupError("bad inputs: cannot make the guard page PROT_NONE")

    def place(self, data: bytes) -> int:
        """Copy ``data`` so that it ends where the guard page starts; its address."""
        if len(data) > self.end - self.base:
            raise SetupError(f"bad inputs: {len(data)} bytes do not fit before the guard page")
        at = self.end - len(data)
        ctypes.memmove(at, data, len(data))
        return at

    def close(self) -> None:
        _libc.munmap(self.base, self.length)


class Runner:
    """One batch on one exporter of a ``LocalTarget``."""

    def __init__(self, target: Any, exporter: str) -> None:
        self.exporter = target.exporter(exporter)
        self.kind = self.exporter.kind
        self.page = _mmap.PAGESIZE
        self._fixtures: dict[str, Any] = {}
        self._fds: list[int] = []  # opened for the batch, closed at its end
        self._device: int | None = None
        self._memfd: int | None = None
        self._pipe: int | None = None
        self.guard = GuardPages()
        self.closed_fd = _not_open_fd()

    # -- what inputs name ------------------------------------------------------------
    def fixture(self, which: str = "rw") -> int:
        if which not in self._fixtures:
            size = FIXTURE_PAGES * self.page
            if which == "rw":
                self._fixtures[which] = self.exporter.allocate(size)
            else:
                self._fixtures[which] = self.exporter.allocate(size, os.O_RDONLY | os.O_CLOEXEC)
        return self._fixtures[which].fd

    def _open(self, path: str, flags: int) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        self._fds.append(fd)
        return fd

    def device(self) -> int:
        """The exporter's device: the heap, /dev/udmabuf, or a DRM file of the batch's own."""
        if self._device is None:
            path = getattr(self.exporter, "path", None) or getattr(self.exporter, "node", None)
            if path is None:
                raise SetupError(f"bad inputs: {self.exporter.name} has no device node")
            mode = os.O_RDONLY if self.kind == "heap" else os.O_RDWR
            self._device = self._open(path, mode)
        return self._device

    def fd(self, kind: str) -> tuple[int, Callable[[], None]]:
        """The fd number of an fd kind, and what to do with it after the input."""
        if kind == "memfd":
            if self._memfd is None:
                self._memfd = libc.memfd_create("bad-input", memfd.MFD_CLOEXEC)
                self._fds.append(self._memfd)
            return self._memfd, _nothing
        if kind == "pipe":
            if self._pipe is None:
                r, w = os.pipe2(os.O_CLOEXEC)
                self._fds += [r, w]
                self._pipe = r
            return self._pipe, _nothing
        if kind == "closed":
            return self.closed_fd, _nothing
        if kind == "huge":
            return _HUGE_FD, _nothing
        if kind == "neg":
            return -1, _nothing
        if kind == "dmabuf":
            return self.fixture(), _nothing
        if kind == "device":
            return self.device(), _nothing
        if kind == "syncfile":
            buf = bytearray(_SYNC_FILE.pack(3, -1))
            _, err = _ioctl(self.fixture(), dma_buf.DMA_BUF_IOCTL_EXPORT_SYNC_FILE, buf)
            if err:  # no sync-file ioctls (before 6.0): the import is refused before the fd
                return -1, _nothing
            sync_file = _SYNC_FILE.unpack(buf)[1]
            return sync_file, lambda: os.close(sync_file)
        raise SetupError(f"bad inputs: unknown fd kind {kind!r}")

    def pointer(self, argp: str) -> int:
        return 0 if argp == "null" else self.guard.end

    def close(self) -> None:
        for dmabuf in self._fixtures.values():
            dmabuf.close()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.guard.close()

    # -- the dma-buf file ---------------------------------------------------------------
    def sync(self, flags: int, argp: str) -> int:
        fd = self.fixture()
        if argp != "ok":
            return _ioctl_ptr(fd, dma_buf.DMA_BUF_IOCTL_SYNC, self.pointer(argp))[1]
        return _ioctl(fd, dma_buf.DMA_BUF_IOCTL_SYNC, bytearray(_SYNC.pack(flags & _U64)))[1]

    def dmabuf_ioctl(self, d: str, nr: int, size: int) -> int:
        request = I.request(d, dma_buf.DMA_BUF_BASE, nr, size)
        return _ioctl(self.fixture(), request, bytearray(max(size, 8)))[1]

    def set_name(self, request: str, length: int, nul_at: int, where: str) -> int:
        fd = self.fixture()
        name = I.name_bytes(length, nul_at)
        if where == "null":
            return _ioctl_ptr(fd, _SET_NAME[request], 0)[1]
        if where == "guard":
            return _ioctl_ptr(fd, _SET_NAME[request], self.guard.place(name))[1]
        text = ctypes.create_string_buffer(name)  # NUL-terminated
        return _ioctl_ptr(fd, _SET_NAME[request], ctypes.addressof(text))[1]

    def export_sync_file(self, flags: int, fd_in: int, argp: str) -> int:
        request = dma_buf.DMA_BUF_IOCTL_EXPORT_SYNC_FILE
        if argp != "ok":
            return _ioctl_ptr(self.fixture(), request, self.pointer(argp))[1]
        buf = bytearray(_SYNC_FILE.pack(flags & _U32, fd_in))
        _, err = _ioctl(self.fixture(), request, buf)
        if not err:
            os.close(_SYNC_FILE.unpack(buf)[1])
        return err

    def import_sync_file(self, flags: int, fd_kind: str, argp: str) -> int:
        request = dma_buf.DMA_BUF_IOCTL_IMPORT_SYNC_FILE
        if argp != "ok":
            return _ioctl_ptr(self.fixture(), request, self.pointer(argp))[1]
        fd, after = self.fd(fd_kind)
        try:
            buf = bytearray(_SYNC_FILE.pack(flags & _U32, fd))
            return _ioctl(self.fixture(), request, buf)[1]
        finally:
            after()

    def mmap(self, fixture: str, length: int, offset: int, prot: int, flags: int) -> int:
        addr = _libc.mmap(None, length, prot, flags, self.fixture(fixture), offset)
        if addr in (None, _MAP_FAILED):
            return ctypes.get_errno()
        _libc.munmap(addr, length)
        return 0

    def lseek(self, offset: int, whence: int) -> int:
        try:
            os.lseek(self.fixture(), offset, whence)
        except OSError as e:
            return e.errno or errno.EIO
        return 0

    # -- heaps ----------------------------------------------------------------------------
    def heap_alloc(self, *args: Any) -> int:
        d, nr, size, _len, _fd, _fd_flags, _heap_flags, argp = args
        request = I.request(d, "H", nr, size)
        heap = self.device()
        if argp != "ok":
            return _ioctl_ptr(heap, request, self.pointer(argp))[1]
        data = I.heap_alloc_bytes(args)
        buf = bytearray(data.ljust(max(size, 24), b"\0"))
        # An allocation whose fd the kernel does not copy back (a request without
        # _IOC_READ, or too short to reach the fd field) still installs it: the
        # lowest free number (get_unused_fd_flags), found and closed after.
        returned = I.has_read(d) and size >= 12
        lowest = None if returned else _lowest_free_fd()
        _, err = _ioctl(heap, request, buf)
        if err:
            return err
        if returned:
            os.close(struct.unpack_from("=I", buf, 8)[0])
        elif lowest is not None and _is_dmabuf(lowest):
            os.close(lowest)
        return 0

    # -- udmabuf ----------------------------------------------------------------------------
    def udmabuf_ioctl(self, d: str, nr: int, size: int) -> int:
        request = I.request(d, "u", nr, size)
        return _ioctl(self.device(), request, bytearray(max(size, 8)))[1]

    def _memfds(self, specs: list) -> tuple[list[int], list[int]]:
        """fd numbers for memfd specs, and the fds to close after the input."""
        numbers, made = [], []
        try:
            for kind, size, seals in specs:
                if kind != "memfd":
                    numbers.append(self.fd(kind)[0] & _U32)
                    continue
                fd = libc.memfd_create("bad-input", memfd.MFD_CLOEXEC | memfd.MFD_ALLOW_SEALING)
                made.append(fd)
                os.ftruncate(fd, size)
                if seals:
                    fcntl.fcntl(fd, memfd.F_ADD_SEALS, seals)
                numbers.append(fd)
        except BaseException:
            for fd in made:
                os.close(fd)
            raise
        return numbers, made

    def udmabuf_create(self, flags: int, memfd: list, offset: int, size: int, argp: str) -> int:
        if argp != "ok":
            return _ioctl_ptr(self.device(), udmabuf.UDMABUF_CREATE, self.pointer(argp))[1]
        numbers, made = self._memfds([memfd])
        try:
            buf = bytearray(_UDMABUF_CREATE.pack(numbers[0], flags & _U32, offset & _U64,
                                                 size & _U64))  # fmt: skip
            ret, err = _ioctl(self.device(), udmabuf.UDMABUF_CREATE, buf)
        finally:
            for fd in made:
                os.close(fd)
        if not err:
            os.close(ret)
        return err

    def udmabuf_list(self, flags: int, count: int, memfds: list, items: list, argp: str) -> int:
        request = udmabuf.UDMABUF_CREATE_LIST
        if argp != "ok":
            return _ioctl_ptr(self.device(), request, self.pointer(argp))[1]
        numbers, made = self._memfds(memfds)
        try:
            raw = _UDMABUF_HEAD.pack(flags & _U32, count & _U32) + _pack_items(numbers, items)
            # the items end at the guard page: a count past them faults in memdup_user
            ret, err = _ioctl_ptr(self.device(), request, self.guard.place(raw))
        finally:
            for fd in made:
                os.close(fd)
        if not err:
            os.close(ret)
        return err

    # -- vgem: DRM PRIME and dumb buffers -------------------------------------------------------
    def _gem_close(self, handle: int) -> None:
        _ioctl(self.device(), drm.DRM_IOCTL_GEM_CLOSE, bytearray(_GEM_CLOSE.pack(handle, 0)))

    def prime_handle_to_fd(self, handle: int, flags: int) -> int:
        buf = bytearray(_PRIME.pack(handle & _U32, flags & _U32, -1))
        _, err = _ioctl(self.device(), drm.DRM_IOCTL_PRIME_HANDLE_TO_FD, buf)
        if not err:
            os.close(_PRIME.unpack(buf)[2])
        return err

    def prime_fd_to_handle(self, fd_kind: str) -> int:
        fd, after = self.fd(fd_kind)
        try:
            buf = bytearray(_PRIME.pack(0, 0, fd))
            _, err = _ioctl(self.device(), drm.DRM_IOCTL_PRIME_FD_TO_HANDLE, buf)
        finally:
            after()
        if not err:
            self._gem_close(_PRIME.unpack(buf)[0])
        return err

    def gem_close(self, handle: int, pad: int) -> int:
        buf = bytearray(_GEM_CLOSE.pack(handle & _U32, pad & _U32))
        return _ioctl(self.device(), drm.DRM_IOCTL_GEM_CLOSE, buf)[1]

    def create_dumb(self, height: int, width: int, bpp: int, flags: int) -> int:
        buf = bytearray(_DUMB.pack(height & _U32, width & _U32, bpp & _U32, flags & _U32,
                                   0, 0, 0))  # fmt: skip
        _, err = _ioctl(self.device(), drm.DRM_IOCTL_MODE_CREATE_DUMB, buf)
        if not err:
            self._gem_close(_DUMB.unpack(buf)[4])
        return err


def _nothing() -> None:
    pass


def _not_open_fd() -> int:
    fd = _CLOSED_FROM
    while True:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            return fd
        fd += 1


def _lowest_free_fd() -> int:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    return fd


def _is_dmabuf(fd: int) -> bool:
    try:
        return "dmabuf" in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False


def _pack_items(numbers: list[int], items: list[list[int]]) -> bytes:
    """The ``udmabuf_create_item`` array; an item repeated (``inputs.decode`` repeats one
    object for a run of equal items) is packed once, not once per item."""
    parts: list[bytes] = []
    last: Any = None
    packed = b""
    for item in items:
        if item is not last:
            memfd, off, n = item
            packed = _UDMABUF_ITEM.pack(numbers[memfd], 0, off & _U64, n & _U64)
            last = item
        parts.append(packed)
    return b"".join(parts)


def run_batch(target: Any, exporter: str, encoded: list[list[Any]]) -> list[int]:
    """One errno per encoded input (0: accepted) from this machine's kernel."""
    runner = Runner(target, exporter)
    out: list[int] = []
    try:
        for index, raw in enumerate(encoded):
            op, args = I.decode(raw)
            try:
                out.append(getattr(runner, op)(*args))
            except (OverflowError, ValueError, TypeError) as e:
                raise SetupError(f"bad input #{index} {raw!r} cannot be run: {e}") from None
    finally:
        runner.close()
    return out
