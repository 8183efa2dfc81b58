"""Plain records shared by every target: the model, this machine and a guest.

Everything here crosses the host/guest boundary as JSON, so the fields are
plain values (ints, strings, lists) and each record has ``to_json``/``from_json``.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any


class Direction(enum.IntEnum):
    """``enum dma_data_direction`` from include/linux/dma-direction.h."""

    BIDIRECTIONAL = 0
    TO_DEVICE = 1
    FROM_DEVICE = 2
    NONE = 3


class SyncFlag(enum.IntFlag):
    """``DMA_BUF_SYNC_*`` from include/uapi/linux/dma-buf.h."""

    READ = 1
    WRITE = 2
    RW = 3
    START = 0
    END = 4


@dataclass(frozen=True)
class DeviceSpec:
    """An importing device: what the exporter must honour when it maps for it."""

    name: str
    coherent: bool
    max_segment: int = 0  # 0: no limit
    segment_boundary: int = 0  # 0: no boundary (mask + 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeviceSpec:
        return cls(**d)


# The importing devices every target offers, under the same names: the probe
# module registers these (qemu/probe/dmabuf_probe.h) and the model builds them.
STANDARD_DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec("coherent", coherent=True),
    DeviceSpec("noncoherent", coherent=False),
    DeviceSpec("smallseg", coherent=False, max_segment=65536, segment_boundary=0),
)


# Not a device: the name under which dma_events() reports the exporter's own
# dma_buf_ops calls (vmap, vunmap, begin_cpu_access, end_cpu_access) as the
# dma-buf core makes them; dma_events(None) covers the devices only.
EXPORTER_LOG = "exporter"


@dataclass(frozen=True)
class SgSegment:
    """One DMA segment of a mapped attachment, as the device sees it."""

    dma_address: int
    length: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DmaEvent:
    """One DMA-API call the exporter made on an importing device.

    ``op`` is one of ``map_sg``, ``unmap_sg``, ``sync_sg_for_cpu``,
    ``sync_sg_for_device`` (single-page variants: ``map_page``, ``unmap_page``,
    ``sync_single_for_cpu``, ``sync_single_for_device``).  ``skip_cpu_sync``
    is set when the call carried DMA_ATTR_SKIP_CPU_SYNC, i.e. did no CMO.
    """

    device: str
    op: str
    direction: Direction
    length: int = 0
    skip_cpu_sync: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["direction"] = int(self.direction)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DmaEvent:
        return cls(**{**d, "direction": Direction(d["direction"])})

    def __str__(self) -> str:
        skip = " SKIP_CPU_SYNC" if self.skip_cpu_sync else ""
        return f"{self.op}({self.device}, {self.direction.name}, {self.length} B{skip})"


@dataclass(frozen=True)
class ExporterInfo:
    """An exporter a target offers: ``heap:system``, ``udmabuf``, ``model:reference``..."""

    name: str
    kind: str  # heap | udmabuf | vgem | ion | model
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# What a target can observe.  A case that needs one (``@pytest.mark.needs(name)``)
# is not run where it is missing: it could not fail there, so it must not pass.
INSTRUMENTS: dict[str, str] = {
    "probe": "the probe importer module is loaded (attach, map, vmap, begin/end CPU access)",
    "dma_event_log": "the probe's DMA event log (kprobes on the DMA API) records the "
    "exporter's map/unmap/sync calls",
    "swiotlb_bounce": "non-coherent devices see a bounce copy (swiotlb=force) or real cache "
    "maintenance, so a missing CMO shows in the data",
    "dma_api_debug": "CONFIG_DMA_API_DEBUG reports DMA-API misuse (wrong direction, leaks)",
    "kmsg": "the kernel log is read after every case (WARN, BUG, Oops lines)",
    "debugfs_bufinfo": "debugfs dma_buf/bufinfo counts the dma-bufs the kernel holds",
}


@dataclass(frozen=True)
class Instrument:
    """Whether a target has one of ``INSTRUMENTS``, and how that was seen (or why not)."""

    present: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TargetInfo:
    """What a run was made on, for the summary and the report.

    ``page_size`` is the kernel's (arm64 kernels with 16 KiB and 64 KiB pages
    exist); cases size their buffers in pages of it.  ``instruments`` maps
    each name of ``INSTRUMENTS`` to whether the target has it; a name that is
    absent was not looked for and counts as missing.
    """

    target: str
    kernel: str
    machine: str = ""
    probe_loaded: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    page_size: int = 4096
    instruments: dict[str, Instrument] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TargetInfo:
        instruments = {
            name: v if isinstance(v, Instrument) else Instrument(**v)
            for name, v in dict(d.get("instruments", {})).items()
        }
        return cls(**{**d, "instruments": instruments})

    def missing_instrument(self, name: str) -> str:
        """Empty when the target has ``name``; else why it is missing, for a report."""
        if name not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {name!r}; known: {', '.join(INSTRUMENTS)}")
        inst = self.instruments.get(name)
        if inst is not None and inst.present:
            return ""
        why = inst.detail if inst is not None and inst.detail else "not detected on this target"
        return f"no {name} ({INSTRUMENTS[name]}): {why}"


@dataclass(frozen=True)
class KernelHealth:
    """Signals read from the kernel after a case: warnings and DMA-API debug errors."""

    warnings: int = 0
    dma_api_errors: int = 0
    log_excerpt: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
