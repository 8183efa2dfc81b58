"""The one ioctl wrapper: typed errors naming the request and its argument."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Union

from conformance.errors import kernel_error
from conformance.uapi.ioc import decode
from conformance.uapi.requests import Request

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
# ioctl(int, unsigned long, ...): argtypes only for the fixed part; the variadic
# argument is passed as a pointer-sized value on every Linux ABI we run on.
_libc_ioctl = _libc.ioctl
_libc_ioctl.restype = ctypes.c_int
_ULONG_MASK = (1 << (8 * ctypes.sizeof(ctypes.c_ulong))) - 1

Arg = Union[int, bytes, bytearray, ctypes.Structure, ctypes.Array]


def request_name(request: int) -> str:
    """``DMA_BUF_IOCTL_SYNC``; a size variant as ``DMA_HEAP_IOCTL_ALLOC[size=16]``."""
    try:
        return Request(request).name
    except ValueError:
        pass
    d = decode(request)
    for known in Request:
        k = decode(known)
        if (k.direction, k.type, k.nr) == (d.direction, d.type, d.nr):
            return f"{known.name}[size={d.size}]"
    return f"ioctl({request:#x})"


def summarize(arg: Arg) -> object:
    """A short, printable (and JSON-able) picture of an ioctl argument."""
    if isinstance(arg, ctypes.Structure):
        fields = {name: getattr(arg, name) for name, *_ in arg._fields_}
        return {k: (v if isinstance(v, (int, str)) else repr(v)) for k, v in fields.items()}
    if isinstance(arg, (bytes, bytearray, ctypes.Array)):
        return f"<{len(bytes(arg))} bytes>"
    return arg


def ioctl(fd: int, request: int, arg: Arg = 0, *, arg_summary: object = None) -> int:
    """ioctl(2); a struct/buffer argument is updated in place with what the kernel wrote.

    An int argument is passed as an unsigned long (user pointers included).
    Raises the ``KernelError`` subclass of the errno, named after the request.
    """
    if isinstance(arg, int):
        c_arg: object = ctypes.c_ulong(arg & _ULONG_MASK)
    elif isinstance(arg, bytes):
        # read-only input: hand the kernel a private copy
        c_arg = ctypes.create_string_buffer(arg, len(arg))
    elif isinstance(arg, bytearray):
        c_arg = (ctypes.c_char * len(arg)).from_buffer(arg)
    else:
        c_arg = ctypes.byref(arg)
    ret = _libc_ioctl(fd, ctypes.c_ulong(request), c_arg)
    if ret < 0:
        summary = summarize(arg) if arg_summary is None else arg_summary
        raise kernel_error(ctypes.get_errno(), request_name(request), summary)
    return int(ret)
