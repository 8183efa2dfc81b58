"""Each faulty model exporter misbehaves where ``model:reference`` does not (Target calls only)."""

from __future__ import annotations

import pytest

from conformance.errors import BadAddress, InvalidArgument, OutOfMemory
from conformance.model import FAULTY, catalogue
from conformance.model.profiles import FAMILIES
from conformance.records import EXPORTER_LOG, Direction, SyncFlag
from conformance.targets.model import MiB, ModelTarget

PAGE = 4096
REF = "model:reference"


def pattern(n: int, seed: int) -> bytes:
    return bytes((seed + i * 7) & 0xFF for i in range(n))


@pytest.fixture
def t() -> ModelTarget:
    return ModelTarget()


def both(fn, faulty: str):
    """Run ``fn(target, exporter)`` on the reference and on ``faulty``, each on a fresh model."""
    return fn(ModelTarget(), REF), fn(ModelTarget(), faulty)


def test_catalogue_names_every_faulty_exporter_with_a_family():
    names = {c["name"] for c in catalogue()}
    assert len(names) == len(FAULTY) >= 11
    assert all(c["family"] in FAMILIES and c["description"] and c["source"] for c in catalogue())
    listed = {e.name for e in ModelTarget().exporters()}
    assert names <= listed and REF in listed


def _reuse(t: ModelTarget, exp: str) -> bytes:
    for seed in (1, 2):
        old = t.allocate(exp, 64 * 1024)
        m = t.mmap(old)
        t.cpu_write(m, 0, pattern(64 * 1024, seed))
        t.munmap(m)
        t.close(old)
    buf = t.allocate(exp, 64 * 1024)
    return t.cpu_read(t.mmap(buf), 0, 64 * 1024)


def test_no_zero_leaks_old_data():
    ref, bad = both(_reuse, "model:faulty-no-zeroing")
    assert ref == bytes(64 * 1024)
    assert bad == pattern(64 * 1024, 2)


def test_uncached_alias_reads_memory_under_dirty_zero_lines():
    ref, bad = both(_reuse, "model:faulty-uncached-alias")
    assert ref == bytes(64 * 1024)
    assert bad == pattern(64 * 1024, 2)
    # the same exporter done right (zeroes cleaned out first) is zeroed
    good = _reuse(ModelTarget(), "model:reference-uncached")
    assert good == bytes(64 * 1024)


def _cpu_write_then_device(t: ModelTarget, exp: str) -> bytes:
    buf = t.allocate(exp, 2 * PAGE)
    m = t.mmap(buf)
    t.sync(buf, SyncFlag.START | SyncFlag.WRITE)
    t.cpu_write(m, 0, pattern(2 * PAGE, 5))
    t.sync(buf, SyncFlag.END | SyncFlag.WRITE)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, Direction.TO_DEVICE)
    return t.device_read(a, 0, 2 * PAGE)


def test_first_map_no_clean_hides_cpu_writes_from_the_device():
    ref, bad = both(_cpu_write_then_device, "model:faulty-first-map-no-clean")
    assert ref == pattern(2 * PAGE, 5)
    assert bad != pattern(2 * PAGE, 5)


def _device_write_then_cpu(t: ModelTarget, exp: str) -> bytes:
    buf = t.allocate(exp, PAGE)
    m = t.mmap(buf)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, Direction.FROM_DEVICE)
    t.device_write(a, 0, pattern(PAGE, 9))
    t.unmap_attachment(a, Direction.FROM_DEVICE)
    # after dma_unmap the CPU owns the buffer: no further sync is needed (or done)
    return t.cpu_read(m, 0, PAGE)


def test_sgt_cache_no_cmo_leaves_stale_lines_after_unmap():
    ref, bad = both(_device_write_then_cpu, "model:faulty-sgt-cache-no-cmo")
    assert ref == pattern(PAGE, 9)
    assert bad == bytes(PAGE)


def _vmap_across_unbalanced_end(t: ModelTarget, exp: str):
    """A vmap held while user space sends SYNC_END without START: does it still work?"""
    buf = t.allocate(exp, PAGE)
    v = t.vmap(buf)
    t.vmap_write(v, 0, b"held")
    t.dma_events(EXPORTER_LOG)
    t.sync(buf, SyncFlag.END | SyncFlag.RW)
    t.sync(buf, SyncFlag.END | SyncFlag.RW)
    ops = [e.op for e in t.dma_events(EXPORTER_LOG)]
    try:
        data = t.vmap_read(v, 0, 4)
    except BadAddress:
        data = None
    return data, t.counters(buf)["kmap_count"], ops


def test_negative_kmap_cnt_tears_down_the_kernel_mapping_a_vmap_holds():
    end = ["end_cpu_access", "end_cpu_access"]
    assert _vmap_across_unbalanced_end(ModelTarget(), "model:reference-ion") == (b"held", 1, end)
    assert _vmap_across_unbalanced_end(ModelTarget(), REF) == (b"held", 0, end)
    # ION's kmap_cnt: 1 (the vmap) -> 0 (unmap_kernel under the vmap) -> -1, silently
    bad = _vmap_across_unbalanced_end(ModelTarget(), "model:faulty-negative-kmap-cnt")
    assert bad == (None, -1, end)


def _kmap_after_begin(t: ModelTarget, exp: str) -> str:
    buf = t.allocate(exp, 48 * MiB)  # more than the model's 32 MiB vmalloc space
    try:
        t.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    except OutOfMemory:
        return "begin refused"  # allowed: the failure is reported where it can be
    try:
        t.kunmap(t.kmap(buf, 0))
    except OutOfMemory:
        return "kmap failed after begin"
    return "ok"


def test_kmap_fails_after_a_begin_that_hid_its_failure():
    assert _kmap_after_begin(ModelTarget(), REF) == "ok"
    assert _kmap_after_begin(ModelTarget(), "model:reference-ion") == "begin refused"
    assert _kmap_after_begin(ModelTarget(), "model:faulty-kmap-fails-after-begin") == (
        "kmap failed after begin"
    )


def _vmap_write_device_read(t: ModelTarget, exp: str) -> tuple[bytes, bytes]:
    buf = t.allocate(exp, 2 * PAGE)
    v = t.vmap(buf)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, Direction.BIDIRECTIONAL)
    t.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    t.vmap_write(v, 0, pattern(2 * PAGE, 3))
    t.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    seen_by_device = t.device_read(a, 0, 2 * PAGE)
    t.device_write(a, 0, pattern(2 * PAGE, 4))
    t.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
    seen_by_vmap = t.vmap_read(v, 0, 2 * PAGE)
    t.end_cpu_access(buf, Direction.BIDIRECTIONAL)
    return seen_by_device, seen_by_vmap


def test_vmap_no_flush_disagrees_with_the_device_on_an_aliasing_cache():
    ref, bad = both(_vmap_write_device_read, "model:faulty-vmap-no-flush")
    assert ref == (pattern(2 * PAGE, 3), pattern(2 * PAGE, 4))
    assert bad[0] != pattern(2 * PAGE, 3)
    assert bad[1] != pattern(2 * PAGE, 4)
    # On a PIPT cache the same exporter gets away with it: the option matters.
    pipt = _vmap_write_device_read(ModelTarget(aliasing=False), "model:faulty-vmap-no-flush")
    assert pipt == (pattern(2 * PAGE, 3), pattern(2 * PAGE, 4))


def _two_vmap_users(t: ModelTarget, exp: str):
    buf = t.allocate(exp, PAGE)
    t.dma_events(EXPORTER_LOG)
    first, second = t.vmap(buf), t.vmap(buf)
    t.vunmap(second)
    count = t.counters(buf)["vmap_count"]
    try:
        data = t.vmap_read(first, 0, 16)
    except BadAddress:
        data = None
    return count, data, [e.op for e in t.dma_events(EXPORTER_LOG)]


def test_vmap_no_refcount_tears_down_the_other_users_mapping():
    # the core counts users: the exporter is asked to map once and not yet to unmap
    assert _two_vmap_users(ModelTarget(), REF) == (1, bytes(16), ["vmap"])
    bad = _two_vmap_users(ModelTarget(), "model:faulty-vmap-no-refcount")
    assert bad == (0, None, ["vmap", "vmap", "vunmap"])


def _segments(t: ModelTarget, exp: str):
    buf = t.allocate(exp, 1 * MiB)
    a = t.attach(buf, "smallseg")
    segs = t.map_attachment(a, Direction.TO_DEVICE)
    return max(s.length for s in segs), t.health().dma_api_errors


def test_sg_too_long_exceeds_the_device_max_segment():
    assert _segments(ModelTarget(), REF) == (65536, 0)
    longest, errors = _segments(ModelTarget(), "model:faulty-sg-too-long")
    assert longest == 1 * MiB and errors == 1


def _private(t: ModelTarget, exp: str):
    buf = t.allocate(exp, PAGE)
    try:
        m = t.mmap(buf, shared=False)
    except InvalidArgument:
        return "EINVAL"
    t.cpu_write(m, 0, b"private")
    shared = t.mmap(buf)
    return t.cpu_read(shared, 0, 7)


def test_mmap_private_is_accepted_and_writes_vanish():
    assert _private(ModelTarget(), REF) == "EINVAL"
    assert _private(ModelTarget(), "model:faulty-mmap-private") == bytes(7)


def _past_end(t: ModelTarget, exp: str):
    secret = t.allocate(exp, 2 * PAGE)
    buf = t.allocate(exp, PAGE)
    t.cpu_write(t.mmap(secret), 0, pattern(2 * PAGE, 8))
    try:
        m = t.mmap(buf, 2 * PAGE)
    except InvalidArgument:
        return "EINVAL"
    return t.cpu_read(m, PAGE, PAGE)


def test_mmap_past_end_maps_neighbouring_memory():
    assert _past_end(ModelTarget(), REF) == "EINVAL"
    leaked = _past_end(ModelTarget(), "model:faulty-mmap-past-end")
    assert isinstance(leaked, bytes) and len(leaked) == PAGE


def _churn(t: ModelTarget, exp: str) -> int:
    done = 0
    for _ in range(24):  # 24 x 16 MiB through a 256 MiB model
        try:
            t.close(t.allocate(exp, 16 * MiB))
        except OutOfMemory:
            break
        done += 1
    return done


def test_leak_pages_runs_out_of_memory():
    assert _churn(ModelTarget(), REF) == 24
    assert _churn(ModelTarget(), "model:faulty-leak-pages") == 16


def _begin_mappings_after_unbalanced_end(t: ModelTarget, exp: str) -> tuple[int, int]:
    """Kernel mappings a begin_cpu_access bracket holds, before and after unbalanced ENDs."""

    def made(buf: int) -> int:
        before = t.counters(buf)["kernel_mappings"]
        t.begin_cpu_access(buf, Direction.BIDIRECTIONAL)
        during = t.counters(buf)["kernel_mappings"]
        t.end_cpu_access(buf, Direction.BIDIRECTIONAL)
        return during - before

    buf = t.allocate(exp, PAGE)
    first = made(buf)
    for _ in range(3):
        t.sync(buf, SyncFlag.END | SyncFlag.RW)
    return first, made(buf)


def test_negative_kmap_cnt_leaves_begin_cpu_access_without_its_mapping():
    # ION maps in begin (KMAP-003's finding) and, done right, keeps doing so
    ion = _begin_mappings_after_unbalanced_end(ModelTarget(), "model:reference-ion")
    assert ion == (1, 1)
    assert _begin_mappings_after_unbalanced_end(ModelTarget(), REF) == (0, 0)
    # a count driven negative is non-zero: ion_buffer_kmap_get hands out vaddr NULL
    bad = _begin_mappings_after_unbalanced_end(ModelTarget(), "model:faulty-negative-kmap-cnt")
    assert bad == (1, 0)
