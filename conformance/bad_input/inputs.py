"""One bad input: what it calls, with which arguments, and how it crosses to the guest.

An ``Input`` names an operation (``op``) and its arguments in the order of
``FIELDS[op]``.  It travels as a plain JSON list ``[op, *args]`` (``encode``),
so a batch of ten thousand is one message to the guest agent; the category
(what rule the input breaks) stays on the host.  Arguments are ints, short
strings naming a kind of fd or pointer, and lists of those for udmabuf.

Symbolic, not raw, where the guest must make the object itself: an fd
(``FD_KINDS``), a user pointer (``ARGP_KINDS``), the direction of an ioctl
request (``DIRS``; the guest encodes the request with its own ``_IOC``
layout).  mmap flags and protections are the asm-generic values
(include/uapi/asm-generic/mman*.h), which x86, arm64 and riscv share.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from conformance.uapi import dma_buf, dma_heap, udmabuf
from conformance.uapi.ioc import _IOC, LAYOUT, IocLayout
from conformance.uapi.ioc import decode as ioc_decode

# -- the operations and their arguments --------------------------------------------
FIELDS: dict[str, tuple[str, ...]] = {
    # on a dma-buf of the exporter (the "fixture": rw, or ro = opened O_RDONLY)
    "sync": ("flags", "argp"),
    "dmabuf_ioctl": ("dir", "nr", "size"),  # type 'b', never a request dma-buf knows
    "set_name": ("request", "length", "nul_at", "where"),
    "export_sync_file": ("flags", "fd", "argp"),
    "import_sync_file": ("flags", "fd", "argp"),
    "mmap": ("fixture", "length", "offset", "prot", "flags"),
    "lseek": ("offset", "whence"),
    # on the heap's device
    "heap_alloc": ("dir", "nr", "size", "len", "fd", "fd_flags", "heap_flags", "argp"),
    # on /dev/udmabuf; a memfd is [kind, size, seals], an item [memfd index, offset, size]
    # (encoded as runs of equal items: item_runs)
    "udmabuf_ioctl": ("dir", "nr", "size"),
    "udmabuf_create": ("flags", "memfd", "offset", "size", "argp"),
    "udmabuf_list": ("flags", "count", "memfds", "items", "argp"),
    # on a DRM file of vgem opened for the batch (it holds no GEM handle)
    "prime_handle_to_fd": ("handle", "flags"),
    "prime_fd_to_handle": ("fd",),
    "gem_close": ("handle", "pad"),
    "create_dumb": ("height", "width", "bpp", "flags"),
}

# -- symbolic fds, pointers, request directions ---------------------------------------
# fds an input may name; the runner makes each (closed: a number not open;
# huge: past any fd table; neg: -1, or 0xffffffff where the field is a u32)
FD_KINDS = ("memfd", "closed", "huge", "neg", "pipe", "dmabuf", "device", "syncfile")
# user pointers: ok (a buffer with the argument), null, guard (an unmapped page)
ARGP_KINDS = ("ok", "null", "guard")
FIXTURES = ("rw", "ro")
SET_NAME_REQUESTS = ("A", "B", "legacy")
SET_NAME_WHERE = ("normal", "guard", "null")  # normal: NUL-terminated copy
DIRS = ("none", "r", "w", "rw")


def dir_value(symbol: str, layout: IocLayout = LAYOUT) -> int:
    """The ``_IOC`` direction bits of ``none``/``r``/``w``/``rw`` in ``layout``."""
    return {
        "none": layout.none,
        "r": layout.read,
        "w": layout.write,
        "rw": layout.read | layout.write,
    }[symbol]


def dir_symbol(value: int, layout: IocLayout = LAYOUT) -> str:
    for symbol in DIRS:
        if dir_value(symbol, layout) == value:
            return symbol
    raise ValueError(f"direction bits {value:#x} are none of {DIRS}")


def has_write(symbol: str) -> bool:
    """The request carries data in (``_IOC_WRITE``: the kernel copies from user)."""
    return "w" in symbol


def has_read(symbol: str) -> bool:
    """The request carries data out (``_IOC_READ``: the kernel copies to user)."""
    return "r" in symbol


def request(symbol: str, type_: str, nr: int, size: int, layout: IocLayout = LAYOUT) -> int:
    return _IOC(dir_value(symbol, layout), type_, nr, size, layout)


def _known(type_: str, numbers: tuple[int, ...]) -> frozenset[tuple[str, int, int]]:
    out = set()
    for number in numbers:
        d = ioc_decode(number)
        if d.type == ord(type_):
            out.add((dir_symbol(d.direction), d.nr, d.size))
    return frozenset(out)


# (dir, nr, size) of every request each file knows: a generated request that
# matches one is not a wrong request number (dma_buf_ioctl, udmabuf_ioctl: the
# whole number is compared; dma_heap_ioctl: only the nr, dma-heap.c:123-128)
DMA_BUF_REQUESTS = _known(
    "b",
    (
        dma_buf.DMA_BUF_IOCTL_SYNC,
        dma_buf.DMA_BUF_SET_NAME_A,
        dma_buf.DMA_BUF_SET_NAME_B,
        dma_buf.DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
        dma_buf.DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
    ),
)
UDMABUF_REQUESTS = _known("u", (udmabuf.UDMABUF_CREATE, udmabuf.UDMABUF_CREATE_LIST))
HEAP_ALLOC_SIZE = ioc_decode(dma_heap.DMA_HEAP_IOCTL_ALLOC).size
# the largest _IOC size every layout can carry (13 bits on powerpc, mips, ...)
MAX_IOC_SIZE = (1 << 13) - 1

_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1
_ALLOC_STRUCT = struct.Struct("=QIIQ")  # struct dma_heap_allocation_data
_VALID_FD_FLAGS = os.O_CLOEXEC | os.O_ACCMODE  # DMA_HEAP_VALID_FD_FLAGS


def heap_alloc_bytes(args: tuple | list) -> bytes:
    """The argument a heap_alloc input passes: the struct, cut or zero-padded to ``size``."""
    _d, _nr, size, length, fd, fd_flags, heap_flags, _argp = args
    raw = _ALLOC_STRUCT.pack(length & _U64, fd & _U32, fd_flags & _U32, heap_flags & _U64)
    return raw[:size].ljust(size, b"\0")


def heap_alloc_seen(args: tuple | list) -> tuple[str | None, tuple[int, int, int, int]]:
    """What dma_heap_ioctl_allocate sees of a heap_alloc input, and the rule it breaks.

    ``(why, (len, fd, fd_flags, heap_flags))``: the kernel copies the first
    ``size`` bytes when the request writes (else none) and zero-fills up to
    the struct's size (dma-heap.c:133-154 of 6.1); ``why`` names the first
    field dma_heap_ioctl_allocate refuses (dma-heap.c:77-88), None if none.
    """
    d, size = args[0], args[2]
    seen = heap_alloc_bytes(args)[: size if has_write(d) else 0]
    seen = seen.ljust(_ALLOC_STRUCT.size, b"\0")[: _ALLOC_STRUCT.size]
    length, fd, fd_flags, heap_flags = _ALLOC_STRUCT.unpack(seen)
    fields = (length, fd, fd_flags, heap_flags)
    if fd:
        return "fd", fields
    if fd_flags & ~_VALID_FD_FLAGS:
        return "fd_flags", fields
    if heap_flags:
        return "heap_flags", fields
    if (length + 4095) & ~4095 & _U64 == 0:
        return "len", fields
    return None, fields


def name_bytes(length: int, nul_at: int) -> bytes:
    """The bytes a set_name input passes (the runner may add a terminating NUL)."""
    name = bytearray(b"n" * length)
    if 0 <= nul_at < length:
        name[nul_at] = 0
    return bytes(name)


# -- mmap: asm-generic values -----------------------------------------------------------
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 0x01, 0x02, 0x03, 0x0F
MAP_GROWSDOWN, MAP_DENYWRITE, MAP_EXECUTABLE = 0x0100, 0x0800, 0x1000
MAP_NORESERVE, MAP_NONBLOCK, MAP_STACK = 0x4000, 0x10000, 0x20000
MAP_HUGETLB, MAP_SYNC, MAP_UNINITIALIZED = 0x40000, 0x80000, 0x4000000
# include/linux/mman.h of 6.1.192: what MAP_SHARED keeps and MAP_SHARED_VALIDATE
# accepts (the arch-only MAP_32BIT and the MAP_HUGE_* size bits left out:
# no generated input sets them)
LEGACY_MAP_MASK = (
    MAP_SHARED | MAP_PRIVATE | 0x10 | 0x20 | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_UNINITIALIZED
    | MAP_GROWSDOWN | 0x2000 | MAP_NORESERVE | 0x8000 | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB
    | (21 << 26) | (30 << 26)
)  # fmt: skip
# bits no asm-generic mmap flag uses and LEGACY_MAP_MASK leaves out
UNKNOWN_MAP_BITS = (0x80, 0x200, 0x400, 0x200000, 0x400000, 0x800000, 0x1000000, 0x2000000)
# legacy flags that change nothing for a dma-buf mapping
HARMLESS_MAP_FLAGS = (MAP_NORESERVE, MAP_STACK, MAP_DENYWRITE, MAP_EXECUTABLE, MAP_UNINITIALIZED)
_MAP_NAMES = {
    MAP_GROWSDOWN: "GROWSDOWN", MAP_DENYWRITE: "DENYWRITE", MAP_EXECUTABLE: "EXECUTABLE",
    MAP_NORESERVE: "NORESERVE", MAP_NONBLOCK: "NONBLOCK", MAP_STACK: "STACK",
    MAP_HUGETLB: "HUGETLB", MAP_SYNC: "SYNC", MAP_UNINITIALIZED: "UNINITIALIZED",
}  # fmt: skip
_MAP_TYPES = {MAP_SHARED: "SHARED", MAP_PRIVATE: "PRIVATE", MAP_SHARED_VALIDATE: "SHARED_VALIDATE"}


def show_map_flags(flags: int) -> str:
    kind = flags & MAP_TYPE
    parts = [_MAP_TYPES.get(kind, f"type{kind}")]
    rest = flags & ~MAP_TYPE
    for bit, name in _MAP_NAMES.items():
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(f"{rest:#x}")
    return "MAP_" + "|".join(parts)


def show_prot(prot: int) -> str:
    names = [n for bit, n in ((PROT_READ, "READ"), (PROT_WRITE, "WRITE"), (PROT_EXEC, "EXEC"))
             if prot & bit]  # fmt: skip
    rest = prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)
    if rest:
        names.append(f"{rest:#x}")
    return "PROT_" + "|".join(names) if names else "PROT_NONE"


# -- the input ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One generated input.  ``must_fail``: it breaks a rule by construction, so an
    exporter that accepts it is wrong whatever the model says."""

    category: str
    op: str
    args: tuple[Any, ...]
    must_fail: bool = True

    def __post_init__(self) -> None:
        if self.op not in FIELDS:
            raise ValueError(f"unknown bad-input operation {self.op!r}")
        if len(self.args) != len(FIELDS[self.op]):
            raise ValueError(f"{self.op} takes {FIELDS[self.op]}, got {self.args!r}")

    def encode(self) -> list[Any]:
        args = _plain(self.args)
        if self.op == "udmabuf_list":
            at = FIELDS[self.op].index("items")
            args[at] = item_runs(args[at])
        return [self.op, *args]

    def arg(self, name: str) -> Any:
        return self.args[FIELDS[self.op].index(name)]

    def describe(self) -> str:
        """``mmap(fixture=rw, length=4097, offset=0, prot=PROT_READ, flags=MAP_PRIVATE)``."""
        shown = []
        for name, value in zip(FIELDS[self.op], self.args):
            if name == "prot":
                text = show_prot(value)
            elif name == "flags" and self.op == "mmap":
                text = show_map_flags(value)
            elif isinstance(value, int) and (value > 4096 or value < -4096 or "flags" in name):
                text = hex(value)
            elif isinstance(value, (list, tuple)) and len(value) > 4:
                same = all(v == value[0] for v in value)
                text = (f"[{value[0]}] * {len(value)}" if same
                        else f"[{', '.join(map(str, value[:3]))}, ... ({len(value)} in all)]")
            else:
                text = str(value)
            shown.append(f"{name}={text}")
        return f"{self.op}({', '.join(shown)})"


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# A udmabuf item list crosses the channel as runs of equal items, ``[count, memfd index,
# offset, size]``.  The list_limit inputs hold 1024 equal items: as plain JSON, 7.5 KB
# per input that a TCG guest parsed and packed item by item, 57 ms per valid input and
# 27 ms per refused one; as runs, 2.3 ms and 9.7 ms (60 of each, one guest).
# ``decode`` gives back the list, each run one item object repeated.
def item_runs(items: list[list[int]]) -> list[list[int]]:
    runs: list[list[int]] = []
    for item in items:
        if runs and runs[-1][1:] == item:
            runs[-1][0] += 1
        else:
            runs.append([1, *item])
    return runs


def _items(runs: list[Any]) -> list[list[int]]:
    items: list[list[int]] = []
    for run in runs:
        if not isinstance(run, list) or len(run) != 4 or not isinstance(run[0], int) or run[0] < 1:
            raise ValueError(f"a udmabuf item run is [count >= 1, memfd, offset, size]: {run!r}")
        items += [run[1:]] * run[0]
    return items


def decode(raw: list[Any]) -> tuple[str, list[Any]]:
    """``(op, args)`` of an encoded input, checked against ``FIELDS``."""
    if not isinstance(raw, (list, tuple)) or not raw or raw[0] not in FIELDS:
        raise ValueError(f"not an encoded bad input: {raw!r}")
    op, args = str(raw[0]), list(raw[1:])
    if len(args) != len(FIELDS[op]):
        raise ValueError(f"{op} takes {FIELDS[op]}, got {args!r}")
    if op == "udmabuf_list":
        at = FIELDS[op].index("items")
        if not isinstance(args[at], list):
            raise ValueError(f"udmabuf_list's items travel as a list of runs, got {args[at]!r}")
        args[at] = _items(args[at])
    return op, args
