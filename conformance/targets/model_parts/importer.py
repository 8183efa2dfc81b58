"""The model's built-in importer: what the probe module does on a real kernel.

attach, map, device DMA, begin/end_cpu_access, vmap, kmap, the buffer's
counters and the DMA event log, all through the model's exporter.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from conformance.errors import NotAvailableOnTarget, SetupError, kernel_error
from conformance.model.exporter import Attachment, ModelBuffer
from conformance.model.memory import PAGE_SIZE, VMAP
from conformance.records import EXPORTER_LOG, DeviceSpec, Direction, DmaEvent, SgSegment
from conformance.targets.model_parts.fds import FdTable


class UnknownDevice(SetupError):
    """A device name the model does not offer."""


@dataclass
class Vmap:
    buffer: ModelBuffer
    generation: int


class KernelImporter(FdTable):
    """Kernel-side operations on a model buffer, as an importing driver makes them."""

    _devices: dict[str, DeviceSpec]
    _warnings: list[str]
    _attachments: dict[int, Attachment]
    _vmaps: dict[int, Vmap]
    _kmaps: dict[int, ModelBuffer]
    _mapping_base: dict[int, int]  # buffer handle -> kernel mappings when first asked

    def attach(self, buf: int, device: str) -> int:
        b = self._fd(buf, "dma_buf_attach").buffer
        dev = self._devices.get(device)
        if dev is None:
            raise UnknownDevice(
                f"the model has no device {device!r}; it offers: {', '.join(self._devices)}"
            )
        a = self.exporter.attach(b, dev)
        self._hold(b)
        h = self._handle()
        self._attachments[h] = a
        return h

    def detach(self, attachment: int) -> None:
        a = self._get(self._attachments, attachment, "attachment")
        if a.maps > 0:
            self._warnings.append(
                f"dma_buf_detach: attachment to {a.device.name} still mapped ({a.maps})"
            )
        self.exporter.detach(a)
        del self._attachments[attachment]
        self._put(a.buffer)

    def map_attachment(self, attachment: int, direction: Direction) -> list[SgSegment]:
        a = self._get(self._attachments, attachment, "attachment")
        sgt = self.exporter.map_attachment(a, Direction(direction))
        return list(sgt.segments)

    def unmap_attachment(self, attachment: int, direction: Direction) -> None:
        a = self._get(self._attachments, attachment, "attachment")
        if a.maps <= 0:
            raise kernel_error(errno.EINVAL, "dma_buf_unmap_attachment", "attachment not mapped")
        self.exporter.unmap_attachment(a, Direction(direction))

    def _device_io(self, attachment: int, offset: int, length: int, op: str):
        a = self._get(self._attachments, attachment, "attachment")
        if a.maps <= 0:
            raise kernel_error(errno.EINVAL, op, "attachment not mapped")
        if offset < 0 or length < 0 or offset + length > a.buffer.size:
            raise kernel_error(errno.EINVAL, op, (offset, length))
        return a

    def device_read(self, attachment: int, offset: int, length: int) -> bytes:
        a = self._device_io(attachment, offset, length, "device_read")
        return self.exporter.device_access(a, offset, length, None)

    def device_write(self, attachment: int, offset: int, data: bytes) -> None:
        a = self._device_io(attachment, offset, len(data), "device_write")
        self.exporter.device_access(a, offset, len(data), bytes(data))

    def begin_cpu_access(self, buf: int, direction: Direction) -> None:
        b = self._fd(buf, "dma_buf_begin_cpu_access").buffer
        self.exporter.begin_cpu_access(b, Direction(direction), "dma_buf_begin_cpu_access")

    def end_cpu_access(self, buf: int, direction: Direction) -> None:
        b = self._fd(buf, "dma_buf_end_cpu_access").buffer
        self.exporter.end_cpu_access(b, Direction(direction), "dma_buf_end_cpu_access")

    def vmap(self, buf: int) -> int:
        b = self._fd(buf, "dma_buf_vmap").buffer
        generation = self.exporter.vmap(b)
        self._hold(b)
        h = self._handle()
        self._vmaps[h] = Vmap(b, generation)
        return h

    def vunmap(self, vmap: int) -> None:
        v = self._get(self._vmaps, vmap, "vmap")
        self.exporter.vunmap(v.buffer)
        del self._vmaps[vmap]
        self._put(v.buffer)

    def _vmap_span(self, vmap: int, offset: int, length: int, op: str):
        v = self._get(self._vmaps, vmap, "vmap")
        b = v.buffer
        if v.generation != b.vmap_generation or not b.vmap_live:
            self._warnings.append(
                f"{op}: buffer {b.ino}: access through a vmap that was torn down "
                "(use after vunmap: an oops on a real kernel)"
            )
            raise kernel_error(errno.EFAULT, op, "kernel mapping gone")
        if offset < 0 or length < 0 or offset + length > b.size:
            raise kernel_error(errno.EINVAL, op, (offset, length))
        self.exporter.check_cpu_access(b, "cpu:vmap", op)
        frames = b.pages if b.vmap_pages is None else b.vmap_pages  # issue 11: a faulty vmap
        pos, end = offset, offset + length
        while pos < end:
            idx, off = divmod(pos, PAGE_SIZE)
            n = min(PAGE_SIZE - off, end - pos)
            yield frames[idx], off, pos - offset, n
            pos += n

    def vmap_read(self, vmap: int, offset: int, length: int) -> bytes:
        out = bytearray()
        for pfn, off, _, n in self._vmap_span(vmap, offset, length, "vmap_read"):
            out += self.cache.read(pfn, VMAP, off, n)
        return bytes(out)

    def vmap_write(self, vmap: int, offset: int, data: bytes) -> None:
        data = bytes(data)
        for pfn, off, at, n in self._vmap_span(vmap, offset, len(data), "vmap_write"):
            self.cache.write(pfn, VMAP, off, data[at : at + n])

    def kmap(self, buf: int, page: int) -> int:
        b = self._fd(buf, "dma_buf_kmap").buffer
        if not b.profile.has_kmap:
            raise NotAvailableOnTarget(
                f"dma_buf_kmap: {b.profile.exporter_name} mirrors a 6.1 exporter, and "
                "dma_buf_kmap was removed in 5.6"
            )
        if page < 0 or page >= len(b.pages):
            raise kernel_error(errno.EINVAL, "dma_buf_kmap", page)
        self.exporter.kmap(b, page)
        self._hold(b)
        h = self._handle()
        self._kmaps[h] = b
        return h

    def kunmap(self, kmap: int) -> None:
        b = self._get(self._kmaps, kmap, "kmap")
        self.exporter.kunmap(b)
        del self._kmaps[kmap]
        self._put(b)

    def counters(self, buf: int) -> dict[str, int]:
        b = self._fd(buf, "counters").buffer
        mappings = int(b.vmap_live or b.kernel_mapping) + b.leaked_vmaps
        # A real kernel's mappings can only be counted as the change since the
        # buffer was first asked about (LocalTarget.counters): the same here, so
        # the two agree whenever the first question comes.
        base = self._mapping_base.setdefault(buf, mappings)
        return {
            "attachments": len(b.attachments),
            "maps": sum(a.maps for a in b.attachments),
            "vmap_count": b.vmap_count,
            "kmap_count": b.kmap_count,
            # kernel virtual mappings of the buffer (what /proc/vmallocinfo shows)
            "kernel_mappings": mappings - base,
            # model only: sg tables the exporter holds DMA-mapped right now
            "dma_mapped": sum(1 for a in b.attachments if a.sgt is not None and a.sgt.mapped),
        }

    def dma_events(self, device: str | None = None, *, clear: bool = True) -> list[DmaEvent]:
        # None: every device, not the exporter-op log (as the probe's ALL_DEVICES)
        def wanted(e: DmaEvent) -> bool:
            return e.device == device if device is not None else e.device != EXPORTER_LOG

        events = [e for e in self.dma.events if wanted(e)]
        if clear:
            self.dma.events[:] = [e for e in self.dma.events if not wanted(e)]
        return events

    def live_buffers(self) -> int:
        return len(self._live)
