"""ProbeClient: kernel-side dma-buf operations through /dev/dmabuf_probe.

The probe module imports dma-bufs into fake devices inside the kernel; this
client turns its ioctls into the records the targets use.  Every handle the
module hands out belongs to this client's open file, so ``close()`` (or the
process dying) releases all of them in the kernel.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from typing import Any

from conformance.errors import (
    EventsDropped,
    NotAvailableOnTarget,
    ProbeUnavailable,
    SetupError,
    kernel_error,
)
from conformance.probe import uapi
from conformance.records import EXPORTER_LOG, DeviceSpec, Direction, DmaEvent, SgSegment

DEFAULT_PATH = "/dev/dmabuf_probe"

BUILD_HINT = (
    "build and load the probe module for this kernel: "
    "`make -C qemu/probe KDIR=/lib/modules/$(uname -r)/build && "
    "insmod qemu/probe/dmabuf_probe.ko` (needs CONFIG_DMA_SHARED_BUFFER, "
    "CONFIG_KPROBES for the DMA event log; see qemu/probe/README.md)"
)

# Enough for every event the module can hold (3 devices x 4096 slots).
_EVENT_CAPACITY = 3 * 4096
_CLEAR_BATCH = 64  # events read per ioctl when the log is only being emptied
_EXPORTER_PREFIX = "exporter_"


class UnknownDevice(SetupError):
    """A probe device name the module does not register."""


class ProbeClient:
    """One open file on the probe device."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProbeUnavailable(f"{path} does not exist: {BUILD_HINT}") from None
        except PermissionError as e:
            raise ProbeUnavailable(
                f"cannot open {path} ({errno.errorcode.get(e.errno, e.errno)}): "
                "the probe is root only; run the suite as root"
            ) from None
        except OSError as e:
            raise ProbeUnavailable(f"cannot open {path}: {e.strerror}; {BUILD_HINT}") from None
        info = uapi.Info()
        try:
            fcntl.ioctl(self._fd, uapi.Request.DMABUF_PROBE_IOC_INFO, info, True)
        except OSError as e:
            self.close()
            raise ProbeUnavailable(
                f"{path} is not the dmabuf probe (INFO ioctl: {os.strerror(e.errno)}); {BUILD_HINT}"
            ) from None
        if info.abi_version != uapi.ABI_VERSION:
            self.close()
            raise ProbeUnavailable(
                f"{path} speaks probe ABI {info.abi_version}, this suite "
                f"{uapi.ABI_VERSION}: rebuild and reload qemu/probe ({BUILD_HINT})"
            )
        self.flags = info.flags
        self.kernel_version = info.kernel_version
        self._devices = self._read_devices(info.num_devices)

    # -- plumbing -----------------------------------------------------------
    def _ioctl(self, request: uapi.Request, struct: ctypes.Structure, arg: Any) -> None:
        if self._fd is None:
            raise ProbeUnavailable(f"{self.path}: the probe client is closed")
        try:
            fcntl.ioctl(self._fd, request, struct, True)
        except OSError as e:
            raise kernel_error(e.errno, request.name, arg) from None

    def _read_devices(self, count: int) -> list[tuple[DeviceSpec, int, int]]:
        devices = []
        for index in range(count):
            di = uapi.DeviceInfo(index=index)
            self._ioctl(uapi.Request.DMABUF_PROBE_IOC_DEVICE_INFO, di, index)
            spec = DeviceSpec(
                name=di.name.decode(),
                coherent=bool(di.flags & uapi.DEV_COHERENT),
                max_segment=di.max_segment,
                segment_boundary=di.segment_boundary,
            )
            devices.append((spec, di.flags, di.max_mapping))
        return devices

    def _device_name(self, index: int) -> str:
        if 0 <= index < len(self._devices):
            return self._devices[index][0].name
        return f"device{index}"

    @property
    def has_event_log(self) -> bool:
        """False when the module could not place its kprobes (no CONFIG_KPROBES)."""
        return bool(self.flags & uapi.HAVE_KPROBES)

    def exporter_log_live(self) -> bool:
        """Whether the exporter-op log is complete so far (asked afresh: a hook on a
        newly seen exporter can fail at any time and switches the log off)."""
        info = uapi.Info()
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_INFO, info, None)
        return bool(info.flags & uapi.HAVE_EXPORTER_LOG)

    def bounces(self, device: str) -> bool:
        """Whether ``device`` really sees a separate bounce copy (swiotlb=force)."""
        return bool(self._device(device)[1] & uapi.DEV_BOUNCE)

    def max_mapping(self, device: str) -> int:
        """The largest DMA segment ``device`` can map at all (0: no limit).

        Under swiotlb=force this is 256 KiB: an exporter whose sg list has a
        longer segment fails to map for the device (EIO), as on real
        swiotlb-limited hardware.
        """
        return self._device(device)[2]

    def _device(self, device: str) -> tuple[DeviceSpec, int, int]:
        for entry in self._devices:
            if entry[0].name == device:
                return entry
        raise UnknownDevice(self._unknown(device))

    def _unknown(self, device: str) -> str:
        names = ", ".join(spec.name for spec, *_ in self._devices)
        return f"no probe device named {device!r}; the probe has: {names}"

    @staticmethod
    def _direction(direction: Direction | int) -> int:
        try:
            return int(Direction(direction))
        except ValueError:
            raise SetupError(f"{direction!r} is not a DMA direction (0..3)") from None

    # -- the interface targets use ---------------------------------------------
    def devices(self) -> list[DeviceSpec]:
        return [spec for spec, *_ in self._devices]

    def attach(self, dmabuf_fd: int, device: str) -> int:
        if device not in {spec.name for spec, *_ in self._devices}:
            raise UnknownDevice(self._unknown(device))
        a = uapi.Attach(device=device.encode(), fd=dmabuf_fd)
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_ATTACH, a, (dmabuf_fd, device))
        return int(a.id)

    def detach(self, attachment: int) -> None:
        h = uapi.Handle(id=attachment)
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_DETACH, h, attachment)

    def map(self, attachment: int, direction: Direction) -> list[SgSegment]:
        m = uapi.Map(id=attachment, direction=self._direction(direction))
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_MAP, m, (attachment, Direction(direction).name))
        return self.sg_list(attachment, m.nents)

    def sg_list(self, attachment: int, hint: int = 64) -> list[SgSegment]:
        """The DMA segments of a mapped attachment."""
        count = max(hint, 1)
        while True:
            segments = (uapi.Segment * count)()
            q = uapi.Sg(id=attachment, count=count, segments=ctypes.addressof(segments))
            self._ioctl(uapi.Request.DMABUF_PROBE_IOC_SG, q, attachment)
            if q.count <= count:
                return [SgSegment(s.dma_address, s.length) for s in segments[: q.count]]
            count = q.count

    def unmap(self, attachment: int, direction: Direction) -> None:
        m = uapi.Map(id=attachment, direction=self._direction(direction))
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_UNMAP, m, (attachment, Direction(direction).name))

    def _rw(self, request: uapi.Request, ident: int, offset: int, data: bytes | int) -> bytes:
        if isinstance(data, int):
            length, buf = data, ctypes.create_string_buffer(max(data, 1))
        else:
            length, buf = len(data), ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        if offset < 0 or length < 0:
            raise SetupError(f"offset {offset} and length {length} must not be negative")
        rw = uapi.Rw(id=ident, offset=offset, length=length, data=ctypes.addressof(buf))
        self._ioctl(request, rw, (ident, offset, length))
        return buf.raw[:length]

    def device_read(self, attachment: int, offset: int, length: int) -> bytes:
        return self._rw(uapi.Request.DMABUF_PROBE_IOC_DEVICE_READ, attachment, offset, length)

    def device_write(self, attachment: int, offset: int, data: bytes) -> None:
        self._rw(uapi.Request.DMABUF_PROBE_IOC_DEVICE_WRITE, attachment, offset, data)

    def begin_cpu_access(self, dmabuf_fd: int, direction: Direction) -> None:
        c = uapi.CpuAccess(fd=dmabuf_fd, direction=self._direction(direction))
        request = uapi.Request.DMABUF_PROBE_IOC_BEGIN_CPU_ACCESS
        self._ioctl(request, c, (dmabuf_fd, Direction(direction).name))

    def end_cpu_access(self, dmabuf_fd: int, direction: Direction) -> None:
        c = uapi.CpuAccess(fd=dmabuf_fd, direction=self._direction(direction))
        request = uapi.Request.DMABUF_PROBE_IOC_END_CPU_ACCESS
        self._ioctl(request, c, (dmabuf_fd, Direction(direction).name))

    def vmap(self, dmabuf_fd: int) -> int:
        v = uapi.Vmap(fd=dmabuf_fd)
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_VMAP, v, dmabuf_fd)
        return int(v.id)

    def vunmap(self, vmap: int) -> None:
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_VUNMAP, uapi.Handle(id=vmap), vmap)

    def vmap_read(self, vmap: int, offset: int, length: int) -> bytes:
        return self._rw(uapi.Request.DMABUF_PROBE_IOC_VMAP_READ, vmap, offset, length)

    def vmap_write(self, vmap: int, offset: int, data: bytes) -> None:
        self._rw(uapi.Request.DMABUF_PROBE_IOC_VMAP_WRITE, vmap, offset, data)

    def kmap(self, dmabuf_fd: int, page: int) -> int:
        if not self.flags & uapi.HAVE_KMAP:
            raise NotAvailableOnTarget(
                "dma_buf_kmap does not exist on this kernel (removed in 5.6); "
                "kernel CPU access is vmap"
            )
        k = uapi.Kmap(fd=dmabuf_fd, page=page)
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_KMAP, k, (dmabuf_fd, page))
        return int(k.id)

    def kunmap(self, kmap: int) -> None:
        if not self.flags & uapi.HAVE_KMAP:
            raise NotAvailableOnTarget("dma_buf_kunmap does not exist on this kernel")
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_KUNMAP, uapi.Handle(id=kmap), kmap)

    def counters(self, dmabuf_fd: int) -> dict[str, int]:
        c = uapi.Counters(fd=dmabuf_fd)
        self._ioctl(uapi.Request.DMABUF_PROBE_IOC_COUNTERS, c, dmabuf_fd)
        # vmap_count is the dma-buf core's vmapping_counter: the exporter's own
        # counts are private to it (its calls show in dma_events(EXPORTER_LOG)).
        return {"attachments": c.attachments, "maps": c.maps, "vmap_count": c.vmap_count}

    def dma_events(self, device: str | None = None, clear: bool = True) -> list[DmaEvent]:
        """The DMA-API calls made on ``device`` (None: every probe device), or with
        ``device=EXPORTER_LOG`` the exporter's own vmap/vunmap/begin/end_cpu_access
        calls, oldest first.

        Raises ``EventsDropped`` when the log lost events since it was last read
        empty: a partial log must not pass for the whole story.
        """
        if not self.has_event_log:
            raise NotAvailableOnTarget(
                "the probe has no DMA event log on this kernel: it needs CONFIG_KPROBES "
                "(see dmesg for the symbol it could not probe)"
            )
        raw, dropped = self._read_events(device, clear)
        if dropped:
            log = "exporter-op log" if device == EXPORTER_LOG else "DMA event log"
            raise EventsDropped.of(dropped, log)
        return [self._event(e) for e in raw]

    def clear_events(self) -> None:
        """Empty both logs (drops included), as at the start of a case."""
        if not self.has_event_log:
            return
        self._drain(None)
        try:
            self._drain(EXPORTER_LOG)
        except NotAvailableOnTarget:
            pass  # no exporter-op log: nothing to clear

    def _drain(self, device: str | None) -> None:
        # Read-and-clear a small batch at a time until the log is empty: after a case it
        # holds a few events, and a read of the full capacity costs a 384 KiB buffer on
        # each side (vmalloc'd in the kernel), every case.  A short batch means empty.
        while len(self._read_events(device, True, _CLEAR_BATCH)[0]) == _CLEAR_BATCH:
            pass

    def _read_events(self, device: str | None, clear: bool,
                     capacity: int = _EVENT_CAPACITY) -> tuple[list[Any], int]:
        index = uapi.ALL_DEVICES
        if device == EXPORTER_LOG:
            index = uapi.EXPORTER_LOG
        elif device is not None:
            names = [spec.name for spec, *_ in self._devices]
            if device not in names:
                raise UnknownDevice(self._unknown(device))
            index = names.index(device)
        events = (uapi.Event * capacity)()
        q = uapi.Events(
            device=index,
            flags=uapi.EVENTS_CLEAR if clear else 0,
            count=capacity,
            events=ctypes.addressof(events),
        )
        try:
            fcntl.ioctl(self.fileno(), uapi.Request.DMABUF_PROBE_IOC_EVENTS, q, True)
        except OSError as e:
            if device == EXPORTER_LOG and e.errno == errno.EOPNOTSUPP:
                raise NotAvailableOnTarget(
                    "the probe's exporter-op log is off: a kprobe on an exporter's "
                    "vmap/vunmap/begin_cpu_access/end_cpu_access could not be placed "
                    "(dmesg: 'cannot probe the exporter's ...'), so the log would miss calls"
                ) from None
            raise kernel_error(e.errno, "DMABUF_PROBE_IOC_EVENTS", device) from None
        return sorted(events[: q.count], key=lambda e: e.seq), int(q.dropped)

    def _event(self, e: Any) -> DmaEvent:
        op = uapi.Op(e.op).name
        if op.startswith(_EXPORTER_PREFIX):
            return DmaEvent(
                device=EXPORTER_LOG,
                op=op[len(_EXPORTER_PREFIX) :],
                direction=Direction(e.direction),
                length=e.length,
            )
        return DmaEvent(
            device=self._device_name(e.device),
            op=op,
            direction=Direction(e.direction),
            length=e.length,
            skip_cpu_sync=bool(e.flags & uapi.EVENT_SKIP_CPU_SYNC),
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProbeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        if self._fd is None:
            raise ProbeUnavailable(f"{self.path}: the probe client is closed")
        return self._fd
