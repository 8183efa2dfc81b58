"""Acceptance demo of the probe, run as root inside the QEMU guest.

    python3 qemu/probe/demo.py [--expect-lost] [heap ...]      (default: system)

For each heap: allocate 256 KiB, attach it to the non-coherent probe device,
map FROM_DEVICE, write a pattern from the device, unmap, then read it back
through mmap after DMA_BUF_IOCTL_SYNC START and print what the DMA event log
saw.  The correct system heap must show the pattern; with ``--expect-lost``, in a
guest booted on the kernel of mutant heap-system-unmap-skip-cpu-sync
(qemu/mutants/: unmap with DMA_ATTR_SKIP_CPU_SYNC), it must lose it.  Also checks that an
unprivileged open of /dev/dmabuf_probe is refused.  Exit status 0 when every
expectation held.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from conformance.probe import ProbeClient  # noqa: E402
from conformance.records import Direction, SyncFlag  # noqa: E402

# Minimal heap/dma-buf ioctls, so the demo does not depend on conformance/uapi.
DMA_HEAP_IOCTL_ALLOC = 0xC0184800  # _IOWR('H', 0, struct dma_heap_allocation_data)
DMA_BUF_IOCTL_SYNC = 0x40086200  # _IOW('b', 0, struct dma_buf_sync)
SIZE = 256 << 10


class HeapAlloc(ctypes.Structure):
    _fields_ = [
        ("len", ctypes.c_uint64),
        ("fd", ctypes.c_uint32),
        ("fd_flags", ctypes.c_uint32),
        ("heap_flags", ctypes.c_uint64),
    ]


def heap_alloc(heap: str, size: int) -> int:
    hfd = os.open(f"/dev/dma_heap/{heap}", os.O_RDWR | os.O_CLOEXEC)
    try:
        data = HeapAlloc(len=size, fd_flags=os.O_RDWR | os.O_CLOEXEC)
        fcntl.ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, data, True)
        return int(data.fd)
    finally:
        os.close(hfd)


def dmabuf_sync(fd: int, flags: int) -> None:
    fcntl.ioctl(fd, DMA_BUF_IOCTL_SYNC, ctypes.c_uint64(flags), True)


def pattern(size: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(size))


def device_write_then_cpu_read(probe: ProbeClient, heap: str) -> tuple[bool, list[str]]:
    """True when the CPU sees what the device wrote; and the event log as text."""
    fd = heap_alloc(heap, SIZE)
    try:
        probe.dma_events(None, clear=True)
        att = probe.attach(fd, "noncoherent")
        segs = probe.map(att, Direction.FROM_DEVICE)
        print(f"  {heap}: mapped {len(segs)} DMA segments, {sum(s.length for s in segs)} bytes")
        want = pattern(SIZE)
        probe.device_write(att, 0, want)
        assert probe.device_read(att, 0, SIZE) == want, "device cannot read back its own write"
        print(f"  {heap}: counters while mapped: {probe.counters(fd)}")
        probe.unmap(att, Direction.FROM_DEVICE)
        probe.detach(att)
        m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            dmabuf_sync(fd, SyncFlag.START | SyncFlag.READ)
            got = m[:SIZE]
            dmabuf_sync(fd, SyncFlag.END | SyncFlag.READ)
        finally:
            m.close()
        events = [str(e) for e in probe.dma_events("noncoherent", clear=True)]
        return got == want, events
    finally:
        os.close(fd)


def non_root_refused(path: str) -> int:
    """errno of an unprivileged open of the probe (0 if it was allowed)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.close(os.open(path, os.O_RDWR))
        except OSError as e:
            code = e.errno or 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def other_ops(probe: ProbeClient) -> None:
    """Vmap, kernel CPU access and the coherent device, briefly."""
    fd = heap_alloc("system", 64 << 10)
    try:
        v = probe.vmap(fd)
        probe.vmap_write(v, 100, b"vmap!")
        print(f"  vmap: read back {probe.vmap_read(v, 100, 5)!r}, counters {probe.counters(fd)}")
        probe.vunmap(v)
        probe.begin_cpu_access(fd, Direction.BIDIRECTIONAL)
        probe.end_cpu_access(fd, Direction.BIDIRECTIONAL)
        att = probe.attach(fd, "coherent")
        probe.map(att, Direction.BIDIRECTIONAL)
        print(f"  coherent device sees vmap write: {probe.device_read(att, 100, 5)!r}")
        probe.unmap(att, Direction.BIDIRECTIONAL)
        probe.detach(att)
        print("  events:", ", ".join(str(e) for e in probe.dma_events(None, clear=True)))
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    expect_lost = "--expect-lost" in argv
    heaps = [a for a in argv if a != "--expect-lost"] or ["system"]
    ok = True
    with ProbeClient() as probe:
        print(
            "probe devices:",
            ", ".join(
                f"{d.name}(coherent={d.coherent}, max_segment={d.max_segment}, "
                f"bounce={probe.bounces(d.name)})"
                for d in probe.devices()
            ),
        )
        for heap in heaps:
            if not os.path.exists(f"/dev/dma_heap/{heap}"):
                print(f"  {heap}: no such heap")
                ok = False
                continue
            seen, events = device_write_then_cpu_read(probe, heap)
            expect = not expect_lost
            print(
                f"  {heap}: pattern {'PRESENT' if seen else 'MISSING'} after unmap + SYNC START"
                f" (expected {'present' if expect else 'missing'})"
            )
            print(f"  {heap}: events: {', '.join(events)}")
            ok &= seen == expect
        other_ops(probe)
    err = non_root_refused("/dev/dmabuf_probe")
    print(f"non-root open of /dev/dmabuf_probe: {errno.errorcode.get(err, err)}")
    ok &= err in (errno.EACCES, errno.EPERM)
    print("DEMO", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
