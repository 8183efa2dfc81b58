"""include/uapi/linux/udmabuf.h."""

from __future__ import annotations

import ctypes

from conformance.uapi.ioc import IOW

UDMABUF_FLAGS_CLOEXEC = 0x01


class udmabuf_create(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("memfd", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
    ]


class udmabuf_create_item(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("memfd", ctypes.c_uint32),
        ("__pad", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
    ]


class udmabuf_create_list(ctypes.Structure):  # noqa: N801
    """The fixed head; ``list[]`` (a flexible array) follows it in memory."""

    _fields_ = [("flags", ctypes.c_uint32), ("count", ctypes.c_uint32)]


def create_list_buffer(flags: int, items: list[udmabuf_create_item]) -> ctypes.Array:
    """Head + items laid out contiguously, as the kernel reads them."""
    head = udmabuf_create_list(flags=flags, count=len(items))
    raw = bytes(head) + b"".join(bytes(i) for i in items)
    return ctypes.create_string_buffer(raw, len(raw))


UDMABUF_CREATE = IOW("u", 0x42, udmabuf_create)
# The number encodes only the head's size: items are read past it.
UDMABUF_CREATE_LIST = IOW("u", 0x43, udmabuf_create_list)
