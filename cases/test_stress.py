"""Exporters under pressure: fd exhaustion and many threads allocating at once.

Source: ../shared/notes/uapi-facts.md ("double free or leak when installing
the fd fails"), dma_heap_ioctl_allocate in drivers/dma-buf/dma-heap.c (6.1:
``get_unused_fd_flags`` fails -> ``dma_buf_put``), Android's
libdmabufheap tests (100 threads allocating).

These cases talk to the target under test directly, not through the
step-by-step model comparison: where the fd limit falls and how threads
interleave are properties of the process, not of the exporter, so the
model cannot be expected to agree step by step.  Each case asserts its
contract itself.
"""

from __future__ import annotations

import threading

import pytest

from conformance.errors import KernelError, TooManyOpenFiles
from conformance.lockstep import unchecked
from conformance.patterns import PAGE_SIZE, pattern

# More fds than any usual RLIMIT_NOFILE soft limit (1024): a process that has
# more cannot be exhausted in reasonable time, and the case says so.
MAX_FDS_TRIED = 8192
THREADS = 100


@pytest.mark.leak
@pytest.mark.case("STRESS-001")
def test_fd_exhaustion_fails_cleanly_and_leaks_nothing(target, exporter):
    """When no fd is left, allocation fails with EMFILE and the buffer it made is freed.

    Contract: dma_heap_ioctl_allocate (and every exporter that installs an
    fd) drops the new dma-buf when get_unused_fd_flags fails, so the
    kernel holds no buffer that nobody can name; after closing the fds
    allocation works again.  A failing exporter leaks the buffer and its
    pages on every failed call (or frees it twice and crashes).
    """
    real = unchecked(target)
    before = real.live_buffers()
    held: list[int] = []
    try:
        for _ in range(MAX_FDS_TRIED):
            try:
                held.append(real.allocate(exporter.name, PAGE_SIZE))
            except TooManyOpenFiles:
                break
        else:
            pytest.skip(f"{MAX_FDS_TRIED} fds did not exhaust RLIMIT_NOFILE; lower it to run this")
        for _ in range(3):  # the failure repeats, each time without a trace
            with pytest.raises(TooManyOpenFiles):
                real.allocate(exporter.name, PAGE_SIZE)
        leaked = real.live_buffers() - before - len(held)
        assert leaked == 0, f"{leaked} buffer(s) still live after allocations that failed EMFILE"
    finally:
        for buf in held:
            real.close(buf)
    assert real.live_buffers() == before, "buffers outlived their fds"
    buf = real.allocate(exporter.name, PAGE_SIZE)
    assert real.buffer_size(buf) == PAGE_SIZE
    real.close(buf)


@pytest.mark.alloc
@pytest.mark.case("STRESS-002")
def test_hundred_threads_allocating_at_once_get_distinct_zeroed_buffers(target, exporter):
    """100 threads allocating together each get their own zeroed pages.

    Contract: allocation is thread-safe: concurrent callers never share
    pages, never see each other's data, and all of it is freed after.
    A failing exporter (an unlocked page pool, a racy free list) hands the
    same page to two buffers: one thread's pattern shows up in another's.
    On a guest target the calls are serialised by the channel, so this
    checks back-to-back allocation there; on ``local`` they really overlap.
    """
    real = unchecked(target)
    size = 4 * PAGE_SIZE
    before = real.live_buffers()
    start, written = threading.Barrier(THREADS), threading.Barrier(THREADS)
    errors: list[str] = []
    made: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            start.wait()
            buf = real.allocate(exporter.name, size)
            m = real.mmap(buf)
            with lock:
                made.append((buf, m))
            first = real.cpu_read(m, 0, size)
            real.cpu_write(m, 0, pattern(size, seed=i))
            written.wait()
            if first != bytes(size):
                errors.append(f"thread {i}: new buffer not zeroed")
            if real.cpu_read(m, 0, size) != pattern(size, seed=i):
                errors.append(f"thread {i}: another thread's data in its buffer")
        except (KernelError, threading.BrokenBarrierError) as e:
            errors.append(f"thread {i}: {e}")
            start.abort()
            written.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for buf, m in made:
        real.munmap(m)
        real.close(buf)
    assert not errors, "; ".join(errors[:10])
    assert len(made) == THREADS
    assert real.live_buffers() == before
