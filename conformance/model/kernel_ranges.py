"""Where upstream exporters changed between kernel releases, as data: kind x release range.

The ``reference-<kind>`` stand-ins (profiles.py) copy the 6.1 drivers.  A
real exporter on another kernel is compared with the same stand-in plus the
``CHANGES`` whose range holds its release: each is one upstream change, with
the commit and file it comes from.  Only legitimate differences are here: an
optional capability the driver gained (udmabuf's vmap), a stricter legal
answer (refusing mremap growth), an ioctl the dma-buf core did not have yet.
A bug that a later release fixed is not: the stand-in keeps the contract and
the old kernel fails the case (a finding, not a divergence to hide).

Sources read for this table (``VERIFIED``): Debian's linux-source 5.10.223,
6.1.192 and 6.12.118: drivers/dma-buf/{dma-buf.c,udmabuf.c}, heaps/{heap-helpers.c,
system_heap.c,cma_heap.c}, drivers/gpu/drm/{drm_prime.c,drm_gem_shmem_helper.c},
vgem/vgem_drv.c (its mmap and vmap), drivers/staging/android/ion/ (5.10).  A
range starts at the release that first carried the commit.  Some differences
came and went with stable backports, inside a series: such a change says the
point releases read (``checked``), the series is cut there, and a release
where the table can only assume says so in the stand-in's note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from conformance.model.profiles import ExporterProfile

KINDS = ("heap", "udmabuf", "vgem", "ion", "protected-heap")
CORE = "*"  # a change in the dma-buf core (dma-buf.c): every kind has it


@dataclass(frozen=True, order=True)
class Release:
    """A kernel release: the series (major.minor, what long-term kernels are named by) and
    the stable point release (``patch``; 0 for the series' first release or when unknown)."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Release | None:
        """``6.12.118-amd64``, ``6.1.0-28-arm64``, ``5.10`` -> the release; anything else None."""
        m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
        if not m:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    @property
    def series(self) -> Release:
        return Release(self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch else "")


def _r(text: str) -> Release:
    release = Release.parse(text)
    assert release is not None, text
    return release


# The point releases whose sources were read for this table (Debian's linux-source), oldest
# first; OLDEST/NEWEST_CHECKED are their series.
VERIFIED = (_r("5.10.223"), _r("6.1.192"), _r("6.12.118"))
OLDEST_CHECKED, NEWEST_CHECKED = VERIFIED[0].series, VERIFIED[-1].series


@dataclass(frozen=True)
class ProfileChange:
    """One upstream change: in series ``first``..``last`` (None: open) ``kind`` differs.

    ``changes`` are ExporterProfile fields relative to the 6.1 stand-in.
    ``backport``: a stable backport that removed the difference inside series
    of the range, at point releases not all known; ``checked`` says, per
    series, a point release whose source was read and whether the difference
    was still there.  Past a point with the difference gone it is gone; before
    it, and in series not checked, the older code is assumed (and said so).
    """

    kind: str  # a kind, or CORE
    first: Release | None
    last: Release | None
    changes: Mapping[str, Any]
    source: str  # upstream commit and file
    summary: str
    backport: str = ""
    checked: Mapping[str, tuple[int, bool]] = field(default_factory=dict)

    def in_series_range(self, release: Release) -> bool:
        series = release.series
        return (self.first is None or self.first <= series) and (
            self.last is None or series <= self.last
        )

    def covers(self, release: Release) -> bool:
        if not self.in_series_range(release):
            return False
        point = self.checked.get(f"{release.major}.{release.minor}")
        if point is None or point[1]:
            return True
        return release.patch < point[0]  # gone from the checked point release on

    def certain(self, release: Release) -> bool:
        """Whether ``covers`` is known for this release rather than assumed."""
        if not self.backport or not self.in_series_range(release):
            return True
        point = self.checked.get(f"{release.major}.{release.minor}")
        if point is None:
            return False
        at, still_there = point
        return release.patch <= at if still_there else release.patch >= at


CHANGES: tuple[ProfileChange, ...] = (
    # -- the dma-buf core -------------------------------------------------------------------
    ProfileChange(
        CORE,
        None,
        _r("5.19"),
        {"sync_file_ioctls": False},
        "20e10881a043 'dma-buf: Add an API for exporting sync files (v14)' and 594740497e99 "
        "'dma-buf: Add an API for importing sync files (v10)', v6.0; "
        "include/uapi/linux/dma-buf.h of 5.10 has neither ioctl",
        "no DMA_BUF_IOCTL_EXPORT_SYNC_FILE/IMPORT_SYNC_FILE before 6.0: ENOTTY",
    ),
    # -- DMA-BUF heaps ----------------------------------------------------------------------
    ProfileChange(
        "heap",
        None,
        _r("5.10"),
        {"mremap_grow": "fault-handler"},
        "drivers/dma-buf/heaps/heap-helpers.c (5.10): dma_heap_mmap installs "
        "dma_heap_vm_fault without VM_DONTEXPAND; heap-helpers gave way in 5.11 to "
        "system_heap.c's remap_pfn_range mmap (VM_PFNMAP|VM_DONTEXPAND)",
        "5.10 heap-helpers map through a fault handler: mremap growth succeeds (its "
        "'pgoff > pagecount' off-by-one is a bug, not copied)",
    ),
    # -- udmabuf ----------------------------------------------------------------------------
    ProfileChange(
        "udmabuf",
        None,
        NEWEST_CHECKED,
        {"map_skip_cpu_sync": False},
        "udmabuf.c of 5.10.223: get_sg_table maps with attrs 0, begin_cpu_udmabuf maps at "
        "the first START and syncs only from the second (1ffe09590121, v5.6); "
        "504e2b4ab97a 'dma-buf/udmabuf: skip redundant cpu sync to fix cacheline EEXIST "
        "warning' and its follow-up 'udmabuf: Ensure to perform cache synchronisation in "
        "begin_cpu_udmabuf()' (2026, backported to the stable series: 6.1.192 and "
        "6.12.118 have both)",
        "udmabuf maps attachments and its misc device with CPU cache maintenance (no "
        "DMA_ATTR_SKIP_CPU_SYNC), and the first START's map is its sync",
        backport="504e2b4ab97a",
        checked={"5.10": (223, True), "6.1": (192, False), "6.12": (118, False)},
    ),
    ProfileChange(
        "udmabuf",
        _r("6.2"),
        None,
        {"has_vmap": True, "vmap_cmo": False},
        "7ae2e684854c 'udmabuf: add vmap and vunmap methods to udmabuf_ops' (v6.2); "
        "udmabuf.c of 6.12: vmap_udmabuf/vunmap_udmabuf (vm_map_ram), begin/end_cpu_access "
        "sync the misc device's table, with no kernel-vmap-range maintenance",
        "udmabuf has vmap from 6.2 (refcounted by the dma-buf core)",
    ),
    ProfileChange(
        "udmabuf",
        _r("6.11"),
        None,
        {"mremap_grow": "efault"},
        "7d79cd784470 'udmabuf: use vmf_insert_pfn and VM_PFNMAP for handling mmap' (v6.11); "
        "udmabuf.c of 6.12: mmap_udmabuf sets VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP",
        "udmabuf mappings are VM_DONTEXPAND from 6.11: mremap growth is refused (EFAULT)",
    ),
    # -- ION (staging, gone after 5.10) -------------------------------------------------------
    ProfileChange(
        "ion",
        _r("5.6"),
        None,
        {"has_vmap": False, "has_kmap": False},
        "drivers/staging/android/ion/ion.c (5.10): dma_buf_ops without .vmap and the "
        "kmap hooks dma-buf dropped in 5.6; begin_cpu_access still takes "
        "ion_buffer_kmap_get (kmap_cnt) for the heaps' map_kernel; ion_heap_map_user "
        "maps with remap_pfn_range (VM_PFNMAP|VM_DONTEXPAND)",
        "5.10 ION has no vmap and no kmap: dma_buf_vmap is EINVAL; begin/end_cpu_access "
        "still count the kernel mapping",
    ),
)

# Upstream dropped these kinds after the release given: a newer kernel that still
# offers one carries an out-of-tree copy (5.11 removed drivers/staging/android/ion).
LAST_UPSTREAM = {"ion": _r("5.10")}


@dataclass(frozen=True)
class Segment:
    """A release range in which a kind's stand-in is one profile.

    ``first``/``last`` are series; a segment of one series can be cut at a stable
    point release (``patch_from``..``patch_to``, inclusive, None: open).
    """

    kind: str
    first: Release | None
    last: Release | None
    changes: tuple[ProfileChange, ...] = field(default=())
    patch_from: int | None = None
    patch_to: int | None = None

    @property
    def label(self) -> str:
        """``6.2..6.10``, ``6.11..`` (open), ``..5.18`` (from the oldest), ``5.19`` (one),
        ``6.1.0..6.1.191`` / ``6.1.192..6.1.y`` (one series cut at a point release)."""
        if self.patch_from is not None or self.patch_to is not None:
            series = str(self.first)
            lo = f"{series}.{self.patch_from or 0}"
            hi = f"{series}.y" if self.patch_to is None else f"{series}.{self.patch_to}"
            return f"{lo}..{hi}"
        if self.first is not None and self.first == self.last:
            return str(self.first)
        lo = "" if self.first is None else str(self.first)
        hi = "" if self.last is None else str(self.last)
        return f"{lo}..{hi}"

    def covers(self, release: Release) -> bool:
        series = release.series
        if not (
            (self.first is None or self.first <= series)
            and (self.last is None or series <= self.last)
        ):
            return False
        return (self.patch_from is None or self.patch_from <= release.patch) and (
            self.patch_to is None or release.patch <= self.patch_to
        )


# The last minor of each finished major series: the release after 5.19 is 6.0.
_LAST_MINOR = {2: 6, 3: 19, 4: 20, 5: 19}


def next_release(release: Release) -> Release:
    if _LAST_MINOR.get(release.major) == release.minor:
        return Release(release.major + 1, 0)
    return Release(release.major, release.minor + 1)


def previous_release(release: Release) -> Release:
    if release.minor == 0:
        return Release(release.major - 1, _LAST_MINOR[release.major - 1])
    return Release(release.major, release.minor - 1)


def segments(kind: str, changes: Iterable[ProfileChange] = CHANGES) -> list[Segment]:
    """The release ranges over which ``kind``'s applicable changes stay the same, oldest first."""
    mine = [c for c in changes if c.kind in (kind, CORE)]
    starts: set[Release] = set()
    cuts: dict[Release, set[int]] = {}  # series -> point releases where a backport landed
    for c in mine:
        if c.first is not None:
            starts.add(c.first)
        if c.last is not None:
            starts.add(next_release(c.last))
        for series, (point, still_there) in c.checked.items():
            if not still_there:
                s = _r(series)
                starts.update((s, next_release(s)))  # a segment of its own, cut below
                cuts.setdefault(s, set()).add(point)
    bounds: list[Release | None] = [None, *sorted(starts)]
    out: list[Segment] = []
    for lo, nxt in zip(bounds, [*bounds[1:], None]):
        hi = None if nxt is None else previous_release(nxt)
        if lo is not None and lo in cuts and hi == lo:
            points = [0, *sorted(cuts[lo])]
            for a, b in zip(points, [*points[1:], None]):
                sample = Release(lo.major, lo.minor, a)
                applied = tuple(c for c in mine if c.covers(sample))
                out.append(Segment(kind, lo, lo, applied, a, None if b is None else b - 1))
            continue
        sample = lo or hi or Release(0, 0)  # every release of the segment has the same changes
        out.append(Segment(kind, lo, hi, tuple(c for c in mine if c.covers(sample))))
    return out


def profiles_for(kind: str, base: ExporterProfile) -> list[tuple[Segment, ExporterProfile]]:
    """Each segment's stand-in, oldest first: ``base`` itself where nothing differs from 6.1."""
    out: list[tuple[Segment, ExporterProfile]] = []
    for seg in segments(kind):
        changes: dict[str, Any] = {}
        for c in seg.changes:
            changes.update(c.changes)
        if not changes:
            out.append((seg, base))
            continue
        summaries = "; ".join(c.summary for c in seg.changes)
        profile = replace(
            base,
            name=f"reference-{kind}@{seg.label}",
            description=f"{base.description} -- kernels {seg.label}: {summaries}",
            source="; ".join([base.source, *(c.source for c in seg.changes)]),
            **changes,
        )
        out.append((seg, profile))
    return out


def parse_range(text: str) -> tuple[Release | None, Release | None]:
    """``6.11..`` / ``..6.10`` / ``6.2..6.10`` / ``6.1`` -> (first, last), None for an open end."""
    lo, sep, hi = text.partition("..")
    first = Release.parse(lo) if lo else None
    last = (Release.parse(hi) if hi else None) if sep else first
    if (lo and first is None) or (hi and last is None) or not (lo or hi):
        raise ValueError(f"kernel range {text!r}: write e.g. '6.11..', '..6.10' or '6.2..6.10'")
    return first, last


def binds(kernel: str | None, kernels: str) -> bool | None:
    """Whether a contract stated for release range ``kernels`` binds kernel release ``kernel``.

    None when the release is not known (the model, an unreadable release): the
    caller decides (the model follows 6.1).  For cases whose contract changed
    upstream, e.g. udmabuf's mremap growth (``..6.10``) or the sync-file
    ioctls (``6.0..``).
    """
    first, last = parse_range(kernels)
    release = Release.parse(kernel) if kernel else None
    if release is None:
        return None
    series = release.series
    return (first is None or first <= series) and (last is None or series <= last)
