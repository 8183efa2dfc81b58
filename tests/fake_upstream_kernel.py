"""A pytest plugin for tests/test_stand_in_cases.py: ``--target=model`` plays a real kernel.

The "real" kernel offers one exporter, ``udmabuf``, written by hand from
udmabuf.c of 6.12.118 (vmap_udmabuf/vunmap_udmabuf; mmap_udmabuf sets
VM_PFNMAP|VM_DONTEXPAND, so mremap growth is EFAULT), on an x86 guest's DMA
(swiotlb bounce).  It reports kernel release ``$STANDIN_KERNEL`` so the run's
lockstep shadow uses that release's stand-in.  Not a stand-in from the table
under test: the point is to see whether the table's choice agrees with it.
"""

from __future__ import annotations

import dataclasses
import os

import conformance.targets.model as model_target
from conformance.model import KIND_PROFILES, PROFILES
from conformance.model.profiles import ExporterProfile
from conformance.records import ExporterInfo, TargetInfo

UDMABUF_612 = dataclasses.replace(
    KIND_PROFILES["udmabuf"],
    name="hand-written-udmabuf-6.12",
    has_vmap=True,
    vmap_cmo=False,
    mremap_grow="efault",
)
PROFILES[UDMABUF_612.exporter_name] = UDMABUF_612
_ModelTarget = model_target.ModelTarget


class UpstreamKernel(_ModelTarget):
    """The real target when built plainly; a shadow when built by ``for_platform``."""

    def __init__(self, *, real: bool = True, **kwargs) -> None:
        if real:
            kwargs.update(aliasing=False, bounce_on_map=True)
        super().__init__(**kwargs)
        self.real = real

    @classmethod
    def for_platform(cls, platform: str) -> _ModelTarget:
        return cls(real=False, **model_target.PLATFORMS[platform])

    def info(self) -> TargetInfo:
        info = super().info()
        if not self.real:
            return info
        extra = dict(info.extra, dma_platform="swiotlb-bounce")
        kernel = os.environ["STANDIN_KERNEL"]
        return dataclasses.replace(info, target="local", kernel=kernel, extra=extra)

    def exporters(self) -> list[ExporterInfo]:
        if not self.real:
            return super().exporters()
        return [ExporterInfo("udmabuf", "udmabuf", "udmabuf.c of 6.12.118, by hand")]

    def allocate(self, exporter: str, size: int, **kwargs) -> int:
        name = UDMABUF_612.exporter_name if exporter == "udmabuf" else exporter
        return super().allocate(name, size, **kwargs)

    def _profile_of_kind(self, exporter: str, kind: str, op: str) -> ExporterProfile:
        if exporter == "udmabuf":
            return UDMABUF_612
        return super()._profile_of_kind(exporter, kind, op)


model_target.ModelTarget = UpstreamKernel  # type: ignore[misc]
