"""The model's exporter: dma_buf_ops driven by an ``ExporterProfile``, plus the dma-buf core rules.

What is core (drivers/dma-buf/dma-buf.c, 6.1) and what is the exporter's is
kept apart in the method comments, because several bugs live exactly at
that border (seed 004: the core caching an sgt the exporter relied on
being unmapped).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Callable

from conformance.errors import kernel_error
from conformance.model.chunks import system_heap_chunks
from conformance.model.dma import DEVICE_OWNED, DmaApi, SgTable, build_runs
from conformance.model.memory import LINEAR, PAGE_SIZE, VMAP, Cache, PhysicalMemory
from conformance.model.profiles import ExporterProfile
from conformance.records import DeviceSpec, Direction

_ZERO_PAGE = bytes(PAGE_SIZE)
# The udmabuf misc device (/dev/udmabuf's struct device): not a probe device,
# so its DMA calls stay out of dma_events() as they do on a real kernel.
UDMABUF_MISC = DeviceSpec("udmabuf-misc", coherent=False)


@dataclass(frozen=True)
class OwnershipViolation:
    """An access by someone who does not own the buffer (seed 003 states)."""

    buffer: int
    accessor: str  # "cpu:<mapping>" or "device:<name>"
    op: str
    detail: str

    def __str__(self) -> str:
        return f"buffer {self.buffer}: {self.op} by {self.accessor}: {self.detail}"


# eq=False: two attachments of one buffer to the same device are equal field for
# field, yet detach must remove exactly the one detached (found by GEN-001).
@dataclass(eq=False)
class Attachment:
    buffer: ModelBuffer
    device: DeviceSpec
    sgt: SgTable | None = None
    cached: bool = False  # the sgt stays mapped between map/unmap calls
    cached_dir: Direction = Direction.NONE
    maps: int = 0  # importer-visible: map_attachment calls not yet unmapped


@dataclass
class ModelBuffer:
    ino: int
    profile: ExporterProfile
    size: int
    pages: list[int]
    refs: int = 0
    name: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    vmap_count: int = 0  # the dma-buf core's vmapping_counter
    vmap_live: bool = False
    vmap_generation: int = 0  # bumped when the alias is torn down
    leaked_vmaps: int = 0  # kernel mappings the exporter's vunmap left behind
    kmap_count: int = 0
    begun: int = 0  # begin_cpu_access brackets holding a kernel mapping (ION)
    kernel_mapping: bool = False  # ION's buffer->vaddr from begin_cpu_access
    mapped_once: bool = False
    misc_sgt: SgTable | None = None
    released: bool = False
    # Pages release gives back when they are not ``pages`` (udmabuf: the memfds'
    # pages, which outlive a smaller udmabuf over part of them); None: ``pages``.
    backing: list[int] | None = None
    # -- issue 11 (faulty profiles only): the one sg table every attachment gets
    # (shared_sgt), and the frames a faulty vmap maps in place of ``pages``
    shared_sgt: SgTable | None = None
    vmap_pages: list[int] | None = None


class Exporter:
    """dma_buf_ops for every profile, over one memory, cache and DMA API."""

    def __init__(
        self,
        memory: PhysicalMemory,
        cache: Cache,
        dma: DmaApi,
        vmalloc_bytes: int,
        warn: Callable[[str], None],
        violation: Callable[[OwnershipViolation], None],
    ) -> None:
        self.memory = memory
        self.cache = cache
        self.dma = dma
        self.vmalloc_free = vmalloc_bytes
        self.warn = warn
        self.violation = violation
        self._next_ino = 1000

    # -- life cycle ---------------------------------------------------------------
    def allocate(self, profile: ExporterProfile, size: int) -> ModelBuffer:
        pages = self.memory.alloc(size // PAGE_SIZE)
        if pages is None:
            raise kernel_error(errno.ENOMEM, "DMA_HEAP_IOCTL_ALLOC", size)
        self._next_ino += 1
        buf = ModelBuffer(self._next_ino, profile, size, pages)
        if profile.zero_on_alloc:
            # __GFP_ZERO: clear_page() through the cached linear map.
            for pfn in self._zeroed_pages(profile, pages):
                self.cache.write(pfn, LINEAR, 0, _ZERO_PAGE)
            if profile.uncached_user_mapping and profile.clean_after_zero:
                self.dma.cmo_range("flush", LINEAR, build_runs(pages), "zero-fill for uncached use")
        return buf

    @staticmethod
    def _zeroed_pages(profile: ExporterProfile, pages: list[int]) -> list[int]:
        """The pages the allocation zeroes: all, but the chunks a faulty profile's
        high-order GFP flags leave without __GFP_ZERO (issue 11)."""
        if profile.unzeroed_min_order < 0:
            return pages
        return [
            pfn
            for c in system_heap_chunks(len(pages))
            if c.order < profile.unzeroed_min_order
            for pfn in pages[c.first : c.end]
        ]

    def wrap(self, profile: ExporterProfile, pages: list[int], backing: list[int]) -> ModelBuffer:
        """A buffer over pages someone else filled (udmabuf over memfd pages)."""
        self._next_ino += 1
        return ModelBuffer(self._next_ino, profile, len(pages) * PAGE_SIZE, pages, backing=backing)

    def release(self, buf: ModelBuffer) -> None:
        if buf.vmap_count > 0:
            self.warn(
                f"release: buffer {buf.ino} still mapped in the kernel (vmap_count "
                f"{buf.vmap_count})"
            )
            if buf.vmap_live and not buf.profile.kmap_in_begin:
                self._vmap_teardown(buf)
            buf.vmap_count = 0
        if buf.misc_sgt is not None and buf.misc_sgt.mapped:
            skip = buf.profile.map_skip_cpu_sync
            # the direction begin_cpu_access mapped it with (udmabuf's sg_dir); the
            # faulty "bidirectional" is release_udmabuf before the 2026 fix
            direction = (
                buf.misc_sgt.direction
                if buf.profile.release_unmap_dir == "mapped"
                else Direction.BIDIRECTIONAL
            )
            self.dma.unmap_sg(buf.misc_sgt, direction, skip_cpu_sync=skip)
        if buf.kernel_mapping:
            self._kernel_mapping_put(buf)
        buf.released = True
        if buf.profile.free_pages_on_release:
            pages = buf.pages if buf.backing is None else buf.backing
            # release_keeps_pages: a faulty exporter's page per buffer that never comes back
            kept = min(buf.profile.release_keeps_pages, len(pages))
            self.memory.free(pages[: len(pages) - kept])

    # -- attachments ----------------------------------------------------------------
    def _new_sgt(self, buf: ModelBuffer, device: DeviceSpec) -> SgTable:
        if buf.profile.shared_sgt and buf.shared_sgt is not None:
            return buf.shared_sgt  # faulty (issue 11): the buffer's one table, again
        pages = self._sg_pages(buf)
        if buf.profile.honour_constraints:
            runs = build_runs(pages, device.max_segment, device.segment_boundary)
        else:
            runs = build_runs(pages)
        sgt = SgTable(device, pages, runs, buffer=buf)
        if buf.profile.shared_sgt:
            buf.shared_sgt = sgt
        return sgt

    @staticmethod
    def _sg_pages(buf: ModelBuffer) -> list[int]:
        """The pages the sg table covers: all, but a faulty table that ends at the
        last high-order chunk (issue 11, sg_drops_order0_tail)."""
        if not buf.profile.sg_drops_order0_tail:
            return buf.pages
        chunks = system_heap_chunks(len(buf.pages))
        high = [c for c in chunks if c.order > 0]
        return buf.pages[: high[-1].end] if high else buf.pages

    def _exporter_map(self, a: Attachment, direction: Direction) -> SgTable:
        buf = a.buffer
        sgt = a.sgt if a.sgt is not None else self._new_sgt(buf, a.device)
        if buf.profile.shared_sgt:
            sgt.device = a.device  # faulty: the shared table is (re)mapped for this device
        skip = buf.profile.map_skip_cpu_sync or (
            not buf.profile.first_map_cmo and not buf.mapped_once
        )
        self.dma.map_sg(sgt, direction, skip_cpu_sync=skip)
        buf.mapped_once = True
        a.sgt = sgt
        return sgt

    def _exporter_unmap(self, a: Attachment, direction: Direction) -> None:
        assert a.sgt is not None
        if a.buffer.profile.shared_sgt:
            a.sgt.device = a.device  # faulty: unmaps for this device whatever was mapped last
        self.dma.unmap_sg(a.sgt, direction, skip_cpu_sync=a.buffer.profile.map_skip_cpu_sync)

    def attach(self, buf: ModelBuffer, device: DeviceSpec) -> Attachment:
        a = Attachment(buf, device)
        buf.attachments.append(a)
        if buf.profile.sgt_cache == "at-attach":
            # seed 004's patch: the core maps BIDIRECTIONAL right at attach and keeps it.
            self._exporter_map(a, Direction.BIDIRECTIONAL)
            a.cached, a.cached_dir = True, Direction.BIDIRECTIONAL
        return a

    def detach(self, a: Attachment) -> None:
        if a.cached and a.sgt is not None and a.sgt.mapped:
            self._exporter_unmap(a, a.cached_dir)
        a.buffer.attachments.remove(a)

    def map_attachment(self, a: Attachment, direction: Direction) -> SgTable:
        if a.cached and a.sgt is not None:
            # core: a cached sgt is handed out again; a different direction is EBUSY
            if a.cached_dir not in (direction, Direction.BIDIRECTIONAL):
                raise kernel_error(errno.EBUSY, "dma_buf_map_attachment", direction.name)
            a.maps += 1
            return a.sgt
        sgt = self._exporter_map(a, direction)
        if a.buffer.profile.sgt_cache == "at-first-map":
            a.cached, a.cached_dir = True, direction
        a.maps += 1
        return sgt

    def unmap_attachment(self, a: Attachment, direction: Direction) -> None:
        if not a.cached:
            self._exporter_unmap(a, direction)
        a.maps -= 1

    # -- device access through the DMA view -------------------------------------------
    def device_access(self, a: Attachment, offset: int, length: int, data: bytes | None) -> bytes:
        sgt = a.sgt
        assert sgt is not None
        if sgt.owner != DEVICE_OWNED:
            self.violation(
                OwnershipViolation(
                    a.buffer.ino,
                    f"device:{a.device.name}",
                    "device_write" if data is not None else "device_read",
                    f"the buffer is {sgt.owner}-owned (synced for the CPU or unmapped)",
                )
            )
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            idx, off = divmod(pos, PAGE_SIZE)
            n = min(PAGE_SIZE - off, end - pos)
            pfn = a.buffer.pages[idx]
            if data is None:
                if a.device.coherent:
                    out += self.cache.snoop_read(pfn, off, n)
                else:
                    out += self.memory.read(pfn, off, n)
            else:
                chunk = data[pos - offset : pos - offset + n]
                if a.device.coherent:
                    self.cache.snoop_write(pfn, off, chunk)
                else:
                    self.memory.write(pfn, off, chunk)
            pos += n
        return bytes(out)

    def check_cpu_access(self, buf: ModelBuffer, who: str, op: str) -> None:
        tables = [a.sgt for a in buf.attachments if a.sgt is not None]
        if buf.misc_sgt is not None:
            tables.append(buf.misc_sgt)
        for sgt in tables:
            if sgt.mapped and sgt.owner == DEVICE_OWNED and not sgt.device.coherent:
                self.violation(
                    OwnershipViolation(
                        buf.ino,
                        who,
                        op,
                        f"{sgt.device.name} owns it (mapped or synced for the device, "
                        "no begin_cpu_access since)",
                    )
                )
                return

    # -- CPU access brackets ---------------------------------------------------------------
    @staticmethod
    def _has_cpu_access_ops(p: ExporterProfile) -> bool:
        # vgem (drm_gem_shmem) has no begin/end_cpu_access: the core calls nothing
        return p.cpu_access != "none" or p.kmap_in_begin

    @staticmethod
    def _cpu_access_tables(buf: ModelBuffer) -> list:
        """The mapped attachments' tables begin/end_cpu_access sync (all, first, none)."""
        tables = [a.sgt for a in buf.attachments if a.sgt is not None and a.sgt.mapped]
        syncs = buf.profile.cpu_access_syncs
        if syncs == "none":
            return []
        return tables[:1] if syncs == "first" else tables

    @staticmethod
    def _cpu_sync_runs(buf: ModelBuffer, sgt: SgTable) -> list | None:
        """What begin/end_cpu_access sync of a mapped table: all of it (None), or for a
        faulty profile (issue 11) the first sg entry only, i.e. the first chunk."""
        if not buf.profile.cpu_sync_first_entry_only:
            return None
        first = system_heap_chunks(len(buf.pages))[0]
        return build_runs(buf.pages[first.first : first.end])

    def begin_cpu_access(self, buf: ModelBuffer, direction: Direction, op: str) -> None:
        p = buf.profile
        if self._has_cpu_access_ops(p):
            self.dma.exporter_op("begin_cpu_access", direction, buf.size)
        if p.kmap_in_begin and buf.kmap_count < 0:
            # ion_buffer_kmap_get on a count driven negative: non-zero, so it
            # returns buffer->vaddr (NULL) and counts on; begin "succeeds" unmapped
            buf.kmap_count += 1
            buf.begun += 1
        elif p.kmap_in_begin:
            if not buf.kernel_mapping:
                if self._vmalloc(buf.size):
                    buf.kernel_mapping = True
                    self._new_alias(buf)
                elif not p.begin_map_error_swallowed:
                    raise kernel_error(errno.ENOMEM, op, "kernel mapping (vmap) failed")
            if buf.kernel_mapping:
                buf.begun += 1
                buf.kmap_count += 1
        if p.cpu_access == "attachments":
            if buf.vmap_live and p.vmap_cmo:
                self.dma.cmo_range(
                    "invalidate", VMAP, build_runs(buf.pages), "invalidate_kernel_vmap_range"
                )
            for sgt in self._cpu_access_tables(buf):
                self.dma.sync_for_cpu(sgt, direction, runs=self._cpu_sync_runs(buf, sgt))
        elif p.cpu_access == "misc-device":
            if buf.misc_sgt is None:
                buf.misc_sgt = self._new_sgt(buf, UDMABUF_MISC)
                # 5.19+ maps with SKIP_CPU_SYNC and then syncs; before, the map's own
                # cache maintenance is the first START's only sync (udmabuf.c 5.10)
                self.dma.map_sg(buf.misc_sgt, direction, skip_cpu_sync=p.map_skip_cpu_sync)
                if p.map_skip_cpu_sync:
                    self.dma.sync_for_cpu(buf.misc_sgt, direction)
            else:
                self.dma.sync_for_cpu(buf.misc_sgt, direction)

    def end_cpu_access(self, buf: ModelBuffer, direction: Direction, op: str) -> None:
        p = buf.profile
        if self._has_cpu_access_ops(p):
            self.dma.exporter_op("end_cpu_access", direction, buf.size)
        if p.cpu_access == "attachments":
            if buf.vmap_live and p.vmap_cmo:
                self.dma.cmo_range("flush", VMAP, build_runs(buf.pages), "flush_kernel_vmap_range")
            for sgt in self._cpu_access_tables(buf):
                self.dma.sync_for_device(sgt, direction, runs=self._cpu_sync_runs(buf, sgt))
        elif p.cpu_access == "misc-device":
            if buf.misc_sgt is None:
                raise kernel_error(errno.EINVAL, op, "END without a prior START")
            self.dma.sync_for_device(buf.misc_sgt, direction)
        if p.kmap_in_begin:
            if p.kmap_count_balanced and buf.begun == 0:
                return  # nothing begun: nothing to put
            buf.begun = max(0, buf.begun - 1)
            # ION's ion_buffer_kmap_put: no warning when the count goes
            # negative (a real kernel says nothing); what shows is that the
            # kernel mapping goes away under a vmap that still holds it.
            self._ion_kmap_put(buf)

    # -- kernel mappings ---------------------------------------------------------------------
    def _vmalloc(self, size: int) -> bool:
        if size > self.vmalloc_free:
            return False
        self.vmalloc_free -= size
        return True

    def _kernel_mapping_put(self, buf: ModelBuffer) -> None:
        buf.kernel_mapping = False
        self.vmalloc_free += buf.size
        if buf.vmap_live:
            # ION: a vmap is this same kernel mapping (ion_buffer_kmap_get); it is gone now
            self.dma.cmo_range("flush", VMAP, build_runs(buf.pages), "unmap_kernel")
            buf.vmap_live = False
            buf.vmap_generation += 1

    def _new_alias(self, buf: ModelBuffer) -> None:
        if buf.profile.vmap_cmo and self.cache.aliasing:
            # A new alias must not start behind dirty linear-map lines (the zeroing
            # at allocation left some): push them out before the alias is used.
            self.dma.cmo_range("flush", LINEAR, build_runs(buf.pages), "vmap: flush linear alias")

    def _ion_kmap_get(self, buf: ModelBuffer, op: str) -> None:
        """ion_buffer_kmap_get: one more user of the buffer's kernel mapping."""
        if buf.kmap_count < 0:
            # ``if (buffer->kmap_cnt) { kmap_cnt++; return buffer->vaddr; }``: a
            # count driven negative is non-zero, and vaddr is NULL
            buf.kmap_count += 1
            raise kernel_error(errno.ENOMEM, op, f"kmap_cnt {buf.kmap_count - 1}, vaddr NULL")
        if not buf.kernel_mapping:
            if not self._vmalloc(buf.size):
                raise kernel_error(errno.ENOMEM, op, "kernel mapping (vmap) failed")
            buf.kernel_mapping = True
            self._new_alias(buf)
        buf.kmap_count += 1

    def _ion_kmap_put(self, buf: ModelBuffer) -> None:
        """ion_buffer_kmap_put: the last user unmaps the kernel mapping."""
        buf.kmap_count -= 1
        if buf.kmap_count == 0 and buf.kernel_mapping:
            self._kernel_mapping_put(buf)

    def vmap(self, buf: ModelBuffer) -> int:
        """dma_buf_vmap; returns the alias generation the caller's handle is bound to.

        The core (6.1 dma_buf_vmap) counts users in ``vmap_count`` and calls the
        exporter's vmap only for the first; ``vmap_refcount=False`` is a core
        that does not (a vendor copy of dma-buf.c): every call reaches the
        exporter, whose new mapping replaces the one other users hold.
        """
        p = buf.profile
        if not p.has_vmap:
            raise kernel_error(errno.EINVAL, "dma_buf_vmap", "exporter has no vmap")
        if buf.vmap_count > 0 and p.vmap_refcount:
            buf.vmap_count += 1
            return buf.vmap_generation
        self.dma.exporter_op("vmap", Direction.NONE, buf.size)
        if p.kmap_in_begin:
            # ION's vmap is ion_buffer_kmap_get: the mapping begin_cpu_access makes
            self._ion_kmap_get(buf, "dma_buf_vmap")
            buf.vmap_live = True
            buf.vmap_count = 1
            return buf.vmap_generation
        if buf.vmap_live:
            # no refcount: a fresh alias replaces the old one, the count stays 1
            self._vmap_teardown(buf)
        if not self._vmalloc(buf.size):
            raise kernel_error(errno.ENOMEM, "dma_buf_vmap", buf.size)
        self._new_alias(buf)
        buf.vmap_pages = self._vmap_page_array(buf)
        buf.vmap_live = True
        buf.vmap_count = 1
        return buf.vmap_generation

    @staticmethod
    def _vmap_page_array(buf: ModelBuffer) -> list[int] | None:
        """The frames vmap maps: ``pages`` (None), or for a faulty profile (issue 11) each
        chunk's first page repeated over the chunk (nth_page() forgotten)."""
        if not buf.profile.vmap_chunk_head_pages:
            return None
        return [
            buf.pages[c.first] for c in system_heap_chunks(len(buf.pages)) for _ in range(c.pages)
        ]

    def vunmap(self, buf: ModelBuffer) -> None:
        p = buf.profile
        if p.vmap_refcount:
            if buf.vmap_count <= 0:
                self.warn(
                    f"dma_buf_vunmap: buffer {buf.ino} is not vmapped (vmap_count {buf.vmap_count})"
                )
                return
            buf.vmap_count -= 1
            if buf.vmap_count > 0:
                return  # the core keeps the mapping for its other users
        else:
            buf.vmap_count = 0
        self.dma.exporter_op("vunmap", Direction.NONE, buf.size)
        if p.kmap_in_begin:
            self._ion_kmap_put(buf)
        elif buf.vmap_live and not p.vunmap_unmaps:
            # the buffer forgets its vaddr, the kernel keeps the mapping (and its space)
            buf.leaked_vmaps += 1
            buf.vmap_live = False
            buf.vmap_generation += 1
        elif buf.vmap_live:
            self._vmap_teardown(buf)

    def _vmap_teardown(self, buf: ModelBuffer) -> None:
        # vunmap() -> flush_cache_vunmap(): the alias' lines go back to memory.
        self.dma.cmo_range("flush", VMAP, build_runs(buf.pages), "vunmap")
        buf.vmap_live = False
        buf.vmap_count = 0
        buf.vmap_generation += 1
        self.vmalloc_free += buf.size

    def kmap(self, buf: ModelBuffer, page: int) -> None:
        p = buf.profile
        if p.kmap_in_begin and not buf.kernel_mapping:
            # ION's kmap returns buffer->vaddr + offset: without the mapping
            # begin_cpu_access was meant to create there is nothing to return.
            raise kernel_error(errno.ENOMEM, "dma_buf_kmap", "no kernel mapping (vaddr NULL)")
        if not p.kmap_in_begin:  # ION's kmap_cnt counts begin's mapping, not kmaps
            buf.kmap_count += 1

    def kunmap(self, buf: ModelBuffer) -> None:
        if buf.profile.kmap_in_begin:
            return
        buf.kmap_count -= 1
        if buf.kmap_count < 0:
            self.warn(f"dma_buf_kunmap: buffer {buf.ino} kmap_count went negative")
