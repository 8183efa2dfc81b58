"""The one ioctl wrapper: typed errors naming the request and its argument."""

from __future__ import annotations

import ctypes
import fcntl

from conformance.errors import kernel_error
from conformance.uapi.ioc import decode
from conformance.uapi.libc import load_libc
from conformance.uapi.requests import Request

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Union

    Arg = Union[int, bytes, bytearray, ctypes.Structure, ctypes.Array]

_libc = load_libc()
# ioctl(int, unsigned long, ...): argtypes only for the fixed part; the variadic
# argument is passed as a pointer-sized value on every Linux ABI we run on.
_libc_ioctl = _libc.ioctl
_libc_ioctl.restype = ctypes.c_int
_ULONG_MASK = (1 << (8 * ctypes.sizeof(ctypes.c_ulong))) - 1
# fcntl.ioctl takes the request as an unsigned int and the fd as a C int; a
# value outside those goes the ctypes way so the kernel, not Python, answers.
_FCNTL_REQUEST_MAX = 0xFFFFFFFF
_FCNTL_FD_MAX = 0x7FFFFFFF
# Measured in a TCG guest: fcntl.ioctl on a buffer is the cheapest call Python
# has (no ctypes argument conversion), see bench/bench_bindings.py.
_fcntl_ioctl = fcntl.ioctl


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
        return _libc_call(fd, request, ctypes.c_ulong(arg & _ULONG_MASK), arg, arg_summary)
    if not (0 <= fd <= _FCNTL_FD_MAX and 0 <= request <= _FCNTL_REQUEST_MAX):
        c_arg = ctypes.create_string_buffer(arg, len(arg)) if isinstance(arg, bytes) else (
            (ctypes.c_char * len(arg)).from_buffer(arg) if isinstance(arg, bytearray)
            else ctypes.byref(arg))
        return _libc_call(fd, request, c_arg, arg, arg_summary)
    # read-only input: the kernel gets a private copy (and fcntl then returns ret)
    buf = bytearray(arg) if isinstance(arg, bytes) else arg
    try:
        # mutate_flag: fcntl copies what the kernel wrote back into ``buf``
        return _fcntl_ioctl(fd, request, buf, True)
    except OSError as e:
        err = e.errno
    raise kernel_error(err, request_name(request),
                       summarize(arg) if arg_summary is None else arg_summary)


def fast_ioctl(fd: int, request: int, payload: bytearray) -> int:
    """ioctl(2) with an already packed argument, for the hot paths.

    What the kernel writes is copied back into ``payload`` (a bytearray: for
    ``bytes`` fcntl first fails a writable-buffer request, which costs an
    exception per call).
    Returns 0 on success, the errno on failure (build the error with
    ``raise_for`` so it reads as ``ioctl`` would have said it), and -1 when
    the fd is outside what fcntl accepts (use ``ioctl`` then).  No summary is
    built unless the call fails.
    """
    if not 0 <= fd <= _FCNTL_FD_MAX:
        return -1
    try:
        _fcntl_ioctl(fd, request, payload)
    except OSError as e:
        return e.errno or -1
    return 0


def raise_for(err: int, request: int, summary: object) -> None:
    """The typed error of a failed fast-path ioctl (callers that packed the argument themselves)."""
    raise kernel_error(err, request_name(request), summary)


def _libc_call(fd: int, request: int, c_arg: object, arg: Arg, arg_summary: object) -> int:
    ret = _libc_ioctl(fd, ctypes.c_ulong(request), c_arg)
    if ret < 0:
        summary = summarize(arg) if arg_summary is None else arg_summary
        raise kernel_error(ctypes.get_errno(), request_name(request), summary)
    return int(ret)
