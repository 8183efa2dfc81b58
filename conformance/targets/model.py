"""The reference model as a target: the dma-buf uapi of a correct 6.1 kernel over model exporters.

User-space semantics follow drivers/dma-buf/dma-buf.c and dma-heap.c of 6.1
(errnos in the method comments); kernel-side operations go to the model's
built-in importer.  Choices where 6.1 gives no errno:

* ``mremap`` growth: system heap, CMA-less reference and vgem mappings are
  VM_PFNMAP|VM_DONTEXPAND, so ``vma_to_resize`` refuses growth with EFAULT;
  udmabuf maps through a fault handler, so growth succeeds and an access
  past the buffer is SIGBUS, reported as ``BadAddress`` (EFAULT) from
  ``cpu_read``/``cpu_write``.  An access past the mapping is SIGSEGV,
  reported the same way.
* fds: a process gets ``fd_limit`` of them (RLIMIT_NOFILE's usual soft
  limit, 1024, by default), buffers and sync files alike; past it an
  allocation, ``dup`` or sync-file export fails with EMFILE, and a new
  buffer whose fd cannot be installed is released (dma_heap_ioctl_allocate
  calls dma_buf_put).
* ``allocate`` with ``struct_size < 12``: the kernel allocates but cannot
  return the fd (it lies past the struct), so nothing can name the buffer:
  refused as a SetupError.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import platform
import select
from dataclasses import dataclass, field

from conformance.errors import (
    NotAvailableOnTarget,
    SetupError,
    UnknownExporter,
    kernel_error,
)
from conformance.model.dma import DmaApi
from conformance.model.exporter import Attachment, Exporter, ModelBuffer, OwnershipViolation
from conformance.model.memory import LINEAR, PAGE_SIZE, VMAP, Cache, CacheOp, PhysicalMemory
from conformance.model.profiles import PROFILES, ExporterProfile
from conformance.records import (
    INSTRUMENTS,
    STANDARD_DEVICES,
    DeviceSpec,
    Direction,
    DmaEvent,
    ExporterInfo,
    Instrument,
    KernelHealth,
    SgSegment,
    SyncFlag,
    TargetInfo,
)
from conformance.targets.base import DEFAULT_FD_FLAGS, Target

MiB = 1 << 20
_U64 = (1 << 64) - 1
_VALID_FD_FLAGS = os.O_CLOEXEC | os.O_ACCMODE
_SYNC_VALID = int(SyncFlag.RW | SyncFlag.END)
DMA_BUF_NAME_LEN = 32
_ALLOC_STRUCT_SIZE = 24  # struct dma_heap_allocation_data
_POLL_MASK = select.POLLIN | select.POLLOUT


class UnknownHandle(SetupError):
    """A handle the model never handed out, or one already closed."""


class UnknownDevice(SetupError):
    """A device name the model does not offer."""


@dataclass
class _Fd:
    buffer: ModelBuffer
    flags: int


@dataclass
class _Mapping:
    buffer: ModelBuffer
    offset: int  # bytes into the buffer
    length: int  # bytes, page multiple
    shared: bool
    private: dict[int, bytearray] = field(default_factory=dict)  # MAP_PRIVATE copies


@dataclass
class _Memfd:
    """A shmem memfd: its size, seals and page frames (zeroed, as shmem hands them out)."""

    size: int
    seals: int
    pages: list[int]


# udmabuf.c (6.1): list_limit and size_limit_mb module parameters, seal rules
UDMABUF_LIST_LIMIT = 1024
UDMABUF_PAGE_LIMIT = 64 * MiB // PAGE_SIZE
F_SEAL_SHRINK, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE = 0x2, 0x8, 0x10


@dataclass
class _Vmap:
    buffer: ModelBuffer
    generation: int


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


class ModelTarget(Target):
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
        self._fds: dict[int, _Fd] = {}
        self._mappings: dict[int, _Mapping] = {}
        self._attachments: dict[int, Attachment] = {}
        self._vmaps: dict[int, _Vmap] = {}
        self._kmaps: dict[int, ModelBuffer] = {}
        self._sync_files: set[int] = set()
        self._live: set[int] = set()  # ino of every buffer not yet released
        self._buffers: dict[int, ModelBuffer] = {}
        self._memfds: dict[int, list[_Memfd]] = {}  # udmabuf_create buffer -> its memfds

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

    # -- handles --------------------------------------------------------------------
    def _handle(self) -> int:
        return next(self._handles)

    def _fd(self, buf: int, op: str) -> _Fd:
        fd = self._fds.get(buf)
        if fd is None:
            raise kernel_error(errno.EBADF, op, buf)
        return fd

    def _get(self, table: dict, handle: int, what: str):
        try:
            return table[handle]
        except KeyError:
            raise UnknownHandle(f"no open {what} with handle {handle}") from None

    def _hold(self, b: ModelBuffer) -> None:
        b.refs += 1

    def _put(self, b: ModelBuffer) -> None:
        b.refs -= 1
        if b.refs == 0:
            self.exporter.release(b)
            self._live.discard(b.ino)

    # -- user space: allocation and the fd ---------------------------------------------
    def allocate(
        self,
        exporter: str,
        size: int,
        *,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> int:
        profile = PROFILES.get(exporter)
        if profile is None:
            raise UnknownExporter(
                f"the model has no exporter {exporter!r}; it offers: {', '.join(PROFILES)}"
            )
        op = "DMA_HEAP_IOCTL_ALLOC"
        length, fd_flags, heap_flags = size & _U64, fd_flags & 0xFFFFFFFF, heap_flags & _U64
        if struct_size is not None:
            if struct_size < 12:
                raise SetupError(
                    f"struct_size {struct_size}: the fd field (bytes 8-11) would not be "
                    "copied back, so the new buffer could not be named"
                )
            # dma_heap_ioctl zero-fills what a short struct does not carry
            if struct_size < 16:
                fd_flags = 0
            if struct_size < _ALLOC_STRUCT_SIZE:
                heap_flags = 0
        arg = {"len": size, "fd_flags": fd_flags, "heap_flags": heap_flags}
        if fd_flags & ~_VALID_FD_FLAGS or heap_flags:
            raise kernel_error(errno.EINVAL, op, arg)
        aligned = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & _U64
        if aligned == 0:
            raise kernel_error(errno.EINVAL, op, arg)
        b = self.exporter.allocate(profile, aligned)
        self._buffers[b.ino] = b
        self._live.add(b.ino)
        try:
            return self._open(b, fd_flags, op)
        except OSError:
            if profile.put_on_fd_failure:
                self._hold(b)
                self._put(b)  # the only reference: released with its pages
            raise

    def _check_fd_available(self, op: str) -> None:
        if len(self._fds) + len(self._sync_files) >= self.fd_limit:
            raise kernel_error(errno.EMFILE, op, f"{self.fd_limit} fds open")

    def _open(self, b: ModelBuffer, flags: int, op: str = "dup") -> int:
        self._check_fd_available(op)
        h = self._handle()
        self._fds[h] = _Fd(b, flags)
        self._hold(b)
        return h

    def close(self, buf: int) -> None:
        fd = self._fd(buf, "close")
        del self._fds[buf]
        self._memfds.pop(buf, None)
        self._put(fd.buffer)

    def dup(self, buf: int) -> int:
        fd = self._fd(buf, "dup")
        return self._open(fd.buffer, fd.flags & ~os.O_CLOEXEC)

    def buffer_size(self, buf: int) -> int:
        return self.lseek(buf, 0, os.SEEK_END)

    def lseek(self, buf: int, offset: int, whence: int) -> int:
        b = self._fd(buf, "lseek").buffer
        if whence not in (os.SEEK_SET, os.SEEK_END) or offset != 0:
            raise kernel_error(errno.EINVAL, "lseek", (offset, whence))
        return b.size if whence == os.SEEK_END else 0

    # -- user mappings --------------------------------------------------------------------
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
        pages = (length + PAGE_SIZE - 1) // PAGE_SIZE
        # dma_buf_mmap_internal: vm_pgoff + vma_pages > size >> PAGE_SHIFT
        if b.profile.check_mmap_bounds and offset // PAGE_SIZE + pages > b.size // PAGE_SIZE:
            raise kernel_error(errno.EINVAL, "mmap", arg)
        # every 6.1 exporter's mmap: VM_SHARED required
        if not shared and not b.profile.accept_private:
            raise kernel_error(errno.EINVAL, "mmap", arg)
        h = self._handle()
        self._mappings[h] = _Mapping(b, offset, pages * PAGE_SIZE, shared)
        self._hold(b)
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

    def _pfn(self, m: _Mapping, pos: int, op: str) -> int:
        b = m.buffer
        idx = (m.offset + pos) // PAGE_SIZE
        if idx < len(b.pages):
            return b.pages[idx]
        if not (b.profile.check_mmap_bounds and b.profile.fault_checks_bounds):
            # the fault handler indexes past pages[]: whatever frame lies next
            return b.pages[-1] + idx - len(b.pages) + 1
        raise kernel_error(errno.EFAULT, op, f"SIGBUS: page {idx} is past the buffer's end")

    def _cpu_span(self, m: _Mapping, offset: int, length: int, op: str):
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

    # -- ioctls on the dma-buf fd ---------------------------------------------------------
    def sync(self, buf: int, flags: int) -> None:
        b = self._fd(buf, "DMA_BUF_IOCTL_SYNC").buffer
        op = "DMA_BUF_IOCTL_SYNC"
        if flags & ~_SYNC_VALID or flags < 0:
            raise kernel_error(errno.EINVAL, op, flags)
        rw = flags & SyncFlag.RW
        if rw == 0:
            raise kernel_error(errno.EINVAL, op, flags)
        direction = {
            SyncFlag.READ: Direction.FROM_DEVICE,
            SyncFlag.WRITE: Direction.TO_DEVICE,
            SyncFlag.RW: Direction.BIDIRECTIONAL,
        }[SyncFlag(rw)]
        if flags & SyncFlag.END:
            self.exporter.end_cpu_access(b, direction, op)
        else:
            self.exporter.begin_cpu_access(b, direction, op)

    def set_name(self, buf: int, name: bytes, encoding: str = "B") -> None:
        b = self._fd(buf, "DMA_BUF_SET_NAME").buffer
        if encoding not in ("A", "B", "legacy"):
            raise SetupError(f"set_name encoding {encoding!r}: use 'A', 'B' or 'legacy'")
        op = "DMA_BUF_SET_NAME" + ("" if encoding == "legacy" else f"_{encoding}")
        text = bytes(name).split(b"\0", 1)[0]
        # strndup_user(buf, DMA_BUF_NAME_LEN): the string with its NUL must fit
        if len(text) + 1 > DMA_BUF_NAME_LEN and b.profile.name_len_checked:
            raise kernel_error(errno.EINVAL, op, bytes(name))
        b.name = text.decode("utf-8", "replace")

    def fdinfo(self, buf: int) -> dict[str, str]:
        fd = self._fd(buf, "fdinfo")
        b = fd.buffer
        info = {
            "pos": "0",
            "flags": f"0{fd.flags | os.O_RDWR:o}",
            "mnt_id": "0",
            "ino": str(b.ino),
            "size": str(b.size),
            "count": str(b.refs),
            "exp_name": b.profile.exp_name,
        }
        if b.name is not None:
            info["name"] = b.name
        return info

    @staticmethod
    def _sync_file_flags(flags: int, op: str) -> None:
        if flags & ~int(SyncFlag.RW) or not flags & int(SyncFlag.RW):
            raise kernel_error(errno.EINVAL, op, flags)

    def export_sync_file(self, buf: int, flags: int) -> int:
        self._fd(buf, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        self._sync_file_flags(flags, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        self._check_fd_available("DMA_BUF_IOCTL_EXPORT_SYNC_FILE")
        h = self._handle()  # the model has no pending fences: a signalled stub
        self._sync_files.add(h)
        return h

    def import_sync_file(self, buf: int, sync_file: int, flags: int) -> None:
        op = "DMA_BUF_IOCTL_IMPORT_SYNC_FILE"
        self._fd(buf, op)
        self._sync_file_flags(flags, op)
        if sync_file not in self._sync_files:
            raise kernel_error(errno.EINVAL, op, sync_file)

    def close_sync_file(self, sync_file: int) -> None:
        if sync_file not in self._sync_files:
            raise kernel_error(errno.EBADF, "close", sync_file)
        self._sync_files.discard(sync_file)

    def poll(self, buf: int, events: int, timeout_ms: int = 0) -> int:
        self._fd(buf, "poll")
        return events & _POLL_MASK  # every fence in the model is signalled

    # -- kernel side: the built-in importer ------------------------------------------------
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
        self._vmaps[h] = _Vmap(b, generation)
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
        pos, end = offset, offset + length
        while pos < end:
            idx, off = divmod(pos, PAGE_SIZE)
            n = min(PAGE_SIZE - off, end - pos)
            yield b.pages[idx], off, pos - offset, n
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
        return {
            "attachments": len(b.attachments),
            "maps": sum(a.maps for a in b.attachments),
            "vmap_count": b.vmap_count,
            "kmap_count": b.kmap_count,
            # model only: sg tables the exporter holds DMA-mapped right now
            "dma_mapped": sum(1 for a in b.attachments if a.sgt is not None and a.sgt.mapped),
        }

    def dma_events(self, device: str | None = None, *, clear: bool = True) -> list[DmaEvent]:
        events = [e for e in self.dma.events if device is None or e.device == device]
        if clear:
            if device is None:
                self.dma.events.clear()
            else:
                self.dma.events[:] = [e for e in self.dma.events if e.device != device]
        return events

    def live_buffers(self) -> int:
        return len(self._live)

    # -- exporter-specific: udmabuf, DRM PRIME, fork ------------------------------------
    def _profile_of_kind(self, exporter: str, kind: str, op: str) -> ExporterProfile:
        profile = PROFILES.get(exporter)
        if profile is None or profile.kind != kind:
            names = ", ".join(n for n, p in PROFILES.items() if p.kind == kind)
            raise UnknownExporter(f"{op} needs a model {kind} exporter ({names}), not {exporter!r}")
        return profile

    def _new_memfd(self, size: int, seals: int) -> _Memfd:
        if size < 0:
            raise SetupError(f"udmabuf_create: memfd size {size} is negative")
        pages = self.memory.alloc(-(-size // PAGE_SIZE))
        if pages is None:
            raise kernel_error(errno.ENOMEM, "ftruncate", size)
        for pfn in pages:
            self.cache.write(pfn, LINEAR, 0, bytes(PAGE_SIZE))
        return _Memfd(size, seals, pages)

    def udmabuf_create(
        self,
        exporter: str,
        memfds: list[tuple[int, int]],
        items: list[tuple[int, int, int]],
        *,
        use_list: bool = True,
        count: int | None = None,
    ) -> int:
        """udmabuf_create() of 6.1: every item checked for alignment first, then each memfd."""
        profile = self._profile_of_kind(exporter, "udmabuf", "udmabuf_create")
        if not use_list and (len(items) != 1 or count is not None):
            raise SetupError("UDMABUF_CREATE takes exactly one item and no count")
        files = [self._new_memfd(size, seals) for size, seals in memfds]
        backing = [pfn for f in files for pfn in f.pages]
        try:
            pages = self._udmabuf_pages(profile, files, items, use_list, count, backing)
        except BaseException:
            self.memory.free(backing)
            raise
        b = self.exporter.wrap(profile, pages, backing)
        self._buffers[b.ino] = b
        self._live.add(b.ino)
        h = self._open(b, os.O_RDWR | os.O_CLOEXEC, "UDMABUF_CREATE")
        self._memfds[h] = files
        return h

    def _udmabuf_pages(
        self,
        profile: ExporterProfile,
        files: list[_Memfd],
        items: list[tuple[int, int, int]],
        use_list: bool,
        count: int | None,
        backing: list[int],
    ) -> list[int]:
        op = "UDMABUF_CREATE_LIST" if use_list else "UDMABUF_CREATE"
        n = len(items) if count is None else count
        arg = {"count": n, "items": [tuple(i) for i in items]}
        if use_list and n > UDMABUF_LIST_LIMIT and profile.udmabuf_list_limit:
            raise kernel_error(errno.EINVAL, op, arg)
        if n > len(items):  # memdup_user reads past the items the caller wrote
            raise kernel_error(errno.EFAULT, op, arg)
        ranges = []
        for index, offset, size in items[:n]:
            if not 0 <= index < len(files):
                raise SetupError(f"{op}: memfd index {index}, but {len(files)} memfd(s) made")
            aligned = offset % PAGE_SIZE == 0 and size % PAGE_SIZE == 0
            if not aligned and profile.udmabuf_align_check:
                raise kernel_error(errno.EINVAL, op, arg)
            first = offset // PAGE_SIZE if profile.udmabuf_item_offset else 0
            ranges.append((files[index], first, -(-(offset % PAGE_SIZE + size) // PAGE_SIZE)))
        total = sum(r[2] for r in ranges)
        if total > UDMABUF_PAGE_LIMIT or (total == 0 and profile.udmabuf_rejects_empty):
            raise kernel_error(errno.EINVAL, op, arg)
        pages: list[int] = []
        for f, first, npages in ranges:
            sealed = f.seals & F_SEAL_SHRINK and not f.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)
            if not sealed and profile.udmabuf_seal_check:
                raise kernel_error(errno.EINVAL, op, arg)
            for idx in range(first, first + npages):
                if idx < len(f.pages) and profile.udmabuf_pins_pages:
                    pages.append(f.pages[idx])
                    continue
                if idx < len(f.pages):  # a snapshot: a page of its own with the content
                    copy = self.memory.alloc(1)
                    if copy is None:
                        raise kernel_error(errno.ENOMEM, op, arg)
                    content = self.cache.read(f.pages[idx], LINEAR, 0, PAGE_SIZE)
                    self.cache.write(copy[0], LINEAR, 0, content)
                    backing.extend(copy)
                    pages.extend(copy)
                    continue
                # shmem_read_mapping_page past i_size: EINVAL
                if profile.udmabuf_memfd_bounds:
                    raise kernel_error(errno.EINVAL, op, arg)
                fresh = self.memory.alloc(1)
                if fresh is None:
                    raise kernel_error(errno.ENOMEM, op, arg)
                backing.extend(fresh)
                pages.extend(fresh)
        return pages

    def memfd_write(self, buf: int, memfd: int, offset: int, data: bytes) -> None:
        self._fd(buf, "pwrite")
        files = self._memfds.get(buf, [])
        if not 0 <= memfd < len(files):
            raise SetupError(f"memfd_write: memfd index {memfd}, but the buffer has {len(files)}")
        f, data = files[memfd], bytes(data)
        if offset < 0 or offset + len(data) > f.size:
            raise SetupError(f"memfd_write: {offset}+{len(data)} past the {f.size} B memfd")
        pos = 0
        while pos < len(data):  # write(2) on shmem: through the kernel's cached linear map
            idx, off = divmod(offset + pos, PAGE_SIZE)
            n = min(PAGE_SIZE - off, len(data) - pos)
            self.cache.write(f.pages[idx], LINEAR, off, data[pos : pos + n])
            pos += n

    def prime_import(self, exporter: str, buf: int) -> int:
        """FD_TO_HANDLE, HANDLE_TO_FD, GEM_CLOSE (drm_prime.c of 6.1)."""
        profile = self._profile_of_kind(exporter, "vgem", "prime_import")
        b = self._fd(buf, "DRM_IOCTL_PRIME_FD_TO_HANDLE").buffer
        own = b.profile is profile
        if not profile.prime_reimport_same:
            # a new object with a copy of the pages, exported as a new dma-buf
            copy = self.exporter.allocate(profile, b.size)
            for src, dst in zip(b.pages, copy.pages):
                self.cache.write(dst, LINEAR, 0, self.cache.read(src, LINEAR, 0, PAGE_SIZE))
            self._buffers[copy.ino] = copy
            self._live.add(copy.ino)
            return self._open(copy, os.O_RDWR | os.O_CLOEXEC, "DRM_IOCTL_PRIME_HANDLE_TO_FD")
        # the object's dma-buf (own) or the imported dma-buf itself (foreign): the same buffer
        h = self._open(b, os.O_RDWR | os.O_CLOEXEC, "DRM_IOCTL_PRIME_HANDLE_TO_FD")
        if own and not profile.gem_close_keeps_pages and b.backing != []:
            # GEM_CLOSE of the last handle frees the pages under the live dma-buf
            self.memory.free(b.pages)
            b.backing = []
        return h

    def fork_write(self, mapping: int, offset: int, data: bytes) -> None:
        m = self._get(self._mappings, mapping, "mapping")
        if not m.buffer.profile.mapping_inherited:
            raise kernel_error(errno.EFAULT, "fork_write", "the child was killed by SIGSEGV")
        if m.shared:
            self.cpu_write(mapping, offset, data)
        else:  # the child writes its own copy-on-write copy; the parent sees nothing
            list(self._cpu_span(m, offset, len(data), "fork_write"))

    def fork_mmap_write(self, buf: int, offset: int, data: bytes) -> None:
        self._fd(buf, "fork_mmap_write")
        mapping = self.mmap(buf)
        try:
            self.cpu_write(mapping, offset, data)
        finally:
            self.munmap(mapping)
