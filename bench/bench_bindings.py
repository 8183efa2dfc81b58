"""Where the time of a binding call goes, layer by layer, inside the guest.

    python bench/bench_bindings.py              # boot a guest, run the layers there, print
    python bench/bench_bindings.py --in-guest   # (what the guest runs) print one JSON line

bench_qemu.py gives one figure per operation (through ``LocalTarget``, as the
agent serves it).  This splits that figure: the same two loops (allocate+close
on heap:system, a SYNC start+end pair) at each layer, from the target down to a
bare ioctl, and the interpreter's own floor (an empty call, a bare
``os.close(os.dup())``), so one can tell what the bindings cost on top of what
any Python code pays under TCG.  Printed, never asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEAP = "/dev/dma_heap/system"
SIZE = 4096
SYNC_START_RW = 0 | 3
SYNC_END_RW = 4 | 3


def _per_iter_us(loop: Callable[[int], None], n: int, rounds: int = 5) -> float:
    """Best of ``rounds``: the host runs other guests too, and noise only ever adds time."""
    loop(max(1, n // 10))  # warm up: first calls pay imports and ctypes caches
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        loop(n)
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def guest_layers(n: int) -> dict[str, float]:
    from conformance.exporters.heap import HeapExporter
    from conformance.targets.local import LocalTarget
    from conformance.uapi import dma_buf, dma_heap
    from conformance.uapi.ioctl import ioctl

    alloc_req = int(dma_heap.DMA_HEAP_IOCTL_ALLOC)
    sync_req = int(dma_buf.DMA_BUF_IOCTL_SYNC)
    out: dict[str, float] = {}

    # -- the interpreter's floor ---------------------------------------------------
    def noop() -> None:
        pass

    def empty(k: int) -> None:
        for _ in range(k):
            noop()

    def dup_close(k: int) -> None:
        fd = os.open("/dev/null", os.O_RDONLY)
        for _ in range(k):
            os.close(os.dup(fd))
        os.close(fd)

    out["floor_call_us"] = _per_iter_us(empty, n)
    out["floor_dup_close_us"] = _per_iter_us(dup_close, n)

    # -- allocate+close ------------------------------------------------------------
    target = LocalTarget()

    def target_alloc(k: int) -> None:
        for _ in range(k):
            target.close(target.allocate("heap:system", SIZE))

    heap = HeapExporter("system")

    def exporter_alloc(k: int) -> None:
        for _ in range(k):
            heap.allocate(SIZE).close()

    heap_fd = os.open(HEAP, os.O_RDONLY | os.O_CLOEXEC)

    def uapi_alloc(k: int) -> None:
        for _ in range(k):
            a = dma_heap.dma_heap_allocation_data(len=SIZE, fd_flags=os.O_RDWR | os.O_CLOEXEC)
            ioctl(heap_fd, alloc_req, a)
            os.close(a.fd)

    packer = struct.Struct("=QIIQ")
    fd_flags = os.O_RDWR | os.O_CLOEXEC

    def fcntl_alloc(k: int) -> None:
        for _ in range(k):
            r = fcntl.ioctl(heap_fd, alloc_req, packer.pack(SIZE, 0, fd_flags, 0))
            os.close(packer.unpack(r)[1])

    libc = ctypes.CDLL(None, use_errno=True)
    raw_ioctl = libc.ioctl
    raw_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    raw_ioctl.restype = ctypes.c_int
    one = dma_heap.dma_heap_allocation_data()
    one_addr = ctypes.addressof(one)

    def ctypes_alloc(k: int) -> None:
        for _ in range(k):
            one.len, one.fd, one.fd_flags = SIZE, 0, fd_flags
            raw_ioctl(heap_fd, alloc_req, one_addr)
            os.close(one.fd)

    for name, loop in (("target", target_alloc), ("exporter", exporter_alloc),
                       ("uapi_ioctl", uapi_alloc), ("raw_fcntl", fcntl_alloc),
                       ("raw_ctypes", ctypes_alloc)):
        out[f"alloc_close_{name}_us"] = _per_iter_us(loop, n)

    # -- SYNC start+end ------------------------------------------------------------
    buf = target.allocate("heap:system", SIZE)
    dmabuf = heap.allocate(SIZE)
    fd = dmabuf.fd

    def target_sync(k: int) -> None:
        for _ in range(k):
            target.sync(buf, SYNC_START_RW)
            target.sync(buf, SYNC_END_RW)

    def exporter_sync(k: int) -> None:
        for _ in range(k):
            dmabuf.sync(SYNC_START_RW)
            dmabuf.sync(SYNC_END_RW)

    def uapi_sync(k: int) -> None:
        for _ in range(k):
            ioctl(fd, sync_req, dma_buf.dma_buf_sync(flags=SYNC_START_RW))
            ioctl(fd, sync_req, dma_buf.dma_buf_sync(flags=SYNC_END_RW))

    start_b, end_b = struct.pack("=Q", SYNC_START_RW), struct.pack("=Q", SYNC_END_RW)

    def fcntl_sync(k: int) -> None:
        for _ in range(k):
            fcntl.ioctl(fd, sync_req, start_b)
            fcntl.ioctl(fd, sync_req, end_b)

    start_ba, end_ba = bytearray(start_b), bytearray(end_b)

    def fcntl_sync_mutable(k: int) -> None:
        for _ in range(k):
            fcntl.ioctl(fd, sync_req, start_ba)
            fcntl.ioctl(fd, sync_req, end_ba)

    def fcntl_sync_packed(k: int) -> None:
        pack = struct.Struct("=Q").pack
        for _ in range(k):
            fcntl.ioctl(fd, sync_req, bytearray(pack(SYNC_START_RW)))
            fcntl.ioctl(fd, sync_req, bytearray(pack(SYNC_END_RW)))

    start_s = dma_buf.dma_buf_sync(flags=SYNC_START_RW)
    end_s = dma_buf.dma_buf_sync(flags=SYNC_END_RW)
    start_a, end_a = ctypes.addressof(start_s), ctypes.addressof(end_s)

    def ctypes_sync(k: int) -> None:
        for _ in range(k):
            raw_ioctl(fd, sync_req, start_a)
            raw_ioctl(fd, sync_req, end_a)

    for name, loop in (("target", target_sync), ("exporter", exporter_sync),
                       ("uapi_ioctl", uapi_sync), ("raw_fcntl", fcntl_sync),
                       ("raw_fcntl_bytearray", fcntl_sync_mutable),
                       ("raw_fcntl_pack_bytearray", fcntl_sync_packed),
                       ("raw_ctypes", ctypes_sync)):
        out[f"sync_pair_{name}_us"] = _per_iter_us(loop, n)

    dmabuf.close()
    os.close(heap_fd)
    target.shutdown()
    return out


def host(loops: int) -> int:
    sys.path.insert(0, str(REPO / "bench"))
    from bench_qemu import _c_loop

    from conformance.qemu.boot import Guest, GuestConfig
    from conformance.qemu.kernel import ensure_kernel
    from conformance.targets.qemu import QemuTarget

    target = QemuTarget(Guest(GuestConfig(kernel=ensure_kernel())))
    try:
        target.start()
        r = target.call("exec", [sys.executable, str(Path(__file__).resolve()), "--in-guest",
                                 "--loops", str(loops)], timeout=600)
        if r["returncode"] != 0:
            print(r["stderr"], file=sys.stderr)
            return 1
        py = json.loads(r["stdout"].strip().splitlines()[-1])
        c = _c_loop(target, loops)
    finally:
        target.stop()
    print(f"{'layer (in the guest, TCG)':<40} {'us/iter':>9} {'x C':>7}")
    for key, value in py.items():
        ref = (c.get("alloc_close_us") if key.startswith("alloc") else
               c.get("sync_start_end_us") if key.startswith("sync") else None)
        ratio = f"{value / ref:.2f}" if ref else ""
        print(f"{key:<40} {value:>9.2f} {ratio:>7}")
    for key, value in c.items():
        print(f"{'C ' + key:<40} {value:>9.2f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-guest", action="store_true", help="run the layers here, print JSON")
    ap.add_argument("--loops", type=int, default=2000)
    args = ap.parse_args()
    if args.in_guest:
        print(json.dumps({k: round(v, 2) for k, v in guest_layers(args.loops).items()}))
        return 0
    return host(args.loops)


if __name__ == "__main__":
    sys.exit(main())
