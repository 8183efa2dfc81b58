"""The one interface a case talks to.

A target is where the kernel is: the in-process reference model, this
machine's kernel, or a QEMU guest.  Cases only ever call the methods below, so
the same case runs unchanged on each.

Conventions, shared by every implementation:

* Buffers, mappings, attachments, vmaps and sync files are named by integer
  handles that the target hands out; the handles are plain ints so that a
  guest target can forward every call as JSON.
* A refused operation raises the ``conformance.errors.KernelError`` subclass
  for its errno, naming the ioctl/syscall and its argument.
* Kernel-side operations (attach, map, vmap, begin/end CPU access, device
  read/write, DMA events) need an importer inside the kernel: the model has
  one built in, real kernels need the probe module.  Without it they raise
  ``ProbeUnavailable``.
* Data crosses as ``bytes``.
"""

from __future__ import annotations

import abc
import os

from conformance.records import (
    DeviceSpec,
    Direction,
    DmaEvent,
    ExporterInfo,
    KernelHealth,
    SgSegment,
    TargetInfo,
)

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any

    from conformance.steps import Step, StepsResult

DEFAULT_FD_FLAGS = os.O_RDWR | os.O_CLOEXEC

# Every operation a case may call, in the order of the interface.  The guest
# agent forwards exactly these; the lockstep checker records exactly these.
OPERATIONS: tuple[str, ...] = (
    "allocate",
    "close",
    "dup",
    "buffer_size",
    "lseek",
    "mmap",
    "munmap",
    "mremap",
    "cpu_read",
    "cpu_write",
    "sync",
    "set_name",
    "fdinfo",
    "export_sync_file",
    "import_sync_file",
    "close_sync_file",
    "poll",
    "attach",
    "detach",
    "map_attachment",
    "unmap_attachment",
    "device_read",
    "device_write",
    "begin_cpu_access",
    "end_cpu_access",
    "vmap",
    "vunmap",
    "vmap_read",
    "vmap_write",
    "kmap",
    "kunmap",
    "counters",
    "dma_events",
    "live_buffers",
    "udmabuf_create",
    "memfd_write",
    "prime_import",
    "fork_write",
    "fork_mmap_write",
)

# -- issue 11 (release paths, page leaks, module limits): the kernel's memory
# account and module parameters.  Through the lockstep like every operation, but
# never compared by value (lockstep's projection keeps nothing of their results):
# a machine's free memory is not the model's, and set_module_param must reach
# the shadow model too, so that both enforce the same limit afterwards.
OPERATIONS = OPERATIONS + ("meminfo", "module_param", "set_module_param")

# -- issue 11 (size ladder, two importers): per-chunk checksums of what a view of the
# buffer reads and fills with a known per-page pattern, so a large buffer is written and
# compared page by page without crossing a guest channel, and the DMA segments an
# attachment holds now (not only at map time).  Digests and segments are not compared by
# value in lockstep (its projection keeps nothing of them): the cases judge.
OPERATIONS = OPERATIONS + (
    "cpu_digests",
    "device_digests",
    "vmap_digests",
    "attachment_segments",
    "cpu_fill",
    "device_fill",
)
# Of those, the ones Target itself implements from the others (read or write, then
# checksum or pattern here); a guest target forwards them so the bytes stay in the guest.
DERIVED_OPERATIONS: tuple[str, ...] = (
    "cpu_digests", "device_digests", "vmap_digests", "cpu_fill", "device_fill",
)


# What an agent (``conformance.guest.agent``) serves besides OPERATIONS: the target
# itself and the process the target runs in; none of them is compared with the model.
# An agent-backed target (``conformance.targets.agent``) forwards all of them.
AGENT_EXTRA_OPERATIONS: tuple[str, ...] = (
    "info",
    "exporters",
    "devices",
    "health",
    "close_all",
    # close_all then health: the bookkeeping after every case, one request instead of two
    "end_case",
    "allocate_in_child",
    "set_fd_limit",
    # a batch of bad inputs answered where the kernel is, compared with the model by the
    # case itself (not through the lockstep)
    "bad_input_batch",
    # several OPERATIONS in one request; a lockstep still compares each of them
    "run_steps",
)

def digests(data: bytes, chunk: int) -> list[int]:
    """``zlib.crc32`` of each ``chunk`` bytes of ``data`` (the last may be shorter)."""
    import zlib

    if chunk <= 0:
        raise ValueError(f"chunk {chunk}: must be positive")
    view = memoryview(data)
    return [zlib.crc32(view[i : i + chunk]) for i in range(0, len(view), chunk)]


def page_pattern(length: int, chunk: int, seed: int) -> bytes:
    """``length`` bytes in which every ``chunk`` differs: ``seed`` and the chunk's index in
    its first 8 bytes, then ``patterns.pattern``, so a page shown in another's place shows
    (a pattern alone repeats every 256 bytes)."""
    import struct

    from conformance.patterns import pattern

    if chunk <= 8:
        raise ValueError(f"chunk {chunk}: must be longer than its 8-byte stamp")
    # Each chunk's body made once per seed, and the whole joined once: a guest fills
    # buffers of hundreds of pages with this, at emulated speed.
    stamp = struct.Struct("<II").pack
    bodies: dict[int, bytes] = {}
    parts: list[bytes] = []
    for i in range((length + chunk - 1) // chunk):
        body_seed = (seed + i) & 0xFF
        body = bodies.get(body_seed)
        if body is None:
            body = bodies[body_seed] = pattern(chunk - 8, seed=body_seed)
        parts += (stamp(seed & 0xFFFFFFFF, i), body)
    return b"".join(parts)[:length]


class Target(abc.ABC):
    """Operations on dma-bufs, from user space and from inside the kernel."""

    name: str = "abstract"

    # -- the target itself -------------------------------------------------
    @abc.abstractmethod
    def info(self) -> TargetInfo:
        """Kernel version, machine, whether the probe is loaded."""

    @abc.abstractmethod
    def exporters(self) -> list[ExporterInfo]:
        """Every exporter this target offers (discovery)."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceSpec]:
        """The importing devices kernel-side operations may name; empty without a probe."""

    def health(self) -> KernelHealth:
        """Kernel warnings and DMA-API debug errors seen since the last call."""
        return KernelHealth()

    def close_all(self) -> None:  # noqa: B027 - optional: stateless targets have nothing to free
        """Release every handle still open (end of a case)."""

    def end_case(self) -> KernelHealth:
        """The bookkeeping after a case: ``close_all``, then ``health``.

        ``close_all`` releases what the case left open and empties the DMA event
        log; ``health`` then sees the kernel's complaints about the case,
        including those its release paths made.  One operation, so a target
        across a link (a guest, a board) answers it in one request; a target
        overriding either method is still asked through it.
        """
        self.close_all()
        return self.health()

    # -- user space: the dma-buf uapi ---------------------------------------
    @abc.abstractmethod
    def allocate(
        self,
        exporter: str,
        size: int,
        *,
        fd_flags: int = DEFAULT_FD_FLAGS,
        heap_flags: int = 0,
        struct_size: int | None = None,
    ) -> int:
        """A new dma-buf of ``size`` bytes from ``exporter``; returns a buffer handle.

        ``fd_flags``/``heap_flags`` go to the heap ALLOC ioctl as given (exporters
        without such flags reject any they cannot honour with EINVAL).
        ``struct_size`` passes a shorter or longer ``dma_heap_allocation_data``
        (the ioctl number encodes the size), for the struct-compatibility rule.
        """

    @abc.abstractmethod
    def close(self, buf: int) -> None:
        """Close the buffer's fd (mappings made from it stay valid)."""

    @abc.abstractmethod
    def dup(self, buf: int) -> int:
        """A second fd for the same dma-buf, as a new buffer handle."""

    @abc.abstractmethod
    def buffer_size(self, buf: int) -> int:
        """The size the kernel reports (``lseek(fd, 0, SEEK_END)``)."""

    @abc.abstractmethod
    def lseek(self, buf: int, offset: int, whence: int) -> int:
        """Raw ``lseek`` on the dma-buf fd."""

    @abc.abstractmethod
    def mmap(
        self, buf: int, length: int | None = None, offset: int = 0, *, shared: bool = True
    ) -> int:
        """Map ``length`` bytes (default: the whole buffer) read/write; returns a mapping handle."""

    @abc.abstractmethod
    def munmap(self, mapping: int) -> None:
        """Unmap."""

    @abc.abstractmethod
    def mremap(self, mapping: int, new_length: int) -> None:
        """Grow or shrink a mapping in place or by moving it (MREMAP_MAYMOVE)."""

    @abc.abstractmethod
    def cpu_read(self, mapping: int, offset: int, length: int) -> bytes:
        """Read through a user mapping."""

    @abc.abstractmethod
    def cpu_write(self, mapping: int, offset: int, data: bytes) -> None:
        """Write through a user mapping."""

    @abc.abstractmethod
    def sync(self, buf: int, flags: int) -> None:
        """``DMA_BUF_IOCTL_SYNC`` with raw ``flags`` (``SyncFlag`` values, or anything)."""

    @abc.abstractmethod
    def set_name(self, buf: int, name: bytes, encoding: str = "B") -> None:
        """``DMA_BUF_SET_NAME``; ``encoding``: ``A`` (u32), ``B`` (u64) or ``legacy``."""

    @abc.abstractmethod
    def fdinfo(self, buf: int) -> dict[str, str]:
        """``/proc/self/fdinfo/<fd>`` as key/value pairs."""

    @abc.abstractmethod
    def export_sync_file(self, buf: int, flags: int) -> int:
        """``DMA_BUF_IOCTL_EXPORT_SYNC_FILE``; returns a sync-file handle."""

    @abc.abstractmethod
    def import_sync_file(self, buf: int, sync_file: int, flags: int) -> None:
        """``DMA_BUF_IOCTL_IMPORT_SYNC_FILE``."""

    @abc.abstractmethod
    def close_sync_file(self, sync_file: int) -> None:
        """Close a sync file."""

    @abc.abstractmethod
    def poll(self, buf: int, events: int, timeout_ms: int = 0) -> int:
        """``poll`` on the dma-buf fd; returns revents."""

    # -- kernel side: an importer inside the kernel --------------------------
    @abc.abstractmethod
    def attach(self, buf: int, device: str) -> int:
        """``dma_buf_attach`` for the named importing device; returns an attachment handle."""

    @abc.abstractmethod
    def detach(self, attachment: int) -> None:
        """``dma_buf_detach``."""

    @abc.abstractmethod
    def map_attachment(self, attachment: int, direction: Direction) -> list[SgSegment]:
        """``dma_buf_map_attachment``; returns the sg list the device got."""

    @abc.abstractmethod
    def unmap_attachment(self, attachment: int, direction: Direction) -> None:
        """``dma_buf_unmap_attachment``."""

    @abc.abstractmethod
    def device_read(self, attachment: int, offset: int, length: int) -> bytes:
        """What the device reads through its DMA view of the mapped sg list."""

    @abc.abstractmethod
    def device_write(self, attachment: int, offset: int, data: bytes) -> None:
        """The device writes through its DMA view of the mapped sg list."""

    @abc.abstractmethod
    def begin_cpu_access(self, buf: int, direction: Direction) -> None:
        """``dma_buf_begin_cpu_access`` from the kernel side."""

    @abc.abstractmethod
    def end_cpu_access(self, buf: int, direction: Direction) -> None:
        """``dma_buf_end_cpu_access`` from the kernel side."""

    @abc.abstractmethod
    def vmap(self, buf: int) -> int:
        """``dma_buf_vmap``; returns a vmap handle."""

    @abc.abstractmethod
    def vunmap(self, vmap: int) -> None:
        """``dma_buf_vunmap``."""

    @abc.abstractmethod
    def vmap_read(self, vmap: int, offset: int, length: int) -> bytes:
        """Read through the kernel vmap."""

    @abc.abstractmethod
    def vmap_write(self, vmap: int, offset: int, data: bytes) -> None:
        """Write through the kernel vmap."""

    @abc.abstractmethod
    def kmap(self, buf: int, page: int) -> int:
        """``dma_buf_kmap`` (kernels before 5.6 and the model); returns a kmap handle."""

    @abc.abstractmethod
    def kunmap(self, kmap: int) -> None:
        """``dma_buf_kunmap``."""

    @abc.abstractmethod
    def counters(self, buf: int) -> dict[str, int]:
        """Exporter-internal counters the target can see: ``attachments``, ``maps``,
        ``vmap_count`` and, where the exporter has one, ``kmap_count``."""

    @abc.abstractmethod
    def dma_events(self, device: str | None = None, *, clear: bool = True) -> list[DmaEvent]:
        """DMA-API calls the exporter made on importing devices since the last clear."""

    @abc.abstractmethod
    def live_buffers(self) -> int:
        """How many dma-bufs the kernel holds right now (debugfs bufinfo), for leak checks."""

    # -- exporter-specific: udmabuf, DRM PRIME, sharing with a child process ----------
    @abc.abstractmethod
    def udmabuf_create(
        self,
        exporter: str,
        memfds: list[tuple[int, int]],
        items: list[tuple[int, int, int]],
        *,
        use_list: bool = True,
        count: int | None = None,
    ) -> int:
        """A udmabuf over fresh memfds; returns a buffer handle.

        ``memfds``: ``(size, seals)`` of each memfd to make (``F_SEAL_*`` bits
        added after ``ftruncate``).  ``items``: ``(memfd index, offset, size)``
        page ranges, passed to ``UDMABUF_CREATE_LIST`` (``use_list``; ``count``
        may lie about ``len(items)``) or, as the single item, to
        ``UDMABUF_CREATE``.  The memfds stay open with the buffer handle for
        ``memfd_write`` and are closed with it.
        """

    @abc.abstractmethod
    def memfd_write(self, buf: int, memfd: int, offset: int, data: bytes) -> None:
        """``pwrite`` into memfd number ``memfd`` of a ``udmabuf_create`` buffer."""

    @abc.abstractmethod
    def prime_import(self, exporter: str, buf: int) -> int:
        """DRM PRIME round trip on ``exporter`` (a DRM device such as vgem).

        FD_TO_HANDLE on the buffer's fd, HANDLE_TO_FD on the GEM handle, then
        GEM_CLOSE of the handle; returns the re-exported dma-buf as a new
        buffer handle.
        """

    @abc.abstractmethod
    def fork_write(self, mapping: int, offset: int, data: bytes) -> None:
        """A forked child writes ``data`` through the mapping it inherited, then exits.

        A child killed by a signal (SIGSEGV: the mapping was not inherited;
        SIGBUS) raises ``BadAddress`` naming the signal.
        """

    @abc.abstractmethod
    def fork_mmap_write(self, buf: int, offset: int, data: bytes) -> None:
        """A forked child maps the inherited buffer fd itself (MAP_SHARED), writes, exits."""

    # -- the process the target runs cases in (not compared with the model) ------------
    def allocate_in_child(self, exporter: str, size: int) -> str:
        """Allocate ``size`` bytes in a child process and say how the child ended.

        ``"ok:<size>"`` (the child got a buffer of that size and closed it),
        ``"errno:<NAME>"`` (the allocation failed, e.g. ``errno:ENOMEM``) or
        ``"signal:<NAME>"`` (the child was killed, e.g. by the OOM killer).
        For requests that may take the machine's memory with them: the case
        sees the outcome, the process serving the target survives.  This
        default allocates in-process, for targets an allocation cannot take
        down (the model).
        """
        from conformance.errors import KernelError

        try:
            buf = self.allocate(exporter, size)
        except KernelError as e:
            return f"errno:{e.errno_name}"
        got = self.buffer_size(buf)
        self.close(buf)
        return f"ok:{got}"

    def set_fd_limit(self, soft: int) -> int:
        """Set the soft RLIMIT_NOFILE of the process holding the target's fds; returns the old."""
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: the fd limit cannot be changed here")

    # -- issue 11: memory account and module parameters (release paths, page leaks,
    # udmabuf's limits).  Not abstract: a target without them says so. ----------------
    def meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` as ``{field: kB}``, plus ``PerCpuFree``.

        ``PerCpuFree`` (kB): free pages parked on the per-CPU page lists
        (``/proc/zoneinfo`` pagesets ``count``), which ``MemFree`` does not
        count; without it a freed page can look used until the list drains.
        Values are the kernel's (``HugePages_*`` are counts, not kB).
        """
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: the memory account cannot be read here")

    def module_param(self, module: str, name: str) -> str:
        """The value of ``/sys/module/<module>/parameters/<name>``, as the kernel prints it."""
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: module parameters cannot be read here")

    def set_module_param(self, module: str, name: str, value: str) -> str:
        """Write ``value`` to a module parameter; returns the value it had before.

        A value the kernel refuses raises its ``KernelError`` (EINVAL for a
        non-number given to an int parameter); a parameter that does not exist
        or cannot be written (no root) raises ``NotAvailableOnTarget``.
        """
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: module parameters cannot be written here")

    # -- issue 11: checksums per chunk through each view, an attachment's segments now.
    # Defaults read through the view and checksum here; a guest target forwards them, so
    # the bytes never cross its channel. --------------------------------------------------
    def cpu_digests(self, mapping: int, offset: int, length: int, chunk: int) -> list[int]:
        """``digests`` of ``cpu_read(mapping, offset, length)``, per ``chunk`` bytes."""
        return digests(self.cpu_read(mapping, offset, length), chunk)

    def device_digests(self, attachment: int, offset: int, length: int, chunk: int) -> list[int]:
        """``digests`` of ``device_read(attachment, offset, length)``, per ``chunk`` bytes."""
        return digests(self.device_read(attachment, offset, length), chunk)

    def vmap_digests(self, vmap: int, offset: int, length: int, chunk: int) -> list[int]:
        """``digests`` of ``vmap_read(vmap, offset, length)``, per ``chunk`` bytes."""
        return digests(self.vmap_read(vmap, offset, length), chunk)

    def attachment_segments(self, attachment: int) -> list[SgSegment]:
        """The DMA segments of a mapped attachment as its importer holds them now.

        ``map_attachment`` returns them at map time; this reads the same table
        again later, so a case sees whether another attachment's map or unmap
        changed them (an exporter sharing one table between attachments).  An
        attachment that is not mapped: EINVAL.
        """
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: an attachment's segments cannot be read again")

    def cpu_fill(self, mapping: int, offset: int, length: int, chunk: int, seed: int) -> None:
        """``cpu_write(mapping, offset, page_pattern(length, chunk, seed))``."""
        self.cpu_write(mapping, offset, page_pattern(length, chunk, seed))

    def device_fill(self, attachment: int, offset: int, length: int, chunk: int, seed: int) -> None:
        """``device_write(attachment, offset, page_pattern(length, chunk, seed))``."""
        self.device_write(attachment, offset, page_pattern(length, chunk, seed))

    # -- issue 11 (bad input at volume): a batch of generated inputs run where the kernel
    # is, so a guest answers ten thousand of them in one round trip. Not in OPERATIONS:
    # the case compares each answer with the reference model's itself. --------------
    def bad_input_batch(self, exporter: str, inputs: list[list]) -> list[int]:
        """Run encoded bad inputs (``conformance.bad_input.inputs``) on ``exporter``.

        Returns one errno per input, 0 where the input was accepted.  The batch
        works on buffers of its own and closes whatever an input made.
        """
        from conformance.errors import NotAvailableOnTarget

        raise NotAvailableOnTarget(f"{self.name}: bad-input batches cannot run here")

    # -- issue 14: several operations in one request. A case that repeats a cycle of
    # operations many times (allocate, map, unmap, close) pays a guest's or a board's
    # round trip once per run of steps instead of once per operation. --------------------
    def run_steps(self, steps: list[Step]) -> StepsResult:
        """Each step's operation in turn, exactly as if the case had called them one by one.

        An ``Earlier(i)`` in a step's arguments stands for the result of step ``i``.
        The run stops at the first refused step (a ``KernelError``), which comes back
        as ``StepsResult.error``, with the results of the steps before it; other
        errors (no probe, a lost guest) are raised as usual.  On a checked target
        each step is still compared with the reference model, one by one.
        """
        from conformance.errors import KernelError
        from conformance.steps import StepsResult, check_steps, resolve_earlier

        check_steps(steps)
        results: list[Any] = []
        for step in steps:
            args, kwargs = resolve_earlier(step, results)
            try:
                results.append(getattr(self, step.op)(*args, **kwargs))
            except KernelError as exc:
                return StepsResult(results, exc)
        return StepsResult(results)
