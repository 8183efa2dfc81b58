"""The reference model as a target: the dma-buf uapi of a correct 6.1 kernel over model exporters.

User-space semantics follow drivers/dma-buf/dma-buf.c and dma-heap.c of 6.1
(errnos in the method comments); kernel-side operations go to the model's
built-in importer.  Each part of the emulation is its own module under
``conformance.targets.model_parts``: the fd table (``fds``), the dma-buf and
dma-heap ioctls (``uapi``), user mappings and mremap (``mappings``), the
kernel-side importer (``importer``), udmabuf_create (``udmabuf``), DRM PRIME
(``prime``) and fork (``fork``).  This module puts them together and adds
what a target reports about itself.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import platform

from conformance.errors import SetupError, kernel_error
from conformance.model.dma import DmaApi
from conformance.model.exporter import Attachment, Exporter, OwnershipViolation
from conformance.model.memory import PAGE_SIZE, Cache, CacheOp, PhysicalMemory
from conformance.model.profiles import PROFILES, ExporterProfile
from conformance.records import (
    INSTRUMENTS,
    STANDARD_DEVICES,
    DeviceSpec,
    Direction,
    ExporterInfo,
    Instrument,
    KernelHealth,
    SgSegment,
    TargetInfo,
)
from conformance.targets.base import Target
from conformance.targets.model_parts.fds import UnknownHandle
from conformance.targets.model_parts.fork import ForkEmulation
from conformance.targets.model_parts.importer import KernelImporter, UnknownDevice
from conformance.targets.model_parts.prime import PrimeEmulation
from conformance.targets.model_parts.uapi import DMA_BUF_NAME_LEN, DmaBufUapi
from conformance.targets.model_parts.udmabuf import (
    F_SEAL_FUTURE_WRITE,
    F_SEAL_SHRINK,
    F_SEAL_WRITE,
    UDMABUF_LIST_LIMIT,
    UDMABUF_PAGE_LIMIT,
    UdmabufEmulation,
)

__all__ = [
    "DMA_BUF_NAME_LEN",
    "F_SEAL_FUTURE_WRITE",
    "F_SEAL_SHRINK",
    "F_SEAL_WRITE",
    "MiB",
    "PLATFORMS",
    "UDMABUF_LIST_LIMIT",
    "UDMABUF_PAGE_LIMIT",
    "ModelTarget",
    "UnknownDevice",
    "UnknownHandle",
]

MiB = 1 << 20


# How DMA behaves on the machine a real target runs on, so that the shadow
# model of a lockstep check predicts what that machine can show:
#   model          non-coherent arm64-style devices, aliasing cache (the default)
#   swiotlb-bounce x86 guest booted with swiotlb=force: the non-coherent probe
#                  devices see a bounce copy that moves at map/unmap/sync, the
#                  CPU cache is physically indexed, and every map bounces
#   coherent       x86 without bouncing: every device snoops the CPU cache
#   noncoherent-pipt  an arm64 board: real CMOs, physically indexed caches
PLATFORMS: dict[str, dict[str, bool]] = {
    "model": {},
    "swiotlb-bounce": {"aliasing": False, "bounce_on_map": True},
    "coherent": {"aliasing": False, "all_coherent": True},
    "noncoherent-pipt": {"aliasing": False},
}


class ModelTarget(
    DmaBufUapi,
    ForkEmulation,
    KernelImporter,
    UdmabufEmulation,
    PrimeEmulation,
    Target,
):
    """The in-process reference model.

    ``aliasing``: the vmap alias has its own cache lines (VIPT/VIVT), as on
    the CPUs seed 003 is about.  ``speculative``: the CPU refills a buffer's
    lines right after handing it to a device (at map and sync_for_device), so
    every missing invalidate shows as stale data.  Both default on so that
    each faulty exporter's bug is observable through target operations.
    ``vmalloc_bytes`` bounds kernel mappings (a 32-bit-like budget, so the
    seed 001 mapping failure can happen); ``ram_bytes`` bounds allocations.
    """

    name = "model"

    @classmethod
    def for_platform(cls, platform: str) -> ModelTarget:
        """A model that behaves like the named DMA platform (see ``PLATFORMS``)."""
        if platform not in PLATFORMS:
            known = ", ".join(PLATFORMS)
            raise SetupError(f"unknown DMA platform {platform!r}; the model knows: {known}")
        return cls(**PLATFORMS[platform])

    def __init__(
        self,
        *,
        aliasing: bool = True,
        speculative: bool = True,
        ram_bytes: int = 256 * MiB,
        cache_bytes: int = 4 * MiB,
        vmalloc_bytes: int = 32 * MiB,
        list_profiles: bool = False,
        fd_limit: int = 1024,
        bounce_on_map: bool = False,
        all_coherent: bool = False,
    ) -> None:
        # The reference-<kind> stand-ins copy upstream drivers, shortcuts included
        # (udmabuf and vgem map with SKIP_CPU_SYNC), so they are lockstep shadows,
        # not exporters to certify: listed only on request, always allocatable.
        self.list_profiles = list_profiles
        self.fd_limit = fd_limit
        self.aliasing = aliasing
        self.speculative = speculative
        self._devices = {
            d.name: dataclasses.replace(d, coherent=True) if all_coherent else d
            for d in STANDARD_DEVICES
        }
        self.memory_bytes = ram_bytes
        self.memory = PhysicalMemory(ram_bytes // PAGE_SIZE)
        self.cache = Cache(self.memory, cache_bytes // PAGE_SIZE, aliasing)
        self.dma = DmaApi(self.cache, speculative, set(self._devices), bounce_on_map)
        self._warnings: list[str] = []
        self._violations: list[OwnershipViolation] = []
        self.exporter = Exporter(
            self.memory,
            self.cache,
            self.dma,
            vmalloc_bytes,
            self._warnings.append,
            self._violations.append,
        )
        self._api_errors_seen = 0
        # next() on a count is atomic under the GIL: threaded cases get distinct handles
        self._handles = itertools.count(4)
        self._fds = {}
        self._mappings = {}
        self._attachments = {}
        self._vmaps = {}
        self._kmaps = {}
        self._mapping_base = {}
        self._sync_files = set()
        self._live = set()  # ino of every buffer not yet released
        self._buffers = {}
        self._memfds = {}  # udmabuf_create buffer -> its memfds

    # -- the target itself -------------------------------------------------------
    def info(self) -> TargetInfo:
        return TargetInfo(
            target="model",
            kernel="model (6.1 dma-buf semantics)",
            machine=platform.machine(),
            probe_loaded=True,
            extra={
                "aliasing_cache": str(self.aliasing),
                "speculative_fill": str(self.speculative),
                "mem_total_bytes": str(self.memory_bytes),
            },
            page_size=PAGE_SIZE,
            # The model sees everything it does: each instrument is built in.
            instruments={
                name: Instrument(True, "built into the reference model") for name in INSTRUMENTS
            },
        )

    def exporters(self) -> list[ExporterInfo]:
        return [
            ExporterInfo(name, "model", p.description)
            for name, p in PROFILES.items()
            if self.list_profiles or not p.name.startswith("reference-")
        ]

    def devices(self) -> list[DeviceSpec]:
        return list(self._devices.values())

    def health(self) -> KernelHealth:
        warnings = self._warnings[:]
        errors = self.dma.api_errors[self._api_errors_seen :]
        self._warnings.clear()
        self._api_errors_seen = len(self.dma.api_errors)
        lines = [f"WARNING: {w}" for w in warnings] + [f"DMA-API: {e}" for e in errors]
        return KernelHealth(len(warnings), len(errors), "\n".join(lines))

    def close_all(self) -> None:
        for h in list(self._kmaps):
            self.kunmap(h)
        for h, v in list(self._vmaps.items()):
            if v.generation == v.buffer.vmap_generation:
                self.vunmap(h)
            else:
                self._vmaps.pop(h)
                self._put(v.buffer)
        for h, a in list(self._attachments.items()):
            while a.maps > 0:
                self.unmap_attachment(h, a.cached_dir if a.cached else self._last_dir(a))
            self.detach(h)
        for h in list(self._mappings):
            self.munmap(h)
        for h in list(self._fds):
            self.close(h)
        self._memfds.clear()
        self._sync_files.clear()
        # A fresh slate for the next case: what teardown provoked is not its doing.
        self._warnings.clear()
        self._violations.clear()
        self.dma.events.clear()
        self.dma.cmo.clear()
        self._api_errors_seen = len(self.dma.api_errors)

    @staticmethod
    def _last_dir(a: Attachment) -> Direction:
        return a.sgt.direction if a.sgt is not None and a.sgt.mapped else Direction.BIDIRECTIONAL

    # -- model-only views -------------------------------------------------------------
    def cmo_log(self, *, clear: bool = True) -> list[CacheOp]:
        """Every cache-maintenance operation (clean/invalidate/flush, range, mapping, cause)."""
        log = self.dma.cmo[:]
        if clear:
            self.dma.cmo.clear()
        return log

    def ownership_violations(self, *, clear: bool = True) -> list[OwnershipViolation]:
        """Accesses by a non-owner (CPU while a non-coherent device owns, device while CPU owns)."""
        out = self._violations[:]
        if clear:
            self._violations.clear()
        return out

    def ownership(self, buf: int) -> str:
        """The buffer's seed 003 state: ``un-owned``, ``cpu`` or ``device:<names>``."""
        b = self._fd(buf, "ownership").buffer
        owners = [a.device.name for a in b.attachments if a.sgt and a.sgt.owner == "device"]
        if owners:
            return "device:" + ",".join(owners)
        if any(a.sgt is not None for a in b.attachments):
            return "cpu"
        return "un-owned"

    def profile_of(self, buf: int) -> ExporterProfile:
        return self._fd(buf, "profile_of").buffer.profile

    # -- issue 11: the page account (/proc/meminfo) and an early free at the last fd -------
    def meminfo(self) -> dict[str, int]:
        """The model's page account as /proc/meminfo fields (kB).

        Every page the model hands out (buffers, udmabuf's memfds) is used
        until its exporter gives it back, so ``MemFree`` moves by exactly
        what release returns.  The model has no page cache, slab or pools:
        ``MemAvailable`` is ``MemFree`` and the reclaimable fields are 0.
        """
        kb = PAGE_SIZE // 1024
        free = (self.memory.total_pages - self.memory.used_pages) * kb
        return {
            "MemTotal": self.memory.total_pages * kb,
            "MemFree": free,
            "MemAvailable": free,
            "KReclaimable": 0,
            "SReclaimable": 0,
            "PerCpuFree": 0,
        }

    def close(self, buf: int) -> None:
        """close(2); a ``release_on_last_fd`` exporter frees the pages with the last fd.

        The buffer itself lives on while importers hold it (their references
        are counted as on a kernel); only its pages go back to the allocator,
        which hands them out again first: what a reference imbalance (an
        extra put) in a real exporter leads to.
        """
        b = self._fd(buf, "close").buffer
        super().close(buf)
        last_fd = not any(fd.buffer is b for fd in self._fds.values())
        if b.profile.release_on_last_fd and last_fd and b.refs > 0 and b.backing != []:
            self.memory.free(b.pages if b.backing is None else b.backing)
            b.backing = []  # release will find nothing left to free

    # -- issue 11: an attachment's segments now (digests and fills: the base class's) ------
    def attachment_segments(self, attachment: int) -> list[SgSegment]:
        a = self._get(self._attachments, attachment, "attachment")
        if a.maps <= 0 or a.sgt is None:
            raise kernel_error(errno.EINVAL, "attachment_segments", "attachment not mapped")
        # the table as it is now: a table another attachment's unmap tore down has none
        return list(a.sgt.segments)

    # -- issue 11 (bad input at volume): the model's answers, from the 6.1 code it stands for
    def bad_input_batch(self, exporter: str, inputs: list[list]) -> list[int]:
        from conformance.targets.model_parts.bad_input import run_batch

        return run_batch(self, exporter, inputs)
