"""LocalTarget: handle bookkeeping, the probe-unavailable path, health and leak counting.

The buffers here are memfds adopted as if they were dma-bufs (this kernel has
no exporter); every call still goes through the real syscalls.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
from pathlib import Path

import pytest

from conformance.errors import (
    BadAddress,
    BadFileDescriptor,
    InvalidArgument,
    NotATypewriter,
    NotAvailableOnTarget,
    ProbeUnavailable,
    UnknownExporter,
    kernel_error,
)
from conformance.exporters.discovery import Paths
from conformance.exporters.dmabuf import DmaBuf
from conformance.exporters.libc import PAGE_SIZE
from conformance.records import INSTRUMENTS, Direction, TargetInfo
from conformance.targets.base import DERIVED_OPERATIONS, OPERATIONS, Target
from conformance.targets.local import DMA_API_REPORTS_SHOWN, HEALTH_EXCERPT_WARNINGS, LocalTarget


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    nowhere = str(tmp_path / "none")
    t = LocalTarget(
        paths=Paths(dma_heap=nowhere, udmabuf=nowhere, dri=nowhere, ion=nowhere),
        probe_path=str(tmp_path / "dmabuf_probe"),
        kmsg_path=str(tmp_path / "kmsg"),
    )
    yield t
    t.shutdown()


def _memfd(size: int = 2 * PAGE_SIZE) -> DmaBuf:
    fd = os.memfd_create("fake-dmabuf", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return DmaBuf(fd, "memfd")


def test_implements_every_operation() -> None:
    assert not getattr(LocalTarget, "__abstractmethods__", None)
    for op in OPERATIONS:
        if op in DERIVED_OPERATIONS:
            continue  # composed of the others in Target itself
        assert getattr(LocalTarget, op) is not getattr(Target, op, None), op


def test_handle_lifecycle_and_close_all(target: LocalTarget) -> None:
    buf = target.adopt(_memfd())
    dup = target.dup(buf)
    m = target.mmap(buf)
    target.cpu_write(m, 5, b"hello")
    assert target.cpu_read(m, 5, 5) == b"hello"
    assert target.buffer_size(dup) == 2 * PAGE_SIZE
    fd = target.fd(buf)
    target.close(buf)
    # the mapping outlives the fd, as with a dma-buf
    assert target.cpu_read(m, 5, 5) == b"hello"
    with pytest.raises(OSError):
        os.fstat(fd)
    assert len({buf, dup, m}) == 3
    assert target.open_handles() == {
        "buffers": 1,
        "mappings": 1,
        "sync_files": 0,
        "attachments": 0,
        "vmaps": 0,
        "kmaps": 0,
    }
    dup_fd = target.fd(dup)
    target.close_all()
    assert sum(target.open_handles().values()) == 0
    with pytest.raises(OSError):
        os.fstat(dup_fd)


def test_unknown_handles_answer_like_the_kernel(target: LocalTarget) -> None:
    buf = target.adopt(_memfd())
    target.close(buf)
    with pytest.raises(BadFileDescriptor) as ei:
        target.close(buf)
    assert ei.value.op == "close"
    with pytest.raises(BadFileDescriptor, match="DMA_BUF_IOCTL_SYNC"):
        target.sync(buf, 3)
    with pytest.raises(InvalidArgument, match="munmap"):
        target.munmap(12345)
    with pytest.raises(InvalidArgument, match="dma_buf_detach"):
        target.detach(12345)
    with pytest.raises(BadFileDescriptor):
        target.close_sync_file(999)
    # a mapping handle is not a buffer handle
    other = target.adopt(_memfd())
    m = target.mmap(other)
    with pytest.raises(BadFileDescriptor):
        target.sync(m, 3)


def test_uapi_reaches_the_kernel(target: LocalTarget) -> None:
    buf = target.adopt(_memfd())
    with pytest.raises(NotATypewriter, match="DMA_BUF_IOCTL_SYNC"):
        target.sync(buf, 3)
    with pytest.raises(NotATypewriter, match="DMA_BUF_SET_NAME_A"):
        target.set_name(buf, b"x", "A")
    with pytest.raises(NotATypewriter, match="IMPORT_SYNC_FILE"):
        target.import_sync_file(buf, 777, 1)
    with pytest.raises(InvalidArgument) as ei:
        target.mmap(buf, PAGE_SIZE, 1)
    assert ei.value.op == "mmap"
    m = target.mmap(buf)
    target.mremap(m, 4 * PAGE_SIZE)
    with pytest.raises(BadAddress):
        target.cpu_read(m, 3 * PAGE_SIZE, 1)
    assert {"pos", "flags"} <= set(target.fdinfo(buf))
    assert target.lseek(buf, 0, os.SEEK_END) == 2 * PAGE_SIZE


def test_kernel_side_needs_the_probe(target: LocalTarget) -> None:
    buf = target.adopt(_memfd())
    assert target.devices() == []
    for call in (
        lambda: target.attach(buf, "coherent"),
        lambda: target.begin_cpu_access(buf, Direction.TO_DEVICE),
        lambda: target.vmap(buf),
        lambda: target.kmap(buf, 0),
        lambda: target.counters(buf),
        lambda: target.dma_events(),
    ):
        with pytest.raises(ProbeUnavailable) as ei:
            call()
        assert "insmod qemu/probe/dmabuf_probe.ko" in str(ei.value)
        assert "make -C qemu/probe" in str(ei.value)
    assert target.info().probe_loaded is False


def test_a_file_that_is_not_the_probe_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("conformance.probe.client")
    fake = tmp_path / "dmabuf_probe"
    fake.write_bytes(b"")
    t = LocalTarget(
        paths=Paths(dma_heap="/none", udmabuf="/none", dri="/none", ion="/none"),
        probe_path=str(fake),
        kmsg_path="/nonexistent",
    )
    buf = t.adopt(_memfd())
    with pytest.raises(ProbeUnavailable, match="not the dmabuf probe"):
        t.attach(buf, "coherent")
    t.shutdown()


def test_unknown_exporter_says_why(target: LocalTarget) -> None:
    assert target.exporters() == []
    with pytest.raises(UnknownExporter, match=r"'heap:system'.*offers: none \(no "):
        target.allocate("heap:system", 4096)
    info = target.info()
    assert info.target == "local" and info.kernel == os.uname().release
    assert "no " in info.extra["why_no_exporter"]


def test_health_counts_new_kernel_complaints(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        kmsg_path=str(fifo),
        debugfs=str(tmp_path / "debug"),
    )
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        assert t.health().warnings == 0
        os.write(
            writer,
            b"6,1,100,-;ordinary message\n"
            b"4,2,101,-;WARNING: CPU: 1 PID: 7 at drivers/dma-buf/x.c:10 f+0x1\n"
            b" SUBSYSTEM=dma-buf\n"
            b"0,3,102,-;BUG: KASAN: use-after-free in dma_buf_set_name\n",
        )
        h = t.health()
        assert h.warnings == 2
        assert "dma_buf_set_name" in h.log_excerpt and "ordinary" not in h.log_excerpt
        assert t.health().warnings == 0  # counted once
    finally:
        os.close(writer)
        t.shutdown()


def test_health_dma_api_error_delta(tmp_path: Path) -> None:
    count = tmp_path / "debug" / "dma-api" / "error_count"
    count.parent.mkdir(parents=True)
    count.write_text("3\n")
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        kmsg_path="/nonexistent",
        debugfs=str(tmp_path / "debug"),
    )
    assert t.health().dma_api_errors == 0
    count.write_text("5\n")
    assert t.health().dma_api_errors == 2
    assert t.health().dma_api_errors == 0


def test_dma_api_debug_prints_the_first_reports_of_each_health_report(tmp_path: Path) -> None:
    """dma-debug is told to print its first reports again after every health that saw
    errors: a flood (two WARNs per sg entry of a 515-entry table) is counted, not
    printed, and the next case still gets its own first reports printed."""
    debug = tmp_path / "debug" / "dma-api"
    debug.mkdir(parents=True)
    count, shown, every = debug / "error_count", debug / "num_errors", debug / "all_errors"
    count.write_text("0\n")
    every.write_text("Y\n")
    shown.write_text("1\n")  # the kernel's default
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        kmsg_path="/nonexistent",
        debugfs=str(tmp_path / "debug"),
    )
    assert every.read_text() == "0" and shown.read_text() == str(DMA_API_REPORTS_SHOWN)
    assert DMA_API_REPORTS_SHOWN > HEALTH_EXCERPT_WARNINGS  # the excerpt loses nothing
    shown.write_text("0")  # the kernel used them up
    assert t.health().dma_api_errors == 0
    assert shown.read_text() == "0"  # a clean case costs no write
    count.write_text("1030\n")
    assert t.health().dma_api_errors == 1030
    assert shown.read_text() == str(DMA_API_REPORTS_SHOWN)


def test_live_buffers_from_debugfs(tmp_path: Path) -> None:
    bufinfo = tmp_path / "debug" / "dma_buf" / "bufinfo"
    bufinfo.parent.mkdir(parents=True)
    bufinfo.write_text(
        "\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n"
        "00004096\t00000002\t00080007\t00000001\tsystem\t00000010\t<none>\n"
        "\tAttached Devices:\nTotal 0 devices attached\n\n\nTotal 1 objects, 4096 bytes\n"
    )
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        kmsg_path="/nonexistent",
        debugfs=str(tmp_path / "debug"),
    )
    assert t.live_buffers() == 1
    bufinfo.write_text("garbage")
    with pytest.raises(NotAvailableOnTarget, match="Total N objects"):
        t.live_buffers()


def test_live_buffers_on_this_kernel() -> None:
    if not os.path.exists("/sys/kernel/debug/dma_buf/bufinfo"):
        pytest.skip("no debugfs dma_buf here (CONFIG_DMA_SHARED_BUFFER/DEBUG_FS off or no root)")
    t = LocalTarget(kmsg_path="/nonexistent")
    assert t.live_buffers() >= 0


def test_every_instrument_is_reported_with_a_reason_on_a_bare_machine(tmp_path: Path) -> None:
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        probe_path=str(tmp_path / "dmabuf_probe"),
        kmsg_path=str(tmp_path / "kmsg"),
        debugfs=str(tmp_path / "debug"),
    )
    try:
        instruments = t.info().instruments
    finally:
        t.shutdown()
    assert set(instruments) == set(INSTRUMENTS)
    assert not any(i.present for i in instruments.values()), instruments
    assert "make -C qemu/probe" in instruments["probe"].detail
    assert "probe" in instruments["dma_event_log"].detail
    assert "probe" in instruments["swiotlb_bounce"].detail
    assert "CONFIG_DMA_API_DEBUG" in instruments["dma_api_debug"].detail
    assert "kmsg" in instruments["kmsg"].detail
    assert "bufinfo" in instruments["debugfs_bufinfo"].detail


def test_debugfs_and_kmsg_instruments_are_seen(tmp_path: Path) -> None:
    debug = tmp_path / "debug"
    (debug / "dma-api").mkdir(parents=True)
    (debug / "dma-api" / "disabled").write_text("N\n")
    (debug / "dma_buf").mkdir()
    (debug / "dma_buf" / "bufinfo").write_text("\nTotal 3 objects, 12288 bytes\n")
    kmsg = tmp_path / "kmsg"
    os.mkfifo(kmsg)
    writer = os.open(kmsg, os.O_RDWR | os.O_NONBLOCK)  # keeps the fifo open for the reader
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        probe_path=str(tmp_path / "dmabuf_probe"),
        kmsg_path=str(kmsg),
        debugfs=str(debug),
    )
    try:
        got = t.info().instruments
        assert got["dma_api_debug"].present and got["kmsg"].present
        assert got["debugfs_bufinfo"].present and "3 buffers" in got["debugfs_bufinfo"].detail
        assert not got["probe"].present
        # DMA-API debug that switched itself off (out of entries) is not an instrument
        (debug / "dma-api" / "disabled").write_text("Y\n")
        off = t.info().instruments["dma_api_debug"]
        assert not off.present and "switched itself off" in off.detail
    finally:
        t.shutdown()
        os.close(writer)


def test_instruments_on_this_host() -> None:
    t = LocalTarget()
    try:
        info = t.info()
    finally:
        t.shutdown()
    assert set(info.instruments) == set(INSTRUMENTS)
    assert all(i.detail for i in info.instruments.values())
    assert info.page_size == os.sysconf("SC_PAGE_SIZE")
    # whatever this host has, the record survives the trip to and from JSON
    assert TargetInfo.from_json(info.to_json()) == info


class _FakeExporter:
    """An exporter whose allocation ends as the test says (in the child)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def allocate(self, size: int) -> DmaBuf:
        if self.how == "enomem":
            raise kernel_error(errno.ENOMEM, "DMA_HEAP_IOCTL_ALLOC", size)
        if self.how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.how.startswith("oom:"):  # what the OOM killer would log, then its kill
            with open(self.how[4:], "w") as kmsg:
                kmsg.write(f"3,9,200,-;Out of memory: Killed process {os.getpid()} (python3)\n")
                kmsg.write("4,10,201,-;WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return _memfd(size)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "how, outcome",
    [("ok", f"ok:{2 * PAGE_SIZE}"), ("enomem", "errno:ENOMEM"), ("killed", "signal:SIGKILL")],
)
def test_allocate_in_child_reports_how_the_child_ended(
    target: LocalTarget, how: str, outcome: str
) -> None:
    target._exporters = {"fake": _FakeExporter(how)}  # type: ignore[dict-item]
    assert target.allocate_in_child("fake", 2 * PAGE_SIZE).startswith(outcome)
    assert target.open_handles()["buffers"] == 0  # nothing of the child's stays here


def test_set_fd_limit_lowers_and_restores(target: LocalTarget) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    old = target.set_fd_limit(min(soft, 512))
    try:
        assert old == soft
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (min(soft, 512), hard)
    finally:
        target.set_fd_limit(old)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)


def test_allocate_in_child_names_the_oom_killer_from_the_kernel_log(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # the writer end stays open
    t = LocalTarget(
        paths=Paths("/none", "/none", "/none", "/none"),
        probe_path=str(tmp_path / "dmabuf_probe"),
        kmsg_path=str(fifo),
        debugfs=str(tmp_path / "debug"),
    )
    try:
        t._exporters = {"fake": _FakeExporter(f"oom:{fifo}")}  # type: ignore[dict-item]
        outcome = t.allocate_in_child("fake", PAGE_SIZE)
        assert outcome.startswith("signal:SIGKILL by the OOM killer (kernel log: ")
        assert "Out of memory: Killed process" in outcome
        # the lines the operation read are still the health check's to judge
        assert t.health().warnings == 1
    finally:
        t.shutdown()
        os.close(keep)
