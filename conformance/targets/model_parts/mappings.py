"""User mappings of a model buffer: mmap, munmap, mremap and CPU access through them.

``mremap`` growth: system heap, CMA-less reference and vgem mappings are
VM_PFNMAP|VM_DONTEXPAND, so ``vma_to_resize`` refuses growth with EFAULT;
udmabuf (before 6.12) maps through a fault handler, so growth succeeds and an
access past the buffer is SIGBUS, reported as ``BadAddress`` (EFAULT) from
``cpu_read``/``cpu_write``.  An access past the mapping is SIGSEGV, reported
the same way.  Which one a buffer gets is its profile's ``mremap_grow``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from conformance.errors import kernel_error
from conformance.model.chunks import system_heap_chunks
from conformance.model.exporter import ModelBuffer
from conformance.model.memory import LINEAR, PAGE_SIZE
from conformance.targets.model_parts.fds import FdTable


@dataclass
class Mapping:
    buffer: ModelBuffer
    offset: int  # bytes into the buffer
    length: int  # bytes, page multiple
    shared: bool
    private: dict[int, bytearray] = field(default_factory=dict)  # MAP_PRIVATE copies


class UserMappings(FdTable):
    """mmap of a dma-buf fd and what the CPU reads and writes through it."""

    _mappings: dict[int, Mapping]

    def mmap(
        self, buf: int, length: int | None = None, offset: int = 0, *, shared: bool = True
    ) -> int:
        fd = self._fd(buf, "mmap")
        b = fd.buffer
        length = b.size if length is None else length
        arg = {"length": length, "offset": offset, "shared": shared}
        if length <= 0 or offset < 0 or offset % PAGE_SIZE:
            raise kernel_error(errno.EINVAL, "mmap", arg)
        # do_mmap: PROT_READ needs FMODE_READ; a shared PROT_WRITE mapping FMODE_WRITE.
        # (accmode 3 gives neither: OPEN_FMODE(3) == 0)
        acc = fd.flags & os.O_ACCMODE
        if acc in (os.O_WRONLY, os.O_ACCMODE) or (shared and acc == os.O_RDONLY):
            raise kernel_error(errno.EACCES, "mmap", arg)
        if not b.profile.has_mmap:  # dma_buf_mmap_internal: no ops->mmap
            raise kernel_error(errno.EINVAL, "mmap", arg)
        pages = (length + PAGE_SIZE - 1) // PAGE_SIZE
        # dma_buf_mmap_internal: vm_pgoff + vma_pages > size >> PAGE_SHIFT
        if b.profile.check_mmap_bounds and offset // PAGE_SIZE + pages > b.size // PAGE_SIZE:
            raise kernel_error(errno.EINVAL, "mmap", arg)
        # every 6.1 exporter's mmap: VM_SHARED required
        if not shared and not b.profile.accept_private:
            raise kernel_error(errno.EINVAL, "mmap", arg)
        h = self._handle()
        self._mappings[h] = Mapping(b, offset, pages * PAGE_SIZE, shared)
        self._hold(b)
        if _leaks_mmap_reference(b):
            self._hold(b)  # faulty (issue 11): a reference munmap never drops
        return h

    def munmap(self, mapping: int) -> None:
        m = self._get(self._mappings, mapping, "mapping")
        del self._mappings[mapping]
        self._put(m.buffer)

    def mremap(self, mapping: int, new_length: int) -> None:
        m = self._get(self._mappings, mapping, "mapping")
        if new_length <= 0:
            raise kernel_error(errno.EINVAL, "mremap", new_length)
        new = (new_length + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        if new > m.length and m.buffer.profile.mremap_grow == "efault":
            raise kernel_error(errno.EFAULT, "mremap", new_length)
        m.length = new

    def _pfn(self, m: Mapping, pos: int, op: str) -> int:
        b = m.buffer
        idx = (m.offset + pos) // PAGE_SIZE
        if b.profile.mmap_pgoff_in_entries and m.offset:
            idx = _page_skipping_entries(b, m.offset // PAGE_SIZE, pos // PAGE_SIZE)
        if idx < len(b.pages):
            return b.pages[idx]
        if not (b.profile.check_mmap_bounds and b.profile.fault_checks_bounds):
            # the fault handler indexes past pages[]: whatever frame lies next
            return b.pages[-1] + idx - len(b.pages) + 1
        raise kernel_error(errno.EFAULT, op, f"SIGBUS: page {idx} is past the buffer's end")

    def _cpu_span(self, m: Mapping, offset: int, length: int, op: str):
        if offset < 0 or length < 0 or offset + length > m.length:
            raise kernel_error(
                errno.EFAULT, op, f"SIGSEGV: {offset}+{length} outside the {m.length} B mapping"
            )
        self.exporter.check_cpu_access(m.buffer, "cpu:user-mapping", op)
        pos, end = offset, offset + length
        while pos < end:
            in_page = (m.offset + pos) % PAGE_SIZE
            n = min(PAGE_SIZE - in_page, end - pos)
            yield self._pfn(m, pos, op), (m.offset + pos) // PAGE_SIZE, in_page, pos - offset, n
            pos += n

    def cpu_read(self, mapping: int, offset: int, length: int) -> bytes:
        m = self._get(self._mappings, mapping, "mapping")
        uncached = m.buffer.profile.uncached_user_mapping
        out = bytearray()
        for pfn, idx, off, _, n in self._cpu_span(m, offset, length, "cpu_read"):
            private = m.private.get(idx)
            if private is not None:
                out += private[off : off + n]
            elif uncached:
                out += self.memory.read(pfn, off, n)
            else:
                out += self.cache.read(pfn, LINEAR, off, n)
        return bytes(out)

    def cpu_write(self, mapping: int, offset: int, data: bytes) -> None:
        m = self._get(self._mappings, mapping, "mapping")
        uncached = m.buffer.profile.uncached_user_mapping
        data = bytes(data)
        for pfn, idx, off, at, n in self._cpu_span(m, offset, len(data), "cpu_write"):
            chunk = data[at : at + n]
            if not m.shared:
                page = m.private.get(idx)
                if page is None:  # copy-on-write from what the CPU sees now
                    page = m.private[idx] = bytearray(self.cache.read(pfn, LINEAR, 0, PAGE_SIZE))
                page[off : off + n] = chunk
            elif uncached:
                self.memory.write(pfn, off, chunk)
            else:
                self.cache.write(pfn, LINEAR, off, chunk)


# -- issue 11: faulty profiles whose mmap path depends on the buffer's chunk orders ----------
def _page_skipping_entries(b: ModelBuffer, pgoff: int, page: int) -> int:
    """The buffer page a mapping's ``page`` shows when mmap skipped ``pgoff`` sg entries
    (system-heap chunks) instead of pages; past the list it maps nothing (SIGBUS)."""
    chunks = system_heap_chunks(len(b.pages))
    if pgoff >= len(chunks):
        return len(b.pages)  # the loop over the entries never started: nothing mapped
    return chunks[pgoff].first + page


def _leaks_mmap_reference(b: ModelBuffer) -> bool:
    """Whether a faulty mmap path takes a reference it never drops (a chunk this big)."""
    order = b.profile.mmap_ref_leak_min_order
    return order >= 0 and any(c.order >= order for c in system_heap_chunks(len(b.pages)))
