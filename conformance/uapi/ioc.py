"""The ``_IOC`` request-number encoding of include/uapi/asm-generic/ioctl.h.

x86_64, arm64, riscv, arm and most others use the generic layout (nr 8 bits,
type 8, size 14, dir 2; write=1, read=2).  powerpc, mips, sparc and alpha use a
13-bit size and a 3-bit dir with different direction values
(arch/*/include/uapi/asm/ioctl.h).  The layout is data, picked once from the
machine name, so a new arch is one table row.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Union

    SizeSpec = Union[int, type]  # a byte count or a ctypes type


@dataclass(frozen=True)
class IocLayout:
    """Field widths and direction values of one architecture's ``_IOC``."""

    size_bits: int
    dir_bits: int
    none: int
    write: int
    read: int
    nr_bits: int = 8
    type_bits: int = 8

    @property
    def nr_shift(self) -> int:
        return 0

    @property
    def type_shift(self) -> int:
        return self.nr_shift + self.nr_bits

    @property
    def size_shift(self) -> int:
        return self.type_shift + self.type_bits

    @property
    def dir_shift(self) -> int:
        return self.size_shift + self.size_bits


GENERIC = IocLayout(size_bits=14, dir_bits=2, none=0, write=1, read=2)
# arch/{powerpc,mips,sparc,alpha}/include/uapi/asm/ioctl.h
THIRTEEN_BIT = IocLayout(size_bits=13, dir_bits=3, none=1, write=4, read=2)

_LAYOUT_BY_MACHINE_PREFIX: tuple[tuple[str, IocLayout], ...] = (
    ("ppc", THIRTEEN_BIT),
    ("powerpc", THIRTEEN_BIT),
    ("mips", THIRTEEN_BIT),
    ("sparc", THIRTEEN_BIT),
    ("alpha", THIRTEEN_BIT),
)


def layout_for(machine: str) -> IocLayout:
    """The ``_IOC`` layout of ``machine`` (``uname -m``)."""
    for prefix, layout in _LAYOUT_BY_MACHINE_PREFIX:
        if machine.startswith(prefix):
            return layout
    return GENERIC


LAYOUT = layout_for(os.uname().machine)


def sizeof(spec: SizeSpec) -> int:
    return spec if isinstance(spec, int) else ctypes.sizeof(spec)


def _IOC(direction: int, type_: int | str, nr: int, size: int, layout: IocLayout = LAYOUT) -> int:  # noqa: N802 - the kernel's name
    t = ord(type_) if isinstance(type_, str) else type_
    if not 0 <= size < (1 << layout.size_bits):
        raise ValueError(f"ioctl size {size} does not fit in {layout.size_bits} bits")
    if not 0 <= nr < (1 << layout.nr_bits) or not 0 <= t < (1 << layout.type_bits):
        raise ValueError(f"ioctl type {t!r} / nr {nr} out of range")
    return (
        (direction << layout.dir_shift)
        | (size << layout.size_shift)
        | (t << layout.type_shift)
        | (nr << layout.nr_shift)
    )


def IO(type_: int | str, nr: int, layout: IocLayout = LAYOUT) -> int:  # noqa: N802
    return _IOC(layout.none, type_, nr, 0, layout)


def IOR(type_: int | str, nr: int, spec: SizeSpec, layout: IocLayout = LAYOUT) -> int:  # noqa: N802
    return _IOC(layout.read, type_, nr, sizeof(spec), layout)


def IOW(type_: int | str, nr: int, spec: SizeSpec, layout: IocLayout = LAYOUT) -> int:  # noqa: N802
    return _IOC(layout.write, type_, nr, sizeof(spec), layout)


def IOWR(type_: int | str, nr: int, spec: SizeSpec, layout: IocLayout = LAYOUT) -> int:  # noqa: N802
    return _IOC(layout.read | layout.write, type_, nr, sizeof(spec), layout)


@dataclass(frozen=True)
class Decoded:
    direction: int
    type: int
    nr: int
    size: int


def decode(request: int, layout: IocLayout = LAYOUT) -> Decoded:
    """Split a request number into its fields (for naming unknown variants)."""

    def field(shift: int, bits: int) -> int:
        return (request >> shift) & ((1 << bits) - 1)

    return Decoded(
        direction=field(layout.dir_shift, layout.dir_bits),
        type=field(layout.type_shift, layout.type_bits),
        nr=field(layout.nr_shift, layout.nr_bits),
        size=field(layout.size_shift, layout.size_bits),
    )


def with_size(request: int, size: int, layout: IocLayout = LAYOUT) -> int:
    """``request`` re-encoded for an argument of ``size`` bytes (same dir/type/nr)."""
    d = decode(request, layout)
    return _IOC(d.direction, d.type, d.nr, size, layout)
