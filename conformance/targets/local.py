"""The ``local`` target: this machine's kernel, through its real uapi.

User-space operations go through ``conformance.exporters``; kernel-side ones
(attach, map, vmap, begin/end CPU access, device read/write, DMA events) go
to the probe module through ``conformance.probe.client.ProbeClient``.  The
same class runs as the agent inside a QEMU guest.

Handles are one counter shared by every kind (buffer, mapping, sync file,
attachment, vmap, kmap), so a handle of the wrong kind is never silently
taken for another object.  An unknown buffer or sync-file handle answers
EBADF (what the kernel says for a closed fd); an unknown mapping,
attachment, vmap or kmap handle answers EINVAL.
"""

from __future__ import annotations

import ctypes
import errno
import faulthandler
import mmap
import os
import re
from dataclasses import dataclass, field

from conformance.errors import (
    KernelError,
    NotAvailableOnTarget,
    ProbeUnavailable,
    SetupError,
    kernel_error,
)
from conformance.exporters.base import Exporter
from conformance.exporters.discovery import (
    DEFAULT_PATHS,
    Paths,
    discover,
    unknown_exporter,
    why_none_found,
)
from conformance.exporters.dmabuf import DmaBuf, Mapping
from conformance.exporters.libc import signal_name
from conformance.exporters.udmabuf import ListItem, UdmabufExporter
from conformance.exporters.vgem import VgemExporter
from conformance.records import (
    DeviceSpec,
    Direction,
    DmaEvent,
    ExporterInfo,
    Instrument,
    KernelHealth,
    SgSegment,
    TargetInfo,
)
from conformance.targets.base import DEFAULT_FD_FLAGS, Target
from conformance.uapi.libc import load_libc

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any

PROBE_PATH = "/dev/dmabuf_probe"
PROBE_HINT = (
    "build and load the probe module: "
    "`make -C qemu/probe KDIR=/lib/modules/$(uname -r)/build && "
    "insmod qemu/probe/dmabuf_probe.ko`"
)
DEBUGFS = "/sys/kernel/debug"

# Lines that mean the kernel complained: WARN_ON, BUG_ON, oopses, KASAN & co.
_TROUBLE = re.compile(
    r"WARNING: |BUG: |kernel BUG at|Oops|general protection fault|Unable to handle kernel"
)
# How many DMA-API debug reports (a WARN with its stack each) the kernel prints between
# two health reports; the rest are counted.  More than a health report's excerpt keeps
# (HEALTH_EXCERPT_WARNINGS), so what a case or a generated step is told, and the kinds
# of complaint read from it (conformance/generated/classes.py), are what they were.
HEALTH_EXCERPT_WARNINGS = 20
DMA_API_REPORTS_SHOWN = 32
_TOTAL_OBJECTS = re.compile(r"^Total (\d+) objects", re.MULTILINE)


@dataclass
class _Attachment:
    probe_id: int
    buf: int
    mapped: list[Direction] = field(default_factory=list)


class KmsgReader:
    """New records of /dev/kmsg since the last read, without blocking."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._fd = None  # no kmsg (container, no privilege): health reports nothing
            return
        try:
            os.lseek(self._fd, 0, os.SEEK_END)  # only what happens from now on
        except OSError:
            pass  # not seekable (a pipe standing in for kmsg): everything is new

    @property
    def available(self) -> bool:
        return self._fd is not None

    def read_new(self) -> list[str]:
        if self._fd is None:
            return []
        lines: list[str] = []
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # records overwritten before we read them: go on
                continue
            if not record:
                break
            # records are "prio,seq,ts,flags;message", continuation lines start
            # with a space; one read may carry several records from a pipe
            for line in record.decode("utf-8", "replace").splitlines():
                if line.startswith(" "):
                    lines.append(line.strip())
                elif line:
                    lines.append(line.split(";", 1)[-1])
        return lines

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LocalTarget(Target):
    name = "local"

    def __init__(
        self,
        paths: Paths = DEFAULT_PATHS,
        probe_path: str = PROBE_PATH,
        debugfs: str = DEBUGFS,
        kmsg_path: str = "/dev/kmsg",
    ) -> None:
        self.paths = paths
        self.probe_path = probe_path
        self.debugfs = debugfs
        self._exporters: dict[str, Exporter] | None = None
        self._probe: Any = None
        self._next = 1
        self._buffers: dict[int, DmaBuf] = {}
        self._mappings: dict[int, Mapping] = {}
        self._sync_files: dict[int, int] = {}
        self._attachments: dict[int, _Attachment] = {}
        self._vmaps: dict[int, int] = {}
        self._kmaps: dict[int, int] = {}
        self._memfds: dict[int, list[int]] = {}  # udmabuf_create buffer -> its memfds
        self._mapping_base: dict[int, int] = {}  # buffer -> kernel_mappings when first asked
        self._bufinfo_fd: int | None = None
        self._kmsg_pending: list[str] = []  # read by an operation, not yet by health()
        self._kmsg = KmsgReader(kmsg_path)
        self._report_dma_api_errors_per_case()
        self._dma_api_errors = self._read_dma_api_errors()

    def _report_dma_api_errors_per_case(self) -> None:
        """Make dma-debug print the first errors of every health report, not of the boot.

        By default it prints one report per boot and then only counts, so a
        later case's error would fail it with no line saying which call was
        wrong.  Printing every error (``all_errors``) is no better at scale: an
        exporter that syncs a 515-entry table the wrong way makes two reports
        per entry, 2 MB of WARNs that took 6.5 s of an emulated guest's serial
        console and overflowed the 128 KiB kernel log before it was read.  So
        ``num_errors`` is armed with ``DMA_API_REPORTS_SHOWN`` here and again by
        every ``health`` that found errors: each case (each step of a generated
        sequence) shows its own first reports, and ``error_count`` still counts
        them all.
        """
        if self._write_dma_api("all_errors", "0"):
            self._arm_dma_api_reports()

    def _arm_dma_api_reports(self) -> None:
        self._write_dma_api("num_errors", str(DMA_API_REPORTS_SHOWN))

    def _write_dma_api(self, name: str, value: str) -> bool:
        """Write a dma-debug knob; False where there is none to write (no dma-debug, or
        not root: the instrument says so)."""
        try:
            path = os.path.join(self.debugfs, "dma-api", name)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            os.write(fd, value.encode())
        except OSError:
            pass
        finally:
            os.close(fd)
        return True

    # -- handles -------------------------------------------------------------------
    def _new_handle(self) -> int:
        h = self._next
        self._next += 1
        return h

    def _buf(self, buf: int, op: str) -> DmaBuf:
        try:
            return self._buffers[buf]
        except KeyError:
            raise kernel_error(errno.EBADF, op, {"buf": buf}) from None

    def _lookup(self, table: dict[int, Any], handle: int, op: str, what: str) -> Any:
        try:
            return table[handle]
        except KeyError:
            raise kernel_error(errno.EINVAL, op, {what: handle}) from None

    def open_handles(self) -> dict[str, int]:
        """How many objects of each kind are still open (for leak checks and tests)."""
        return {
            "buffers": len(self._buffers),
            "mappings": len(self._mappings),
            "sync_files": len(self._sync_files),
            "attachments": len(self._attachments),
            "vmaps": len(self._vmaps),
            "kmaps": len(self._kmaps),
        }

    # -- the target itself ---------------------------------------------------------
    def info(self) -> TargetInfo:
        u = os.uname()
        extra = {
            "kernel_version": u.version,
            "probe_path": self.probe_path,
            "mem_total_bytes": str(_mem_total_bytes()),
            "dma_platform": self._dma_platform(u.machine),
        }
        if not self._exporter_table():
            extra["why_no_exporter"] = why_none_found(paths=self.paths)
        return TargetInfo(
            target=self.name,
            kernel=u.release,
            machine=u.machine,
            probe_loaded=os.path.exists(self.probe_path),
            extra=extra,
            page_size=mmap.PAGESIZE,
            instruments=self.instruments(u.machine),
        )

    def instruments(self, machine: str | None = None) -> dict[str, Instrument]:
        """Each of ``records.INSTRUMENTS``: whether this kernel has it, and how that was seen.

        Looked at, not assumed: the probe answering its INFO ioctl, its kprobes
        placed, the non-coherent device bouncing, the DMA-API debug directory,
        kmsg opened, bufinfo readable.  A missing one says what to do about it.
        """
        machine = machine or os.uname().machine
        out: dict[str, Instrument] = {}
        try:
            probe = self._probe_client()
        except SetupError as e:
            probe = None
            out["probe"] = Instrument(False, str(e))
        if probe is not None:
            from conformance.probe.uapi import ABI_VERSION  # the client imported it already

            out["probe"] = Instrument(
                True,
                f"{self.probe_path} (probe ABI {ABI_VERSION}, module built for "
                f"{_kernel_version(probe.kernel_version)})",
            )
            out["dma_event_log"] = self._event_log_instrument(probe)
            out["swiotlb_bounce"] = self._bounce_instrument(probe, machine)
        else:
            why = "needs the probe module, which is not loaded"
            out["dma_event_log"] = Instrument(False, why)
            out["swiotlb_bounce"] = Instrument(False, why)
        out["dma_api_debug"] = self._dma_api_debug_instrument()
        out["kmsg"] = (
            Instrument(True, f"{self._kmsg.path} read after every case")
            if self._kmsg.available
            else Instrument(False, f"cannot open {self._kmsg.path} (needs root, no container)")
        )
        try:
            n = self.live_buffers()
            out["debugfs_bufinfo"] = Instrument(
                True, f"{os.path.join(self.debugfs, 'dma_buf', 'bufinfo')} ({n} buffers now)"
            )
        except SetupError as e:
            out["debugfs_bufinfo"] = Instrument(False, str(e))
        return out

    @staticmethod
    def _event_log_instrument(probe: Any) -> Instrument:
        if not probe.has_event_log:
            return Instrument(
                False,
                "the probe placed no kprobes (CONFIG_KPROBES off, event_log=0, or a DMA-API "
                "entry point could not be probed: see dmesg)",
            )
        try:
            exporter_ops = probe.exporter_log_live()
        except (KernelError, SetupError):
            exporter_ops = False
        ops = (
            "and on the exporters' vmap/vunmap/begin/end_cpu_access"
            if exporter_ops
            else "(exporter-op log off: a hook on an exporter's op failed, see dmesg)"
        )
        return Instrument(True, f"kprobes on the DMA-API entry points {ops}")

    @staticmethod
    def _bounce_instrument(probe: Any, machine: str) -> Instrument:
        try:
            bounces = probe.bounces("noncoherent")
        except SetupError as e:
            return Instrument(False, str(e))
        if bounces:
            detail = "the non-coherent probe devices bounce (swiotlb=force)"
            try:
                if probe.bounces("coherent"):
                    # before 5.15 swiotlb=force has no per-device opt-out
                    detail += (
                        "; so does the coherent one (no per-device swiotlb before 5.15): "
                        "it does not stand for a snooping device on this kernel"
                    )
            except SetupError:
                pass
            return Instrument(True, detail)
        if machine not in ("x86_64", "i686", "i386"):
            # The probe marks its non-coherent devices dma_coherent=false there:
            # the DMA API does real cache maintenance, a missing one shows in data.
            return Instrument(True, f"real cache maintenance on {machine}")
        return Instrument(
            False,
            f"{machine} DMA snoops the CPU caches and the kernel was not booted with "
            "swiotlb=force: a missing cache maintenance call does not show in the data",
        )

    def _dma_api_debug_instrument(self) -> Instrument:
        where = os.path.join(self.debugfs, "dma-api")
        if not os.path.isdir(where):
            try:
                self._mount_debugfs()
            except SetupError:
                pass
        if not os.path.isdir(where):
            return Instrument(
                False, f"no {where} (CONFIG_DMA_API_DEBUG off, or debugfs not mounted)"
            )
        try:
            with open(os.path.join(where, "disabled")) as f:
                disabled = f.read().strip()
        except OSError as e:
            return Instrument(False, f"cannot read {where}/disabled: {e.strerror}")
        if disabled not in ("N", "0"):
            return Instrument(
                False,
                f"{where}/disabled says {disabled!r}: DMA-API debug switched itself off "
                "(out of entries, or dma_debug=off on the command line)",
            )
        return Instrument(True, f"{where} (error_count read after every case)")

    def _dma_platform(self, machine: str) -> str:
        """Which ``conformance.targets.model.PLATFORMS`` entry this machine behaves like.

        With the probe on a swiotlb=force kernel the non-coherent devices see a
        bounce copy; without bouncing, x86 DMA snoops the caches; other
        architectures do real cache maintenance (physically indexed caches).
        """
        try:
            if self._probe_client().bounces("noncoherent"):
                return "swiotlb-bounce"
        except SetupError:
            pass
        if machine in ("x86_64", "i686", "i386"):
            return "coherent"
        return "noncoherent-pipt"

    def _exporter_table(self) -> dict[str, Exporter]:
        if self._exporters is None:
            self._exporters = {e.name: e for e in discover(self.paths)}
        return self._exporters

    def exporter(self, name: str) -> Exporter:
        """The adapter behind an exporter name (raw udmabuf/vgem helpers for special cases)."""
        table = self._exporter_table()
        if name not in table:
            raise unknown_exporter(name, list(table), self.paths)
        return table[name]

    def exporters(self) -> list[ExporterInfo]:
        return [e.info() for e in self._exporter_table().values()]

    def _probe_client(self) -> Any:
        if self._probe is None:
            if not os.path.exists(self.probe_path):
                raise ProbeUnavailable(f"{self.probe_path} does not exist: {PROBE_HINT}")
            try:
                from conformance.probe.client import ProbeClient
            except ImportError as e:
                raise ProbeUnavailable(
                    f"the probe client (conformance.probe.client) cannot be imported: {e}"
                ) from None
            self._probe = ProbeClient(self.probe_path)
        return self._probe

    def devices(self) -> list[DeviceSpec]:
        try:
            return list(self._probe_client().devices())
        except ProbeUnavailable:
            return []

    def _kmsg_lines(self) -> list[str]:
        """New kernel log lines, including those an operation already looked at."""
        lines, self._kmsg_pending = self._kmsg_pending + self._kmsg.read_new(), []
        return lines

    def health(self) -> KernelHealth:
        trouble = [line for line in self._kmsg_lines() if _TROUBLE.search(line)]
        now = self._read_dma_api_errors()
        delta = max(0, now - self._dma_api_errors)
        self._dma_api_errors = now
        if delta:
            self._arm_dma_api_reports()
        return KernelHealth(
            warnings=len(trouble),
            dma_api_errors=delta,
            log_excerpt="\n".join(trouble[:HEALTH_EXCERPT_WARNINGS]),
        )

    def _read_dma_api_errors(self) -> int:
        # Read after every case: plain os calls, a sixth of open()'s cost under TCG.
        # (debugfs' u32 files cannot seek, so the file is opened each time.)
        try:
            fd = os.open(os.path.join(self.debugfs, "dma-api", "error_count"),
                         os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return 0
        try:
            return int(os.read(fd, 32).strip() or 0)
        except (OSError, ValueError):
            return 0
        finally:
            os.close(fd)

    def close_all(self) -> None:
        """Release everything, kernel-side objects first; errors here are not the case's."""
        probe = self._probe
        for kmap in list(self._kmaps):
            self._quietly(probe.kunmap, self._kmaps.pop(kmap))
        for vmap in list(self._vmaps):
            self._quietly(probe.vunmap, self._vmaps.pop(vmap))
        for handle in list(self._attachments):
            att = self._attachments.pop(handle)
            for direction in att.mapped:
                self._quietly(probe.unmap, att.probe_id, direction)
            self._quietly(probe.detach, att.probe_id)
        for mapping in list(self._mappings):
            self._quietly(self._mappings.pop(mapping).unmap)
        for sync_file in list(self._sync_files):
            self._quietly(os.close, self._sync_files.pop(sync_file))
        for buf in list(self._buffers):
            dmabuf = self._buffers.pop(buf)
            if dmabuf.fd >= 0:
                self._quietly(dmabuf.close)
        for buf in list(self._memfds):
            for fd in self._memfds.pop(buf):
                self._quietly(os.close, fd)
        if probe is not None:
            # The teardown above made DMA calls too: the next case starts with an empty log.
            self._quietly(probe.clear_events)
        self._mapping_base.clear()

    @staticmethod
    def _quietly(func: Any, *args: Any) -> None:
        try:
            func(*args)
        except (KernelError, OSError, SetupError):
            pass

    def shutdown(self) -> None:
        """close_all, then the probe, the exporters' device fds and kmsg."""
        self.close_all()
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        for e in (self._exporters or {}).values():
            e.close()
        self._kmsg.close()
        if self._bufinfo_fd is not None:
            os.close(self._bufinfo_fd)
            self._bufinfo_fd = None

    # -- user space -------------------------------------------------------------------
    def allocate(
        self,
        exporter: str,
        size: int,
        *,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> int:
        dmabuf = self.exporter(exporter).allocate(
            size, fd_flags=fd_flags, heap_flags=heap_flags, struct_size=struct_size
        )
        return self.adopt(dmabuf)

    def adopt(self, dmabuf: DmaBuf) -> int:
        """A handle for a dma-buf made outside ``allocate`` (udmabuf lists, PRIME imports)."""
        h = self._new_handle()
        self._buffers[h] = dmabuf
        return h

    def fd(self, buf: int) -> int:
        """The buffer's fd, for helpers that need the raw file."""
        return self._buf(buf, "fd").fd

    def close(self, buf: int) -> None:
        dmabuf = self._buf(buf, "close")
        del self._buffers[buf]
        for fd in self._memfds.pop(buf, []):
            os.close(fd)
        dmabuf.close()

    def dup(self, buf: int) -> int:
        return self.adopt(self._buf(buf, "dup").dup())

    def buffer_size(self, buf: int) -> int:
        return self._buf(buf, "lseek").size

    def lseek(self, buf: int, offset: int, whence: int) -> int:
        return self._buf(buf, "lseek").lseek(offset, whence)

    def mmap(
        self, buf: int, length: int | None = None, offset: int = 0, *, shared: bool = True
    ) -> int:
        mapping = self._buf(buf, "mmap").mmap(length, offset, shared)
        h = self._new_handle()
        self._mappings[h] = mapping
        return h

    def munmap(self, mapping: int) -> None:
        m = self._lookup(self._mappings, mapping, "munmap", "mapping")
        m.unmap()
        del self._mappings[mapping]

    def mremap(self, mapping: int, new_length: int) -> None:
        self._lookup(self._mappings, mapping, "mremap", "mapping").remap(new_length)

    def cpu_read(self, mapping: int, offset: int, length: int) -> bytes:
        return self._lookup(self._mappings, mapping, "cpu_read", "mapping").read(offset, length)

    def cpu_write(self, mapping: int, offset: int, data: bytes) -> None:
        self._lookup(self._mappings, mapping, "cpu_write", "mapping").write(offset, bytes(data))

    def sync(self, buf: int, flags: int) -> None:
        self._buf(buf, "DMA_BUF_IOCTL_SYNC").sync(int(flags))

    def set_name(self, buf: int, name: bytes, encoding: str = "B") -> None:
        self._buf(buf, "DMA_BUF_SET_NAME").set_name(bytes(name), encoding)

    def fdinfo(self, buf: int) -> dict[str, str]:
        return self._buf(buf, "fdinfo").fdinfo()

    def export_sync_file(self, buf: int, flags: int) -> int:
        fd = self._buf(buf, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE").export_sync_file(int(flags))
        h = self._new_handle()
        self._sync_files[h] = fd
        return h

    def import_sync_file(self, buf: int, sync_file: int, flags: int) -> None:
        dmabuf = self._buf(buf, "DMA_BUF_IOCTL_IMPORT_SYNC_FILE")
        # an unknown handle goes to the kernel as fd -1, so the kernel gives its own answer
        dmabuf.import_sync_file(self._sync_files.get(sync_file, -1), int(flags))

    def close_sync_file(self, sync_file: int) -> None:
        if sync_file not in self._sync_files:
            raise kernel_error(errno.EBADF, "close", {"sync_file": sync_file})
        os.close(self._sync_files.pop(sync_file))

    def poll(self, buf: int, events: int, timeout_ms: int = 0) -> int:
        return self._buf(buf, "poll").poll(events, timeout_ms)

    # -- kernel side, through the probe ------------------------------------------------
    def attach(self, buf: int, device: str) -> int:
        fd = self._buf(buf, "dma_buf_attach").fd
        probe_id = self._probe_client().attach(fd, device)
        h = self._new_handle()
        self._attachments[h] = _Attachment(probe_id, buf)
        return h

    def _attachment(self, attachment: int, op: str) -> _Attachment:
        return self._lookup(self._attachments, attachment, op, "attachment")

    def detach(self, attachment: int) -> None:
        att = self._attachment(attachment, "dma_buf_detach")
        self._probe_client().detach(att.probe_id)
        del self._attachments[attachment]

    def map_attachment(self, attachment: int, direction: Direction) -> list[SgSegment]:
        att = self._attachment(attachment, "dma_buf_map_attachment")
        sg = self._probe_client().map(att.probe_id, Direction(direction))
        att.mapped.append(Direction(direction))
        return list(sg)

    def unmap_attachment(self, attachment: int, direction: Direction) -> None:
        att = self._attachment(attachment, "dma_buf_unmap_attachment")
        self._probe_client().unmap(att.probe_id, Direction(direction))
        if Direction(direction) in att.mapped:
            att.mapped.remove(Direction(direction))

    def device_read(self, attachment: int, offset: int, length: int) -> bytes:
        att = self._attachment(attachment, "device_read")
        return self._probe_client().device_read(att.probe_id, offset, length)

    def device_write(self, attachment: int, offset: int, data: bytes) -> None:
        att = self._attachment(attachment, "device_write")
        self._probe_client().device_write(att.probe_id, offset, bytes(data))

    def begin_cpu_access(self, buf: int, direction: Direction) -> None:
        fd = self._buf(buf, "dma_buf_begin_cpu_access").fd
        self._probe_client().begin_cpu_access(fd, Direction(direction))

    def end_cpu_access(self, buf: int, direction: Direction) -> None:
        fd = self._buf(buf, "dma_buf_end_cpu_access").fd
        self._probe_client().end_cpu_access(fd, Direction(direction))

    def vmap(self, buf: int) -> int:
        fd = self._buf(buf, "dma_buf_vmap").fd
        vmap_id = self._probe_client().vmap(fd)
        h = self._new_handle()
        self._vmaps[h] = vmap_id
        return h

    def vunmap(self, vmap: int) -> None:
        vmap_id = self._lookup(self._vmaps, vmap, "dma_buf_vunmap", "vmap")
        self._probe_client().vunmap(vmap_id)
        del self._vmaps[vmap]

    def vmap_read(self, vmap: int, offset: int, length: int) -> bytes:
        vmap_id = self._lookup(self._vmaps, vmap, "vmap_read", "vmap")
        return self._probe_client().vmap_read(vmap_id, offset, length)

    def vmap_write(self, vmap: int, offset: int, data: bytes) -> None:
        vmap_id = self._lookup(self._vmaps, vmap, "vmap_write", "vmap")
        self._probe_client().vmap_write(vmap_id, offset, bytes(data))

    def kmap(self, buf: int, page: int) -> int:
        fd = self._buf(buf, "dma_buf_kmap").fd
        kmap_id = self._probe_client().kmap(fd, page)
        h = self._new_handle()
        self._kmaps[h] = kmap_id
        return h

    def kunmap(self, kmap: int) -> None:
        kmap_id = self._lookup(self._kmaps, kmap, "dma_buf_kunmap", "kmap")
        self._probe_client().kunmap(kmap_id)
        del self._kmaps[kmap]

    def counters(self, buf: int) -> dict[str, int]:
        dmabuf = self._buf(buf, "counters")
        out = dict(self._probe_client().counters(dmabuf.fd))
        mappings = _kernel_mappings(dmabuf.size, mmap.PAGESIZE)
        if mappings is not None:
            # Counted by size, so other mappings of that size are in the count:
            # report what changed since this buffer was first asked about
            # (cases ask before they map), which is what the model reports.
            base = self._mapping_base.setdefault(buf, mappings)
            out["kernel_mappings"] = mappings - base
        return out

    def dma_events(self, device: str | None = None, *, clear: bool = True) -> list[DmaEvent]:
        return list(self._probe_client().dma_events(device, clear))

    # -- exporter-specific ---------------------------------------------------------------
    def _exporter_of(self, exporter: str, kind: type, op: str) -> Any:
        e = self.exporter(exporter)
        if not isinstance(e, kind):
            raise SetupError(f"{op} needs a {kind.kind} exporter; {exporter!r} is a {e.kind}")
        return e

    def udmabuf_create(
        self,
        exporter: str,
        memfds: list[tuple[int, int]],
        items: list[tuple[int, int, int]],
        *,
        use_list: bool = True,
        count: int | None = None,
    ) -> int:
        dev = self._exporter_of(exporter, UdmabufExporter, "udmabuf_create")
        if not use_list and (len(items) != 1 or count is not None):
            raise SetupError("UDMABUF_CREATE takes exactly one item and no count")
        fds: list[int] = []
        try:
            for size, seals in memfds:
                fds.append(dev.make_memfd(size, seals))
            listed = [ListItem(_memfd_at(fds, i, "udmabuf_create"), off, n) for i, off, n in items]
            if use_list:
                dmabuf = dev.create_list(listed, count=count)
            else:
                one = listed[0]
                dmabuf = dev.create(one.memfd, one.offset, one.size, _UDMABUF_FLAGS_CLOEXEC)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        h = self.adopt(dmabuf)
        self._memfds[h] = fds
        return h

    def memfd_write(self, buf: int, memfd: int, offset: int, data: bytes) -> None:
        self._buf(buf, "pwrite")
        fd = _memfd_at(self._memfds.get(buf, []), memfd, "memfd_write")
        data = bytes(data)
        written = _pwrite(fd, data, offset)
        if written != len(data):
            raise kernel_error(errno.EIO, "pwrite", {"memfd": memfd, "short": written})

    def prime_import(self, exporter: str, buf: int) -> int:
        dev = self._exporter_of(exporter, VgemExporter, "prime_import")
        dmabuf = self._buf(buf, "DRM_IOCTL_PRIME_FD_TO_HANDLE")
        handle = dev.import_fd(dmabuf.fd)
        try:
            fd = dev.export(handle)
        finally:
            # the dma-buf holds its own reference: closing the handle must not free it
            dev.close_handle(handle)
        return self.adopt(DmaBuf(fd, dev.name))

    def fork_write(self, mapping: int, offset: int, data: bytes) -> None:
        m = self._lookup(self._mappings, mapping, "fork_write", "mapping")
        _in_child("fork_write", lambda: m.write(offset, bytes(data)))

    def fork_mmap_write(self, buf: int, offset: int, data: bytes) -> None:
        dmabuf = self._buf(buf, "fork_mmap_write")
        _in_child("fork_mmap_write", lambda: dmabuf.mmap().write(offset, bytes(data)))

    # -- the process itself ------------------------------------------------------------
    def allocate_in_child(self, exporter: str, size: int) -> str:
        """See ``Target.allocate_in_child``: a forked child allocates, this process waits.

        The child volunteers for the OOM killer (oom_score_adj 1000): the pages
        of a dma-buf being built are charged to no process, so without it the
        killer may pick the parent, which is the guest agent.
        """
        e = self.exporter(exporter)
        oom_kills = _oom_kills()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = _CHILD_OTHER_ERROR
            faulthandler.disable()  # a kill here is an answer for the parent
            try:
                try:
                    with open("/proc/self/oom_score_adj", "w") as f:
                        f.write("1000")
                except OSError:
                    pass  # not fatal: the outcome still says how the child ended
                dmabuf = e.allocate(size)
                code = 0 if dmabuf.size == size else _CHILD_WRONG_SIZE
                dmabuf.close()
            except KernelError as err:
                code = err.errno if 0 < err.errno < _CHILD_OTHER_ERROR else _CHILD_OTHER_ERROR
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            name = signal_name(os.WTERMSIG(status))
            after = _oom_kills()
            # the kernel log names the victim ("Out of memory: Killed process <pid>")
            self._kmsg_pending += self._kmsg.read_new()
            killed = re.compile(rf"Killed process {pid}\b")
            said = [line for line in self._kmsg_pending if killed.search(line)]
            if said:
                name += f" by the OOM killer (kernel log: {said[0].strip()!r})"
            elif after > oom_kills >= 0:
                name += f" by the OOM killer (/proc/vmstat oom_kill {oom_kills} -> {after})"
            return f"signal:{name}"
        code = os.WEXITSTATUS(status)
        if code == 0:
            return f"ok:{size}"
        if code == _CHILD_WRONG_SIZE:
            return "ok:wrong-size"
        if code == _CHILD_OTHER_ERROR:
            return "error:the child failed before or after the allocation"
        return f"errno:{errno.errorcode.get(code, str(code))}"

    def set_fd_limit(self, soft: int) -> int:
        import resource

        old, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        except (ValueError, OSError) as e:
            raise SetupError(f"cannot set RLIMIT_NOFILE to {soft} (hard {hard}): {e}") from None
        return old

    # -- leak checks -------------------------------------------------------------------
    def live_buffers(self) -> int:
        bufinfo = os.path.join(self.debugfs, "dma_buf", "bufinfo")
        if not os.path.exists(bufinfo):
            self._mount_debugfs()
        try:
            text = self._read_bufinfo(bufinfo)
        except OSError as e:
            raise NotAvailableOnTarget(
                f"cannot read {bufinfo} ({e.strerror}): live-buffer counts need debugfs "
                "(CONFIG_DEBUG_FS) and root"
            ) from None
        m = _TOTAL_OBJECTS.search(text)
        if m is None:
            raise NotAvailableOnTarget(f"{bufinfo} has no 'Total N objects' line: {text[-200:]!r}")
        return int(m.group(1))

    def _read_bufinfo(self, path: str) -> str:
        # Kept open: a leak check reads it while every fd below the limit is
        # taken (STRESS-001), when opening it again would fail with EMFILE.
        if self._bufinfo_fd is None:
            self._bufinfo_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        chunks = []
        try:
            os.lseek(self._bufinfo_fd, 0, os.SEEK_SET)
            # no walrus: the agent runs this on boards' Python 3.7
            chunk = os.read(self._bufinfo_fd, 1 << 16)
            while chunk:
                chunks.append(chunk)
                chunk = os.read(self._bufinfo_fd, 1 << 16)
        except OSError:
            os.close(self._bufinfo_fd)
            self._bufinfo_fd = None
            raise
        return b"".join(chunks).decode("utf-8", "replace")

    def _mount_debugfs(self) -> None:
        if os.path.ismount(self.debugfs) or self.debugfs != DEBUGFS:
            # mounted, but no dma_buf dir, or a stand-in tree (tests): reading will explain
            return
        libc = load_libc()
        if libc.mount(b"debugfs", self.debugfs.encode(), b"debugfs", 0, None) != 0:
            err = ctypes.get_errno()
            raise NotAvailableOnTarget(
                f"debugfs is not mounted at {self.debugfs} and mounting it failed "
                f"({os.strerror(err)}): live-buffer counts need debugfs (CONFIG_DEBUG_FS) "
                "and root"
            )


    # -- issue 11: memory account and module parameters (release paths, page leaks,
    # udmabuf's limits) -------------------------------------------------------------
    proc_root = "/proc"  # instance attributes in tests: a stand-in tree
    sysfs_module_root = "/sys/module"

    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo in kB, plus ``PerCpuFree`` from /proc/zoneinfo (see ``Target``)."""
        path = os.path.join(self.proc_root, "meminfo")
        try:
            with open(path) as f:
                out = _parse_meminfo(f.read())
        except OSError as e:
            raise NotAvailableOnTarget(f"cannot read {path} ({e.strerror})") from None
        if "MemFree" not in out:
            raise NotAvailableOnTarget(f"{path} has no MemFree line")
        out["PerCpuFree"] = _per_cpu_free_kb(os.path.join(self.proc_root, "zoneinfo"))
        return out

    def _module_param_path(self, module: str, name: str) -> str:
        for what, word in (("module", module), ("parameter", name)):
            if not _SYSFS_NAME.match(str(word)):
                raise SetupError(f"{what} name {word!r}: letters, digits and '_' only")
        return os.path.join(self.sysfs_module_root, module, "parameters", name)

    def module_param(self, module: str, name: str) -> str:
        path = self._module_param_path(module, name)
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as e:
            raise NotAvailableOnTarget(_param_unavailable(module, name, path, e)) from None

    def set_module_param(self, module: str, name: str, value: str) -> str:
        old = self.module_param(module, name)
        path = self._module_param_path(module, name)
        try:
            # one write(2): the kernel parses the whole value at once (param_attr_store);
            # O_TRUNC as a shell's ">" (sysfs ignores it, a stand-in file needs it)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        except OSError as e:
            raise NotAvailableOnTarget(_param_unavailable(module, name, path, e)) from None
        try:
            os.write(fd, f"{value}\n".encode())
        except OSError as e:
            # the kernel refused the value (EINVAL from kstrtoint & co.)
            raise kernel_error(e.errno or errno.EIO, f"write {path}", value) from None
        finally:
            os.close(fd)
        return old

    # -- issue 11: an attachment's segments read again (the per-page digests and fills
    # are the base class's: run here, in the guest when this is the agent) --------------
    def attachment_segments(self, attachment: int) -> list[SgSegment]:
        att = self._attachment(attachment, "attachment_segments")
        # the probe's IOC_SG reads the table dma_buf_map_attachment returned (EINVAL unmapped)
        return list(self._probe_client().sg_list(att.probe_id))

    # -- issue 11 (bad input at volume): the batch runs here, raw syscalls per input --------
    def bad_input_batch(self, exporter: str, inputs: list[list]) -> list[int]:
        from conformance.bad_input.local import run_batch

        return run_batch(self, exporter, inputs)


_UDMABUF_FLAGS_CLOEXEC = 0x01  # include/uapi/linux/udmabuf.h
# What a child reports by exit status: 0 done, 1 the write raised (its errno is lost).
_CHILD_RAISED = 1
# allocate_in_child: exit status 0 ok, an errno, or one of these (above every errno)
_CHILD_WRONG_SIZE = 254
_CHILD_OTHER_ERROR = 255


def _memfd_at(fds: list[int], index: int, op: str) -> int:
    if not 0 <= index < len(fds):
        raise SetupError(f"{op}: memfd index {index}, but the buffer has {len(fds)} memfd(s)")
    return fds[index]


def _pwrite(fd: int, data: bytes, offset: int) -> int:
    try:
        return os.pwrite(fd, data, offset)
    except OSError as e:
        raise kernel_error(e.errno or errno.EIO, "pwrite", {"offset": offset}) from None


def _in_child(op: str, action: Any) -> None:
    """Run ``action`` in a forked child and report how the child ended.

    The child leaves with ``os._exit``: no atexit handlers, no flushing of
    buffers it shares with the parent (the guest agent's serial port).
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = _CHILD_RAISED
        # a fault here is an answer for the parent, not a crash to dump
        faulthandler.disable()
        try:
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise kernel_error(errno.EFAULT, op, f"the child was killed by {signal_name(sig)}")
    if os.WEXITSTATUS(status) != 0:
        raise kernel_error(errno.EFAULT, op, "the child's write failed")


def _kernel_version(code: int) -> str:
    """LINUX_VERSION_CODE as a.b.c."""
    return f"{code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}"


_VMALLOCINFO = "/proc/vmallocinfo"


def _kernel_mappings(size: int, page: int) -> int | None:
    """Kernel virtual mappings of ``size`` bytes now: vmap() areas (with their
    guard page) and vm_map_ram() ones, from /proc/vmallocinfo; None if unreadable.

    Keyed by size only, so cases use an unusual page count; vm_map_ram
    mappings of 64 pages or fewer live in per-CPU blocks and are not listed.
    """
    try:
        with open(_VMALLOCINFO) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    sizes = {size, size + page}
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) not in sizes:
            continue
        if "vmap" in fields[2:] or "vm_map_ram" in fields[2:]:
            count += 1
    return count


def _oom_kills() -> int:
    """oom_kill from /proc/vmstat (4.13+): how many tasks the OOM killer ended; -1 unknown."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return -1


def _mem_total_bytes() -> int:
    """MemTotal from /proc/meminfo (0 when unreadable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# -- issue 11: memory account and module parameters -------------------------------------
_SYSFS_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_PCP_COUNT = re.compile(r"^\s+count:\s+(\d+)\s*$", re.MULTILINE)


def _parse_meminfo(text: str) -> dict[str, int]:
    """``Name:   123 kB`` lines as ``{Name: 123}`` (kB; counts where the kernel gives counts)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        words = rest.split()
        if sep and words and words[0].isdigit():
            out[key.strip()] = int(words[0])
    return out


def _per_cpu_free_kb(zoneinfo: str) -> int:
    """Free pages on the per-CPU page lists (every zone's pagesets ``count``), in kB.

    Freed order-0 pages go to the freeing CPU's list first and reach the
    buddy allocator (and ``MemFree``) only when the list passes its ``high``
    mark, a thousand pages and more on a 1 GiB machine.  0 when unreadable.
    """
    try:
        with open(zoneinfo) as f:
            text = f.read()
    except OSError:
        return 0
    pages = sum(int(n) for n in _PCP_COUNT.findall(text))
    return pages * mmap.PAGESIZE // 1024


def _param_unavailable(module: str, name: str, path: str, e: OSError) -> str:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return (
            f"{module} has no module parameter {name} ({path} does not exist: the module is "
            "not loaded, or this kernel's version of it has no such parameter)"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot access {path} ({e.strerror}): module parameters need root"
    return f"cannot access {path} ({e.strerror})"

