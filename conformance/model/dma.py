"""The DMA API as a non-coherent arm64-style platform implements it.

``dma_map_sg``/``dma_sync_sg_for_device`` clean the linear map's lines (all
directions, as arm64 does since 5.x); ``dma_unmap_sg``/``dma_sync_sg_for_cpu``
invalidate them unless the direction is TO_DEVICE.  A coherent device gets no
CMO at all.  DMA_ATTR_SKIP_CPU_SYNC suppresses the CMO but not the call.

Every call is logged as a ``DmaEvent`` (the vocabulary the probe module
reports), the CMOs as ``CacheOp``s, and ownership follows the seed 003 states:
a table starts un-owned, is device-owned after map/sync_for_device and
CPU-owned after sync_for_cpu/unmap.  Misuse that ``CONFIG_DMA_API_DEBUG``
would report (unmap or sync of an unmapped table, a sync direction other than
the map's, a segment longer than the device allows) is counted separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.model.memory import COLOUR_NAMES, LINEAR, PAGE_SIZE, VMAP, Cache, CacheOp
from conformance.records import EXPORTER_LOG, DeviceSpec, Direction, DmaEvent, SgSegment

UNOWNED = "un-owned"
CPU_OWNED = "cpu"
DEVICE_OWNED = "device"


@dataclass
class SgTable:
    """An sg table the exporter built for one device: page runs and, once mapped, DMA segments."""

    device: DeviceSpec
    pages: list[int]
    runs: list[tuple[int, int]]  # (first pfn, bytes) per sg entry
    mapped: bool = False
    direction: Direction = Direction.NONE
    owner: str = UNOWNED
    segments: list[SgSegment] = field(default_factory=list)
    buffer: Any = None  # the exporter's buffer, for its vmap alias (speculative fills)

    @property
    def length(self) -> int:
        return sum(n for _, n in self.runs)


def build_runs(pages: list[int], max_segment: int = 0, boundary: int = 0) -> list[tuple[int, int]]:
    """sg entries over ``pages``: physically contiguous pages merged, split at the limits given."""
    runs: list[tuple[int, int]] = []
    start = prev = pages[0]
    count = 1
    for pfn in pages[1:]:
        if pfn == prev + 1:
            count += 1
        else:
            runs.append((start, count * PAGE_SIZE))
            start, count = pfn, 1
        prev = pfn
    runs.append((start, count * PAGE_SIZE))
    if not max_segment and not boundary:
        return runs
    out: list[tuple[int, int]] = []
    for pfn, length in runs:
        addr = pfn * PAGE_SIZE
        end = addr + length
        while addr < end:
            step = end - addr
            if max_segment:
                step = min(step, max_segment)
            if boundary:
                step = min(step, boundary - (addr % boundary))
            out.append((addr // PAGE_SIZE, step))
            addr += step
    return out


class DmaApi:
    """DMA-API calls on model devices, with their CMOs, event log and ownership."""

    def __init__(
        self, cache: Cache, speculative: bool, visible: set[str], bounce_on_map: bool = False
    ) -> None:
        self.cache = cache
        self.speculative = speculative
        # swiotlb since the 5.17 info-leak fix copies the pages into the bounce
        # slot at every map, DMA_ATTR_SKIP_CPU_SYNC or not: a map always "cleans".
        self.bounce_on_map = bounce_on_map
        self.visible = visible  # devices whose calls dma_events() reports (the probe's)
        self.events: list[DmaEvent] = []
        self.cmo: list[CacheOp] = []
        self.api_errors: list[str] = []
        self.keep_cmo_log = True

    # -- the four calls ----------------------------------------------------------
    def map_sg(self, sgt: SgTable, direction: Direction, skip_cpu_sync: bool = False) -> None:
        dev = sgt.device
        self._event(dev, "map_sg", direction, sgt.length, skip_cpu_sync)
        if sgt.mapped:
            self.api_errors.append(f"dma_map_sg on {dev.name}: table already mapped")
        segments = []
        for pfn, length in sgt.runs:
            addr = pfn * PAGE_SIZE
            if dev.max_segment and length > dev.max_segment:
                self.api_errors.append(
                    f"dma_map_sg on {dev.name}: mapping sg segment longer ({length}) "
                    f"than device claims to support ({dev.max_segment})"
                )
            if dev.segment_boundary and (
                addr // dev.segment_boundary != (addr + length - 1) // dev.segment_boundary
            ):
                self.api_errors.append(
                    f"dma_map_sg on {dev.name}: mapping sg segment across boundary "
                    f"{dev.segment_boundary:#x}"
                )
            segments.append(SgSegment(addr, length))
        sgt.segments = segments
        sgt.mapped = True
        sgt.direction = direction
        if not skip_cpu_sync or self.bounce_on_map:
            self._for_device(sgt, direction, f"dma_map_sg({dev.name})")
        sgt.owner = DEVICE_OWNED
        self._speculate(sgt)

    def unmap_sg(self, sgt: SgTable, direction: Direction, skip_cpu_sync: bool = False) -> None:
        dev = sgt.device
        self._event(dev, "unmap_sg", direction, sgt.length, skip_cpu_sync)
        if not sgt.mapped:
            self.api_errors.append(f"dma_unmap_sg on {dev.name}: table not mapped")
            return
        if direction != sgt.direction:
            self.api_errors.append(
                f"dma_unmap_sg on {dev.name}: direction {direction.name} differs from "
                f"the map's {sgt.direction.name}"
            )
        if not skip_cpu_sync:
            self._for_cpu(sgt, direction, f"dma_unmap_sg({dev.name})")
        sgt.mapped = False
        sgt.owner = CPU_OWNED
        sgt.segments = []

    # ``runs``: the sg entries the call is given when they are not the whole table
    # (an exporter that syncs part of it, issue 11); the event's length counts them.
    def sync_for_cpu(self, sgt: SgTable, direction: Direction, runs: list | None = None) -> None:
        dev = sgt.device
        self._event(dev, "sync_sg_for_cpu", direction, _length(sgt, runs), False)
        if not self._check_sync(sgt, direction, "dma_sync_sg_for_cpu"):
            return
        self._for_cpu(sgt, direction, f"dma_sync_sg_for_cpu({dev.name})", runs)
        sgt.owner = CPU_OWNED

    def sync_for_device(
        self, sgt: SgTable, direction: Direction, runs: list | None = None
    ) -> None:
        dev = sgt.device
        self._event(dev, "sync_sg_for_device", direction, _length(sgt, runs), False)
        if not self._check_sync(sgt, direction, "dma_sync_sg_for_device"):
            return
        self._for_device(sgt, direction, f"dma_sync_sg_for_device({dev.name})", runs)
        sgt.owner = DEVICE_OWNED
        self._speculate(sgt)

    def exporter_op(self, op: str, direction: Direction, length: int) -> None:
        """The dma-buf core called one of the exporter's own ops (vmap, vunmap,
        begin_cpu_access, end_cpu_access): logged as the probe's kprobes on
        ``dmabuf->ops`` log it, under ``EXPORTER_LOG``."""
        self.events.append(DmaEvent(EXPORTER_LOG, op, Direction(direction), length))

    # -- helpers -----------------------------------------------------------------
    def _event(self, dev: DeviceSpec, op: str, direction: Direction, length: int, skip: bool):
        if dev.name in self.visible:
            self.events.append(DmaEvent(dev.name, op, Direction(direction), length, skip))

    def _check_sync(self, sgt: SgTable, direction: Direction, op: str) -> bool:
        if not sgt.mapped:
            self.api_errors.append(f"{op} on {sgt.device.name}: table not mapped")
            return False
        if sgt.direction != Direction.BIDIRECTIONAL and direction != sgt.direction:
            self.api_errors.append(
                f"{op} on {sgt.device.name}: syncs with direction {direction.name}, "
                f"mapped {sgt.direction.name}"
            )
        return True

    def _for_device(
        self, sgt: SgTable, direction: Direction, cause: str, runs: list | None = None
    ) -> None:
        if sgt.device.coherent or direction == Direction.NONE:
            return
        self.cmo_range("clean", LINEAR, sgt.runs if runs is None else runs, cause)

    def _for_cpu(
        self, sgt: SgTable, direction: Direction, cause: str, runs: list | None = None
    ) -> None:
        if sgt.device.coherent or direction in (Direction.TO_DEVICE, Direction.NONE):
            return
        self.cmo_range("invalidate", LINEAR, sgt.runs if runs is None else runs, cause)

    def cmo_range(self, op: str, colour: int, runs: list[tuple[int, int]], cause: str) -> None:
        if colour == VMAP and not self.cache.aliasing:
            return  # *_kernel_vmap_range and flush_cache_vunmap are empty on PIPT caches
        fn = getattr(self.cache, op)
        for pfn, length in runs:
            if self.keep_cmo_log:
                self.cmo.append(CacheOp(op, COLOUR_NAMES[colour], pfn * PAGE_SIZE, length, cause))
            for i in range((length + PAGE_SIZE - 1) // PAGE_SIZE):
                fn(pfn + i, colour)

    def _speculate(self, sgt: SgTable) -> None:
        # The worst legal moment: the CPU prefetches the lines right after it
        # handed the buffer to the device, so they hold pre-DMA data.
        if self.speculative:
            for pfn in sgt.pages:
                self.cache.speculative_fill(pfn, LINEAR)
                if sgt.buffer is not None and sgt.buffer.vmap_live:
                    self.cache.speculative_fill(pfn, VMAP)


def _length(sgt: SgTable, runs: list | None) -> int:
    """Bytes a DMA call covers: the whole table, or the ``runs`` it was given (issue 11)."""
    return sgt.length if runs is None else sum(n for _, n in runs)
