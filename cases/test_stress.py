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
from conformance.patterns import pattern
from conformance.steps import Step

# More fds than any usual RLIMIT_NOFILE soft limit (1024).  A process allowed
# more is given a lower soft limit for the case (and its own back after).
MAX_FDS_TRIED = 8192
LOWERED_LIMIT = 1024
THREADS = 100
STEPS_PER_REQUEST = 512


def _allocate_until_emfile(real, exporter: str, held: list[int], size: int, most: int) -> bool:
    """Allocate into ``held`` until EMFILE (True) or ``most`` more buffers (False).

    ``STEPS_PER_REQUEST`` allocations go as one run of steps: a guest answers a
    thousand of them in a few requests instead of a thousand.
    """
    left = most
    while left > 0:
        n = min(left, STEPS_PER_REQUEST)
        ran = real.run_steps([Step("allocate", (exporter, size))] * n)
        held.extend(ran.results)
        if isinstance(ran.error, TooManyOpenFiles):
            return True
        if ran.error is not None:
            raise ran.error
        left -= n
    return False


def _close_all_of(real, held: list[int]) -> None:
    for at in range(0, len(held), STEPS_PER_REQUEST):
        ran = real.run_steps([Step("close", (buf,)) for buf in held[at:at + STEPS_PER_REQUEST]])
        if ran.error is not None:
            raise ran.error


@pytest.mark.leak
@pytest.mark.case("STRESS-001")
@pytest.mark.needs("debugfs_bufinfo")
def test_fd_exhaustion_fails_cleanly_and_leaks_nothing(target, exporter, pages):
    """When no fd is left, allocation fails with EMFILE and the buffer it made is freed.

    Contract: dma_heap_ioctl_allocate (and every exporter that installs an
    fd) drops the new dma-buf when get_unused_fd_flags fails, so the
    kernel holds no buffer that nobody can name; after closing the fds
    allocation works again.  A failing exporter leaks the buffer and its
    pages on every failed call (or frees it twice and crashes).  When
    8192 buffers do not exhaust the process's fds, its soft RLIMIT_NOFILE is
    lowered to 1024 for the case and restored after it.  Finding: 5.10's
    udmabuf_create ends with ``return dma_buf_fd(buf, flags)`` and leaks the
    buffer when that fails (6.1 puts it).
    """
    real = unchecked(target)
    size = pages(1)
    before = real.live_buffers()
    held: list[int] = []
    old_limit: int | None = None
    try:
        if not _allocate_until_emfile(real, exporter.name, held, size, MAX_FDS_TRIED):
            old_limit = real.set_fd_limit(LOWERED_LIMIT)
            # fds below the new limit left free are filled first, then EMFILE
            if not _allocate_until_emfile(real, exporter.name, held, size, LOWERED_LIMIT):
                pytest.fail(f"no EMFILE after lowering RLIMIT_NOFILE to {LOWERED_LIMIT}")
        for _ in range(3):  # the failure repeats, each time without a trace
            with pytest.raises(TooManyOpenFiles):
                real.allocate(exporter.name, size)
        leaked = real.live_buffers() - before - len(held)
        assert leaked == 0, f"{leaked} buffer(s) still live after allocations that failed EMFILE"
    finally:
        _close_all_of(real, held)
        if old_limit is not None:
            real.set_fd_limit(old_limit)
    assert real.live_buffers() == before, "buffers outlived their fds"
    buf = real.allocate(exporter.name, size)
    assert real.buffer_size(buf) == size
    real.close(buf)


@pytest.mark.alloc
@pytest.mark.case("STRESS-002")
@pytest.mark.cpu_access
@pytest.mark.needs("debugfs_bufinfo")
def test_hundred_threads_allocating_at_once_get_distinct_zeroed_buffers(target, exporter, pages):
    """100 threads allocating together each get their own zeroed pages.

    Contract: allocation is thread-safe: concurrent callers never share
    pages, never see each other's data, and all of it is freed after.
    A failing exporter (an unlocked page pool, a racy free list) hands the
    same page to two buffers: one thread's pattern shows up in another's.
    On a guest target the calls are serialised by the channel, so this
    checks back-to-back allocation there; on ``local`` they really overlap.
    """
    real = unchecked(target)
    size = pages(4)
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
