"""Loading and unloading a kernel module the host sent, with no file on the board.

The remote target pushes the probe's ``.ko`` over its pipe; the agent hands the
bytes to ``init_module(2)`` directly, so nothing is written to the board's file
systems and no kmod tools are needed there.  ``delete_module(2)`` takes it out
at the end of the session.  A module that was loaded before the session (the
board's own probe) is used and left as it was.
"""

from __future__ import annotations

import ctypes
import errno
import os

from conformance.errors import SetupError

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any, Dict, List

# init_module, delete_module: x86_64 has its own table; arm64 and riscv64 use the
# generic one (include/uapi/asm-generic/unistd.h); 32-bit arm has its own.
_SYSCALLS: Dict[str, tuple] = {
    "x86_64": (175, 176),
    "aarch64": (105, 106),
    "riscv64": (105, 106),
    "armv7l": (128, 129),
    "armv8l": (128, 129),
}
_O_NONBLOCK = 0o4000


def module_name(image: bytes) -> str:
    """The name in the module's ``.gnu.linkonce.this_module`` (``struct module``'s name).

    Found by the ``name=`` entry of ``.modinfo``, which kbuild writes for every module.
    """
    marker = b"\0name="
    at = image.find(marker)
    if at < 0:
        raise ValueError("not a kernel module: no name= in its .modinfo")
    end = image.index(b"\0", at + len(marker))
    return image[at + len(marker):end].decode()


def _syscall(number: int, *args: Any) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(number), *args)
    if ret < 0:
        return ctypes.get_errno()
    return 0


def _numbers() -> tuple:
    machine = os.uname().machine
    if machine not in _SYSCALLS:
        raise SetupError(f"the agent knows no init_module syscall number for {machine}: "
                         "load the probe on the board yourself (insmod) and omit --probe-ko")
    return _SYSCALLS[machine]


class Modules:
    """The modules this agent loaded, so that it can unload them and only them."""

    def __init__(self) -> None:
        self.loaded: List[str] = []

    def load(self, image: bytes, params: str = "") -> Dict[str, Any]:
        """Load ``image``; ``{"name", "loaded"}`` (``loaded`` False: it was there already)."""
        name = module_name(image)
        buf = ctypes.create_string_buffer(image, len(image))
        err = _syscall(_numbers()[0], buf, ctypes.c_ulong(len(image)),
                       ctypes.c_char_p(params.encode()))
        if err == errno.EEXIST:
            return {"name": name, "loaded": False}
        if err:
            why = {
                errno.ENOEXEC: "the module does not match this kernel (version magic, "
                               "architecture or a missing symbol: see the kernel log)",
                errno.EPERM: "loading modules needs root (CAP_SYS_MODULE) and modules "
                             "not locked down",
                errno.EKEYREJECTED: "the kernel requires signed modules",
            }.get(err, os.strerror(err))
            raise SetupError(f"init_module({name}) on the board: {why} "
                             f"({errno.errorcode.get(err, err)})")
        self.loaded.append(name)
        return {"name": name, "loaded": True}

    def unload(self, name: str) -> bool:
        """Unload a module this agent loaded; False if it did not load it."""
        if name not in self.loaded:
            return False
        err = _syscall(_numbers()[1], ctypes.c_char_p(name.encode()), ctypes.c_uint(_O_NONBLOCK))
        if err and err != errno.ENOENT:
            raise SetupError(f"delete_module({name}) on the board: {os.strerror(err)}")
        self.loaded.remove(name)
        return True

    def unload_all(self) -> None:
        for name in reversed(list(self.loaded)):
            try:
                self.unload(name)
            except SetupError:
                pass  # still in use: the kernel keeps it; nothing else can be done here
