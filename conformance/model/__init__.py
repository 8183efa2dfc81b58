"""The reference model: memory, a CPU cache, DMA devices and dma-buf exporters, in Python.

``conformance.targets.model.ModelTarget`` puts it behind the Target
interface.  Exporters are profiles (``profiles.py``): ``model:reference``,
the per-kind stand-ins used for lockstep comparison, per kernel release
range (``kernel_ranges.py``, chosen by ``stand_in_for``), and one
``model:faulty-<bug>`` per bug class.
"""

from __future__ import annotations

from conformance.model.kernel_ranges import CHANGES, ProfileChange, Release
from conformance.model.profiles import (
    FAULTY,
    KIND_PROFILES,
    PROFILES,
    REFERENCE,
    STAND_INS,
    ExporterProfile,
    catalogue,
    reference_exporter_for,
)
from conformance.model.stand_in import StandIn, StandInNote, choose, stand_in_for

__all__ = [
    "CHANGES",
    "FAULTY",
    "KIND_PROFILES",
    "PROFILES",
    "REFERENCE",
    "STAND_INS",
    "ExporterProfile",
    "ProfileChange",
    "Release",
    "StandIn",
    "StandInNote",
    "catalogue",
    "choose",
    "reference_exporter_for",
    "stand_in_for",
]
