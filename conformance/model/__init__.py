"""The reference model: memory, a CPU cache, DMA devices and dma-buf exporters, in Python.

``conformance.targets.model.ModelTarget`` puts it behind the Target
interface.  Exporters are profiles (``profiles.py``): ``model:reference``,
the per-kind stand-ins used for lockstep comparison
(``reference_exporter_for``) and one ``model:faulty-<bug>`` per bug class.
"""

from __future__ import annotations

from conformance.model.profiles import (
    FAULTY,
    KIND_PROFILES,
    PROFILES,
    REFERENCE,
    ExporterProfile,
    catalogue,
    reference_exporter_for,
    stand_in_for,
)

__all__ = [
    "FAULTY",
    "KIND_PROFILES",
    "PROFILES",
    "REFERENCE",
    "ExporterProfile",
    "catalogue",
    "reference_exporter_for",
    "stand_in_for",
]
