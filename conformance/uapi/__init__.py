"""Faithful mirror of the kernel's dma-buf uapi headers (ctypes structs + request numbers).

Behaviour lives one layer up (``conformance.exporters``); this package only
says what the headers say, and ``tests/test_uapi_numbers.py`` checks it
against the C headers.
"""

from conformance.uapi.ioctl import ioctl, request_name
from conformance.uapi.requests import Request

__all__ = ["Request", "ioctl", "request_name"]
