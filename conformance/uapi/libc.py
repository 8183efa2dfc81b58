"""The C library for ctypes calls that must see the kernel's errno."""

from __future__ import annotations

import ctypes


def load_libc() -> ctypes.CDLL:
    """A fresh handle (its functions' argtypes are the caller's own) with errno kept."""
    # dlopen(NULL) is the interpreter's own namespace, which holds its libc whatever
    # the file is called (glibc's libc.so.6, musl's libc.musl-<arch>.so.1).
    # ctypes.util.find_library would import subprocess, shutil and tempfile and may
    # run ldconfig or gcc: 0.4 s of a TCG guest's boot.
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "ioctl"):  # a statically linked interpreter: no dlopen(NULL) symbols
        from ctypes.util import find_library

        libc = ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)
    return libc
