"""Adapters from each exporter's uapi to one ``allocate`` + the common ``DmaBuf``."""

from conformance.exporters.base import DEFAULT_FD_FLAGS, Exporter
from conformance.exporters.discovery import discover, get_exporter, why_none_found
from conformance.exporters.dmabuf import BadRequest, DmaBuf, Mapping
from conformance.exporters.heap import HeapExporter, ProtectedHeapExporter
from conformance.exporters.ion import IonExporter
from conformance.exporters.udmabuf import UdmabufExporter
from conformance.exporters.vgem import VgemExporter

__all__ = [
    "DEFAULT_FD_FLAGS",
    "BadRequest",
    "DmaBuf",
    "Exporter",
    "HeapExporter",
    "IonExporter",
    "Mapping",
    "ProtectedHeapExporter",
    "UdmabufExporter",
    "VgemExporter",
    "discover",
    "get_exporter",
    "why_none_found",
]
