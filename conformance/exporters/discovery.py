"""Which exporters this machine's kernel offers, in a stable order.

The order is part of the contract: pytest-xdist collects on every worker and
needs the same parametrisation each time, so everything is sorted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from conformance.errors import KernelError, UnknownExporter
from conformance.exporters.base import Exporter
from conformance.exporters.heap import HeapExporter, ProtectedHeapExporter
from conformance.exporters.heap_names import CMA_SYSFS, cma_areas, default_cma_aliases, is_protected
from conformance.exporters.ion import IonExporter, query_heaps
from conformance.exporters.kconfig import KernelConfig, read_config
from conformance.exporters.udmabuf import UdmabufExporter
from conformance.exporters.vgem import VgemExporter, find_vgem


@dataclass(frozen=True)
class Paths:
    """Where to look; tests point these at a scratch directory."""

    dma_heap: str = "/dev/dma_heap"
    cma_sysfs: str = CMA_SYSFS  # which CMA areas exist (tells a legacy CMA heap name)
    udmabuf: str = "/dev/udmabuf"
    dri: str = "/dev/dri"
    ion: str = "/dev/ion"


DEFAULT_PATHS = Paths()


def _heaps(paths: Paths) -> list[Exporter]:
    try:
        names = sorted(os.listdir(paths.dma_heap))
    except OSError:
        return []
    aliases = default_cma_aliases(names, cma_areas(paths.cma_sysfs))
    return [
        ProtectedHeapExporter(n, paths.dma_heap)
        if is_protected(n)
        else HeapExporter(n, paths.dma_heap, same_as=aliases.get(n))
        for n in names
    ]


def _ion(paths: Paths) -> list[Exporter]:
    if not os.path.exists(paths.ion):
        return []
    try:
        fd = os.open(paths.ion, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        heaps = query_heaps(fd)
    except KernelError:
        # a pre-4.12 ION answers HEAP_QUERY with ENOTTY: its ABI is not supported
        return []
    finally:
        os.close(fd)
    return [IonExporter(h, paths.ion) for h in sorted(heaps, key=lambda h: (h.name, h.heap_id))]


def discover(paths: Paths = DEFAULT_PATHS) -> list[Exporter]:
    """Every exporter found: heaps, udmabuf, a vgem card, ION heaps (in that order).

    Heaps are of kind ``heap``, or ``protected-heap`` for protected memory
    (heap_names.py); the default CMA heap's legacy entry says it is the same
    heap as ``heap:default_cma_region`` (``HeapExporter.same_as``).
    """
    found: list[Exporter] = _heaps(paths)
    if os.path.exists(paths.udmabuf):
        found.append(UdmabufExporter(paths.udmabuf))
    vgem = find_vgem(paths.dri)
    if vgem is not None:
        found.append(VgemExporter(vgem))
    found += _ion(paths)
    return found


def get_exporter(name: str, paths: Paths = DEFAULT_PATHS) -> Exporter:
    exporters = discover(paths)
    for e in exporters:
        if e.name == name:
            return e
    raise unknown_exporter(name, [e.name for e in exporters], paths)


def unknown_exporter(
    name: str, offered: list[str], paths: Paths = DEFAULT_PATHS
) -> UnknownExporter:
    """The error for a name not offered, listing what is (or why nothing is)."""
    listing = ", ".join(offered) or "none"
    hint = "" if offered else f" ({why_none_found(paths=paths)})"
    return UnknownExporter(f"no exporter {name!r} on this kernel; it offers: {listing}{hint}")


def _option_hint(config: KernelConfig, option: str, module: str = "") -> str:
    state = config.state(option)
    if state == "?":
        return f"{option} unknown (no /proc/config.gz or /boot/config-*)"
    if state == "m":
        return f"{option}=m but not loaded: modprobe {module}" if module else f"{option}=m"
    if state == "y":
        return f"{option}=y yet no device node (devtmpfs not mounted? permissions?)"
    return f"kernel built without {option}"


def why_none_found(config: KernelConfig | None = None, paths: Paths = DEFAULT_PATHS) -> str:
    """One line per exporter kind saying why it is absent, from the kernel config."""
    if config is None:
        config = read_config()
    reasons: list[str] = []
    if not os.path.isdir(paths.dma_heap):
        reasons.append(f"no {paths.dma_heap}: {_option_hint(config, 'CONFIG_DMABUF_HEAPS')}")
    elif not os.listdir(paths.dma_heap):
        reasons.append(
            f"{paths.dma_heap} is empty: "
            f"{_option_hint(config, 'CONFIG_DMABUF_HEAPS_SYSTEM')}; the CMA heap also needs a "
            "CMA area (cma= on the kernel command line)"
        )
    if not os.path.exists(paths.udmabuf):
        reasons.append(f"no {paths.udmabuf}: {_option_hint(config, 'CONFIG_UDMABUF', 'udmabuf')}")
    if find_vgem(paths.dri) is None:
        reasons.append(
            f"no vgem card in {paths.dri}: {_option_hint(config, 'CONFIG_DRM_VGEM', 'vgem')}"
        )
    if not os.path.exists(paths.ion):
        reasons.append(
            f"no {paths.ion}: {_option_hint(config, 'CONFIG_ION')} (ION left staging in 5.11)"
        )
    if config.source:
        reasons.append(f"config read from {config.source}")
    return "; ".join(reasons)
