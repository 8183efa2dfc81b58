"""Targets: where the kernel is.  ``model``, ``local`` and ``qemu`` share one interface."""

from conformance.targets.base import OPERATIONS, Target

__all__ = ["OPERATIONS", "Target"]
