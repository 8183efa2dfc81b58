"""mmap/munmap/mremap through libc, so the exact errno reaches the caller.

Python's mmap module hides errnos behind its own checks, refuses MAP_PRIVATE
on some paths and cannot mremap; the cases need the kernel's own answer.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os

from conformance.errors import kernel_error
from conformance.uapi.libc import load_libc

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

_libc = load_libc()

_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,  # off_t is 64-bit on every 64-bit Linux ABI
]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]

MAP_FAILED = ctypes.c_void_p(-1).value
MREMAP_MAYMOVE = 1
PROT_RW = _mmap.PROT_READ | _mmap.PROT_WRITE
PAGE_SIZE = _mmap.PAGESIZE


def mmap(fd: int, length: int, offset: int, shared: bool) -> int:
    """Address of a new read/write mapping of ``fd``."""
    flags = _mmap.MAP_SHARED if shared else _mmap.MAP_PRIVATE
    addr = _libc.mmap(None, length, PROT_RW, flags, fd, offset)
    if addr == MAP_FAILED or addr is None:
        err = ctypes.get_errno()
        raise kernel_error(
            err, "mmap", {"fd": fd, "length": length, "offset": offset, "shared": shared}
        )
    return int(addr)


def munmap(addr: int, length: int) -> None:
    if _libc.munmap(addr, length) != 0:
        raise kernel_error(ctypes.get_errno(), "munmap", {"length": length})


def mremap(addr: int, old_length: int, new_length: int, may_move: bool = True) -> int:
    """New address of the mapping after resizing it."""
    new = _libc.mremap(addr, old_length, new_length, MREMAP_MAYMOVE if may_move else 0)
    if new == MAP_FAILED or new is None:
        raise kernel_error(
            ctypes.get_errno(), "mremap", {"old_length": old_length, "new_length": new_length}
        )
    return int(new)


def memfd_create(name: str, flags: int) -> int:
    if not hasattr(os, "memfd_create"):  # Python 3.7 (a board's): glibc's wrapper
        fd = _libc.memfd_create(name.encode(), ctypes.c_uint(flags))
        if fd < 0:
            raise kernel_error(ctypes.get_errno(), "memfd_create", {"name": name, "flags": flags})
        return int(fd)
    try:
        return os.memfd_create(name, flags)
    except OSError as e:
        raise kernel_error(e.errno, "memfd_create", {"name": name, "flags": flags}) from None


def checked(op: str, arg: object, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)``; an OSError becomes the typed KernelError naming ``op``."""
    try:
        return func(*args)
    except OSError as e:
        raise kernel_error(e.errno, op, arg) from None


def signal_name(signum: int) -> str:
    """``SIGBUS`` for 7 (on x86_64)."""
    import signal  # here, not at the top: its enums cost ~40 ms of a TCG guest's agent start

    return signal.Signals(signum).name
