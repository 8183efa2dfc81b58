"""What a /dev/dma_heap entry's name says about the heap, across upstream naming changes.

* The default CMA area's heap is ``default_cma_region`` from 6.17
  (854acbe75ff4 "dma-buf: heaps: Give default CMA heap a fixed name").
  Before, it was named after the CMA area: ``reserved`` (cma= or the
  CMA_SIZE_* options), or the device-tree node, ``linux,cma`` or
  ``default-pool``.  With CONFIG_DMABUF_HEAPS_CMA_LEGACY (default y) the
  old name stays as a second node over the same area, and 4f5f8baf7341
  ("dma-buf: heaps: cma: Create CMA heap for each CMA reserved region") can
  add it again for a reusable shared-dma-pool region: one heap, two entries.
* Protected (secure) heaps hand out memory the CPU must not touch, so they
  have no mmap (dma_buf_mmap refuses: EINVAL), no vmap and no CPU access
  brackets by design: the TEE heaps of 6.18 (drivers/tee/tee_heap.c:
  ``protected,secure-video``, ``protected,trusted-ui``,
  ``protected,secure-video-record``) and vendor secure heaps (Android's
  ``*secure*`` heaps, MediaTek's ``restricted_*``/``mtk_svp*``).  They are
  the ``protected-heap`` kind, with expectations of their own.
"""

from __future__ import annotations

import fnmatch
import os

DEFAULT_CMA = "default_cma_region"
# The default CMA area's names before 6.17 (Documentation/userspace-api/dma-buf-heaps.rst).
LEGACY_DEFAULT_CMA = ("reserved", "linux,cma", "default-pool")
# Heap names that mean "protected memory": upstream TEE heaps, then vendor conventions.
PROTECTED_PATTERNS = ("protected,*", "*secure*", "restricted*", "mtk_svp*")
CMA_SYSFS = "/sys/kernel/mm/cma"

PROTECTED_KIND = "protected-heap"


def is_protected(name: str) -> bool:
    """Whether a heap of this name hands out protected memory (no CPU access by design)."""
    return any(fnmatch.fnmatchcase(name, p) for p in PROTECTED_PATTERNS)


def cma_areas(sysfs: str = CMA_SYSFS) -> list[str]:
    """The CMA areas the kernel has (one directory each), sorted; [] when it does not say."""
    try:
        return sorted(os.listdir(sysfs))
    except OSError:
        return []


def default_cma_aliases(heaps: list[str], areas: list[str]) -> dict[str, str]:
    """Each heap entry that is the default CMA heap under its old name -> ``default_cma_region``.

    Only when ``default_cma_region`` exists (6.17+): then a legacy name, or
    the one CMA area's name when the kernel has exactly one area, is the
    same heap.
    """
    if DEFAULT_CMA not in heaps:
        return {}
    candidates = set(LEGACY_DEFAULT_CMA)
    if len(areas) == 1:
        candidates.add(areas[0])
    return {h: DEFAULT_CMA for h in heaps if h in candidates and h != DEFAULT_CMA}
