"""Model operations per second (goal: >= 20,000 simple ops/s).

Run: ``python bench/bench_model.py``.  Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.records import Direction, SyncFlag  # noqa: E402
from conformance.targets.model import ModelTarget  # noqa: E402

PAGE = 4096
DATA = bytes(range(256)) * 4


def simple_mix(t: ModelTarget, rounds: int) -> int:
    """allocate, mmap, sync, cpu_write, attach, map, unmap, detach, close: 12 ops a round."""
    ops = 0
    for _ in range(rounds):
        buf = t.allocate("model:reference", PAGE)
        m = t.mmap(buf)
        t.sync(buf, SyncFlag.START | SyncFlag.WRITE)
        t.cpu_write(m, 0, DATA)
        t.sync(buf, SyncFlag.END | SyncFlag.WRITE)
        a = t.attach(buf, "noncoherent")
        t.map_attachment(a, Direction.TO_DEVICE)
        t.device_read(a, 0, 64)
        t.unmap_attachment(a, Direction.TO_DEVICE)
        t.detach(a)
        t.munmap(m)
        t.close(buf)
        ops += 12
    return ops


def cpu_io(t: ModelTarget, rounds: int) -> int:
    buf = t.allocate("model:reference", 64 * PAGE)
    m = t.mmap(buf)
    for i in range(rounds):
        t.cpu_write(m, (i * 64) % (64 * PAGE), DATA[:64])
        t.cpu_read(m, (i * 128) % (64 * PAGE), 64)
    t.close_all()
    return 2 * rounds


def big_buffer(t: ModelTarget, rounds: int) -> int:
    for _ in range(rounds):
        buf = t.allocate("model:reference", 1 << 20)
        a = t.attach(buf, "noncoherent")
        t.map_attachment(a, Direction.BIDIRECTIONAL)
        t.unmap_attachment(a, Direction.BIDIRECTIONAL)
        t.detach(a)
        t.close(buf)
    return 6 * rounds


def measure(name: str, fn, rounds: int, **options) -> None:
    t = ModelTarget(**options)
    fn(t, max(1, rounds // 10))  # warm up
    t.cmo_log()
    start = time.perf_counter()
    ops = fn(t, rounds)
    elapsed = time.perf_counter() - start
    # the logs grow without a reader; keep them from skewing memory
    t.cmo_log()
    t.dma_events()
    print(f"{name:<44} {ops:>8} ops  {elapsed:7.3f} s  {ops / elapsed:>10,.0f} ops/s")


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    measure("simple mix, 4 KiB buffers (12 ops/round)", simple_mix, 3000)
    measure(
        "simple mix, PIPT cache, no speculation",
        simple_mix,
        3000,
        aliasing=False,
        speculative=False,
    )
    measure("cpu_write/cpu_read 64 B", cpu_io, 30000)
    measure("1 MiB alloc/attach/map/unmap/detach/close", big_buffer, 30)


if __name__ == "__main__":
    main()
