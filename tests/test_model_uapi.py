"""The model's user-space semantics match a correct 6.1 kernel (dma-buf.c, dma-heap.c errnos)."""

from __future__ import annotations

import os
import select

import pytest

from conformance.errors import (
    BadAddress,
    BadFileDescriptor,
    InvalidArgument,
    OutOfMemory,
    PermissionDenied,
    SetupError,
    UnknownExporter,
)
from conformance.model import reference_exporter_for
from conformance.records import Direction, SyncFlag
from conformance.targets.model import ModelTarget

REF = "model:reference"
PAGE = 4096


@pytest.fixture
def t() -> ModelTarget:
    return ModelTarget()


@pytest.mark.parametrize("size", [0, -1, (1 << 64) - 1, (1 << 64) - 100])
def test_zero_or_overflowing_length_is_einval(t, size):
    with pytest.raises(InvalidArgument):
        t.allocate(REF, size)


def test_size_is_rounded_up_to_a_page(t):
    assert t.buffer_size(t.allocate(REF, 1)) == PAGE
    assert t.buffer_size(t.allocate(REF, PAGE + 1)) == 2 * PAGE


@pytest.mark.parametrize("flags", [os.O_NONBLOCK, 1 << 31, os.O_RDWR | os.O_APPEND])
def test_bad_fd_flags_are_einval(t, flags):
    with pytest.raises(InvalidArgument):
        t.allocate(REF, PAGE, fd_flags=flags)


def test_heap_flags_are_einval(t):
    with pytest.raises(InvalidArgument):
        t.allocate(REF, PAGE, heap_flags=1)


def test_short_struct_zero_fills_the_tail(t):
    # 16 bytes: no heap_flags field, so a non-zero value never reaches the kernel
    assert t.buffer_size(t.allocate(REF, PAGE, heap_flags=1, struct_size=16)) == PAGE
    assert t.buffer_size(t.allocate(REF, PAGE, struct_size=64)) == PAGE
    with pytest.raises(InvalidArgument):
        t.allocate(REF, PAGE, heap_flags=1, struct_size=64)
    with pytest.raises(SetupError):
        t.allocate(REF, PAGE, struct_size=8)


def test_huge_allocation_is_enomem(t):
    with pytest.raises(OutOfMemory):
        t.allocate(REF, 3 << 30)


def test_unknown_exporter_is_a_setup_error(t):
    with pytest.raises(UnknownExporter, match="model:reference"):
        t.allocate("model:nope", PAGE)


@pytest.mark.parametrize("flags", [0, 4, 8, 1 << 32, 3 | 8, -1])
def test_invalid_sync_flags_are_einval(t, flags):
    buf = t.allocate(REF, PAGE)
    with pytest.raises(InvalidArgument):
        t.sync(buf, flags)


def test_end_without_start_differs_by_kind(t):
    heap = t.allocate(reference_exporter_for("heap"), PAGE)
    t.sync(heap, SyncFlag.END | SyncFlag.READ)  # system heap: fine
    udmabuf = t.allocate(reference_exporter_for("udmabuf"), PAGE)
    with pytest.raises(InvalidArgument):
        t.sync(udmabuf, SyncFlag.END | SyncFlag.READ)
    t.sync(udmabuf, SyncFlag.START | SyncFlag.READ)
    t.sync(udmabuf, SyncFlag.END | SyncFlag.READ)


def test_mmap_rules(t):
    buf = t.allocate(REF, 2 * PAGE)
    with pytest.raises(InvalidArgument):
        t.mmap(buf, shared=False)
    with pytest.raises(InvalidArgument):
        t.mmap(buf, 3 * PAGE)
    with pytest.raises(InvalidArgument):
        t.mmap(buf, PAGE, 2 * PAGE)
    with pytest.raises(InvalidArgument):
        t.mmap(buf, PAGE, 100)
    m = t.mmap(buf, PAGE, PAGE)
    t.cpu_write(m, 0, b"x")
    with pytest.raises(BadAddress):
        t.cpu_read(m, PAGE - 1, 2)  # past the mapping: SIGSEGV


def test_read_only_fd_cannot_be_mapped_shared(t):
    buf = t.allocate(REF, PAGE, fd_flags=os.O_RDONLY)
    with pytest.raises(PermissionDenied):
        t.mmap(buf)


def test_mremap_growth_is_efault_on_pfnmap_and_sigbus_past_end_on_udmabuf(t):
    m = t.mmap(t.allocate(REF, 2 * PAGE), PAGE)
    with pytest.raises(BadAddress):
        t.mremap(m, 2 * PAGE)
    t.mremap(m, PAGE)  # same size / shrink is fine
    u = t.mmap(t.allocate("model:reference-udmabuf", PAGE))
    t.mremap(u, 2 * PAGE)
    with pytest.raises(BadAddress, match="SIGBUS"):
        t.cpu_read(u, PAGE, 1)


def test_lseek(t):
    buf = t.allocate(REF, 3 * PAGE)
    assert t.lseek(buf, 0, os.SEEK_END) == 3 * PAGE
    assert t.lseek(buf, 0, os.SEEK_SET) == 0
    for offset, whence in [(1, os.SEEK_SET), (0, os.SEEK_CUR), (-1, os.SEEK_END)]:
        with pytest.raises(InvalidArgument):
            t.lseek(buf, offset, whence)


def test_set_name_and_fdinfo(t):
    buf = t.allocate(REF, PAGE)
    t.set_name(buf, b"a" * 31, "A")
    with pytest.raises(InvalidArgument):
        t.set_name(buf, b"b" * 32, "B")
    info = t.fdinfo(buf)
    assert info["size"] == str(PAGE) and info["count"] == "1"
    assert info["exp_name"] == "system" and info["name"] == "a" * 31
    t.dup(buf)
    t.mmap(buf)
    assert t.fdinfo(buf)["count"] == "3"


def test_sync_files_and_poll(t):
    buf = t.allocate(REF, PAGE)
    for bad in (0, 4, 7):
        with pytest.raises(InvalidArgument):
            t.export_sync_file(buf, bad)
    sf = t.export_sync_file(buf, SyncFlag.RW)
    t.import_sync_file(buf, sf, SyncFlag.WRITE)
    with pytest.raises(InvalidArgument):
        t.import_sync_file(buf, 999999, SyncFlag.WRITE)
    t.close_sync_file(sf)
    events = select.POLLIN | select.POLLOUT | select.POLLPRI
    assert t.poll(buf, events) == select.POLLIN | select.POLLOUT


def test_buffer_lives_while_anything_holds_it(t):
    before = t.live_buffers()
    buf = t.allocate(REF, PAGE)
    other = t.dup(buf)
    m = t.mmap(buf)
    a = t.attach(buf, "coherent")
    v = t.vmap(buf)
    t.cpu_write(m, 0, b"hello")
    t.close(buf)
    t.close(other)
    assert t.live_buffers() == before + 1
    assert t.cpu_read(m, 0, 5) == b"hello"  # the mapping outlives the fds
    with pytest.raises(BadFileDescriptor):
        t.close(buf)
    for release in (lambda: t.munmap(m), lambda: t.detach(a)):
        release()
        assert t.live_buffers() == before + 1
    t.vunmap(v)
    assert t.live_buffers() == before


def test_kernel_warnings_reach_health(t):
    buf = t.allocate(REF, PAGE)
    v = t.vmap(buf)
    t.vunmap(v)
    t.exporter.vunmap(t._fds[buf].buffer)  # a second vunmap from a confused importer
    health = t.health()
    assert health.warnings == 1 and "not vmapped" in health.log_excerpt
    assert t.health().warnings == 0  # read once


def test_dma_events_use_the_probe_vocabulary(t):
    buf = t.allocate(REF, 2 * PAGE)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, Direction.TO_DEVICE)
    t.sync(buf, SyncFlag.START | SyncFlag.READ)
    t.sync(buf, SyncFlag.END | SyncFlag.READ)
    t.unmap_attachment(a, Direction.TO_DEVICE)
    ops = [(e.op, e.direction, e.length) for e in t.dma_events("noncoherent")]
    assert ops == [
        ("map_sg", Direction.TO_DEVICE, 2 * PAGE),
        ("sync_sg_for_cpu", Direction.FROM_DEVICE, 2 * PAGE),
        ("sync_sg_for_device", Direction.FROM_DEVICE, 2 * PAGE),
        ("unmap_sg", Direction.TO_DEVICE, 2 * PAGE),
    ]
    # DMA_API_DEBUG would flag the sync direction differing from the map's
    assert t.health().dma_api_errors == 2
    assert t.dma_events() == []


def test_ownership_violation_is_logged(t):
    buf = t.allocate(REF, PAGE)
    m = t.mmap(buf)
    a = t.attach(buf, "noncoherent")
    t.map_attachment(a, Direction.BIDIRECTIONAL)
    assert t.ownership(buf) == "device:noncoherent"
    t.cpu_write(m, 0, b"oops")  # no SYNC_START: the device owns it
    t.sync(buf, SyncFlag.START | SyncFlag.RW)
    assert t.ownership(buf) == "cpu"
    t.device_read(a, 0, 4)  # the device reads while the CPU owns it
    found = [(v.accessor, v.op) for v in t.ownership_violations()]
    assert found == [("cpu:user-mapping", "cpu_write"), ("device:noncoherent", "device_read")]


def test_close_all_releases_everything(t):
    buf = t.allocate(REF, PAGE)
    a = t.attach(buf, "smallseg")
    t.map_attachment(a, Direction.FROM_DEVICE)
    t.vmap(buf)
    t.mmap(buf)
    t.kmap(buf, 0)
    t.close_all()
    assert t.live_buffers() == 0
    assert t.health().warnings == 0
