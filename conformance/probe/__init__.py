"""The probe importer: Python side of qemu/probe/dmabuf_probe.ko.

``uapi`` mirrors the module's header (qemu/probe/dmabuf_probe.h); ``client``
is what targets call.
"""

from __future__ import annotations

from conformance.probe.client import BUILD_HINT, DEFAULT_PATH, ProbeClient

__all__ = ["BUILD_HINT", "DEFAULT_PATH", "ProbeClient"]
