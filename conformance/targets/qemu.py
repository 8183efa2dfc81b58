"""The ``qemu`` target: every operation forwarded to the agent in a QEMU guest.

The guest runs ``LocalTarget`` on a kernel built for the suite, so results are
those of real kernel code.  A guest that panics or stops answering turns the
operation in flight into ``GuestError`` (with the console excerpt); ``restart()``
boots a fresh guest so the run can go on with the next case.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from conformance.errors import GuestError
from conformance.guest import protocol
from conformance.qemu.boot import DEFAULT_OP_TIMEOUT, DEFAULT_READY_TIMEOUT, Guest
from conformance.qemu.console import parse_console
from conformance.records import (
    DeviceSpec,
    Direction,
    DmaEvent,
    ExporterInfo,
    KernelHealth,
    SgSegment,
    TargetInfo,
)
from conformance.targets.base import DEFAULT_FD_FLAGS, Target


class QemuTarget(Target):
    name = "qemu"

    def __init__(self, guest: Guest, *, op_timeout: float = DEFAULT_OP_TIMEOUT,
                 ready_timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        self.guest = guest
        self.op_timeout = op_timeout
        self.ready_timeout = ready_timeout
        self._health_mark = 0
        self._info: Optional[TargetInfo] = None

    # -- guest life cycle ----------------------------------------------------------

    def start(self) -> None:
        self.guest.start()
        self.guest.wait_ready(self.ready_timeout)
        self._health_mark = self.guest.console.mark()

    def restart(self) -> None:
        self.guest.restart(self.ready_timeout)
        # Complaints from the dead guest were reported with the case that killed it.
        self._health_mark = self.guest.console.mark()

    def stop(self) -> None:
        self.guest.cleanup()

    def console_excerpt(self, since: int = 0) -> str:
        return self.guest.console_since(since)

    def console_mark(self) -> int:
        return self.guest.console.mark()

    def call(self, op: str, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        msg = self.guest.call_raw(op, args, kwargs, timeout or self.op_timeout)
        if "error" in msg:
            raise protocol.decode_error(msg["error"])
        return protocol.decode_value(msg.get("result"))

    def crash(self, kind: str = "panic", timeout: float = 20.0) -> None:
        """Test-only: panic or hang the guest; always raises GuestError."""
        self.call("crash", kind, timeout=timeout)
        raise GuestError(f"crash({kind!r}) returned: the guest did not crash")

    # -- the target itself -----------------------------------------------------------

    def info(self) -> TargetInfo:
        if self._info is None or not self.guest.alive():
            info: TargetInfo = self.call("info")
            extra = dict(info.extra)
            extra.update({"qemu_arch": self.guest.config.arch,
                          "kernel_config_hash": self.guest.config.kernel.config_hash,
                          # sha256[:16] of the booted image: names the exact kernel judged
                          "kernel_build": self.guest.config.kernel.image_hash,
                          "guest_machine": info.machine})
            self._info = dataclasses.replace(info, target="qemu", extra=extra)
        return self._info

    def exporters(self) -> list[ExporterInfo]:
        return self.call("exporters")

    def devices(self) -> list[DeviceSpec]:
        return self.call("devices")

    def health(self) -> KernelHealth:
        """The agent's view (DMA-API error count, its own log reading) plus the console's."""
        agent: KernelHealth = self.call("health")
        mark = self.guest.console.mark()
        console = parse_console(self.guest.console_since(self._health_mark))
        self._health_mark = mark
        excerpt = "\n".join(x for x in (console.excerpt, agent.log_excerpt) if x)
        # Both sides may see the same report (dmesg and the console): max, not sum.
        return KernelHealth(
            warnings=max(agent.warnings, console.warnings),
            dma_api_errors=max(agent.dma_api_errors, console.dma_api_errors),
            log_excerpt=excerpt,
        )

    def close_all(self) -> None:
        self.call("close_all")

    # -- user space --------------------------------------------------------------------

    def allocate(self, exporter: str, size: int, *, fd_flags: int = DEFAULT_FD_FLAGS,
                 heap_flags: int = 0, struct_size: int | None = None) -> int:
        return self.call("allocate", exporter, size, fd_flags=fd_flags, heap_flags=heap_flags,
                         struct_size=struct_size)

    def close(self, buf: int) -> None:
        self.call("close", buf)

    def dup(self, buf: int) -> int:
        return self.call("dup", buf)

    def buffer_size(self, buf: int) -> int:
        return self.call("buffer_size", buf)

    def lseek(self, buf: int, offset: int, whence: int) -> int:
        return self.call("lseek", buf, offset, whence)

    def mmap(self, buf: int, length: int | None = None, offset: int = 0, *,
             shared: bool = True) -> int:
        return self.call("mmap", buf, length, offset, shared=shared)

    def munmap(self, mapping: int) -> None:
        self.call("munmap", mapping)

    def mremap(self, mapping: int, new_length: int) -> None:
        self.call("mremap", mapping, new_length)

    def cpu_read(self, mapping: int, offset: int, length: int) -> bytes:
        return self.call("cpu_read", mapping, offset, length)

    def cpu_write(self, mapping: int, offset: int, data: bytes) -> None:
        self.call("cpu_write", mapping, offset, data)

    def sync(self, buf: int, flags: int) -> None:
        self.call("sync", buf, int(flags))

    def set_name(self, buf: int, name: bytes, encoding: str = "B") -> None:
        self.call("set_name", buf, name, encoding)

    def fdinfo(self, buf: int) -> dict[str, str]:
        return self.call("fdinfo", buf)

    def export_sync_file(self, buf: int, flags: int) -> int:
        return self.call("export_sync_file", buf, int(flags))

    def import_sync_file(self, buf: int, sync_file: int, flags: int) -> None:
        self.call("import_sync_file", buf, sync_file, int(flags))

    def close_sync_file(self, sync_file: int) -> None:
        self.call("close_sync_file", sync_file)

    def poll(self, buf: int, events: int, timeout_ms: int = 0) -> int:
        return self.call("poll", buf, events, timeout_ms)

    # -- kernel side -------------------------------------------------------------------

    def attach(self, buf: int, device: str) -> int:
        return self.call("attach", buf, device)

    def detach(self, attachment: int) -> None:
        self.call("detach", attachment)

    def map_attachment(self, attachment: int, direction: Direction) -> list[SgSegment]:
        return self.call("map_attachment", attachment, direction)

    def unmap_attachment(self, attachment: int, direction: Direction) -> None:
        self.call("unmap_attachment", attachment, direction)

    def device_read(self, attachment: int, offset: int, length: int) -> bytes:
        return self.call("device_read", attachment, offset, length)

    def device_write(self, attachment: int, offset: int, data: bytes) -> None:
        self.call("device_write", attachment, offset, data)

    def begin_cpu_access(self, buf: int, direction: Direction) -> None:
        self.call("begin_cpu_access", buf, direction)

    def end_cpu_access(self, buf: int, direction: Direction) -> None:
        self.call("end_cpu_access", buf, direction)

    def vmap(self, buf: int) -> int:
        return self.call("vmap", buf)

    def vunmap(self, vmap: int) -> None:
        self.call("vunmap", vmap)

    def vmap_read(self, vmap: int, offset: int, length: int) -> bytes:
        return self.call("vmap_read", vmap, offset, length)

    def vmap_write(self, vmap: int, offset: int, data: bytes) -> None:
        self.call("vmap_write", vmap, offset, data)

    def kmap(self, buf: int, page: int) -> int:
        return self.call("kmap", buf, page)

    def kunmap(self, kmap: int) -> None:
        self.call("kunmap", kmap)

    def counters(self, buf: int) -> dict[str, int]:
        return self.call("counters", buf)

    def dma_events(self, device: str | None = None, *, clear: bool = True) -> list[DmaEvent]:
        return self.call("dma_events", device, clear=clear)

    def live_buffers(self) -> int:
        return self.call("live_buffers")

    # -- exporter-specific ---------------------------------------------------------------

    def udmabuf_create(self, exporter: str, memfds: list[tuple[int, int]],
                       items: list[tuple[int, int, int]], *, use_list: bool = True,
                       count: int | None = None) -> int:
        return self.call("udmabuf_create", exporter, [list(m) for m in memfds],
                         [list(i) for i in items], use_list=use_list, count=count)

    def memfd_write(self, buf: int, memfd: int, offset: int, data: bytes) -> None:
        self.call("memfd_write", buf, memfd, offset, data)

    def prime_import(self, exporter: str, buf: int) -> int:
        return self.call("prime_import", exporter, buf)

    def fork_write(self, mapping: int, offset: int, data: bytes) -> None:
        self.call("fork_write", mapping, offset, data)

    def fork_mmap_write(self, buf: int, offset: int, data: bytes) -> None:
        self.call("fork_mmap_write", buf, offset, data)

    def allocate_in_child(self, exporter: str, size: int) -> str:
        return self.call("allocate_in_child", exporter, size)

    def set_fd_limit(self, soft: int) -> int:
        return self.call("set_fd_limit", soft)

    # -- issue 11: memory account and module parameters (release paths, page leaks,
    # udmabuf's limits): served by the guest's LocalTarget ------------------------------

    def meminfo(self) -> dict[str, int]:
        return self.call("meminfo")

    def module_param(self, module: str, name: str) -> str:
        return self.call("module_param", module, name)

    def set_module_param(self, module: str, name: str, value: str) -> str:
        return self.call("set_module_param", module, name, value)

    # -- issue 11: checksums computed in the guest, an attachment's segments now ----------

    def cpu_digests(self, mapping: int, offset: int, length: int, chunk: int) -> list[int]:
        return self.call("cpu_digests", mapping, offset, length, chunk)

    def device_digests(self, attachment: int, offset: int, length: int, chunk: int) -> list[int]:
        return self.call("device_digests", attachment, offset, length, chunk)

    def vmap_digests(self, vmap: int, offset: int, length: int, chunk: int) -> list[int]:
        return self.call("vmap_digests", vmap, offset, length, chunk)

    def attachment_segments(self, attachment: int) -> list[SgSegment]:
        return self.call("attachment_segments", attachment)

    def cpu_fill(self, mapping: int, offset: int, length: int, chunk: int, seed: int) -> None:
        self.call("cpu_fill", mapping, offset, length, chunk, seed)

    def device_fill(self, attachment: int, offset: int, length: int, chunk: int, seed: int) -> None:
        self.call("device_fill", attachment, offset, length, chunk, seed)

    # -- issue 11 (bad input at volume): one message for a whole batch ------------------------
    def bad_input_batch(self, exporter: str, inputs: list[list]) -> list[int]:
        # under TCG an input costs up to a few ms in the guest: a minute per 10k is generous
        timeout = max(self.op_timeout, 0.01 * len(inputs) + 30)
        return self.call("bad_input_batch", exporter, inputs, timeout=timeout)
