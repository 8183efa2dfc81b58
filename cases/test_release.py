"""Release paths: the last reference goes while a device, a vmap or a CPU bracket used the buffer.

A dma-buf is released when its last reference goes, which need not be its
last fd: an importer's attachment or vmap holds the file (dma_buf_get), so
the exporter's release then runs inside the importer's detach or vunmap.
What release undoes (the table begin_cpu_access mapped, the pages) must be
undone with the direction it was made with, exactly once, after the last
user: CONFIG_DMA_API_DEBUG checks the first, the data and the kernel's
count of live buffers the rest.

Sources: drivers/dma-buf/dma-buf.c of 6.1 (dma_buf_release: BUG_ON a held
vmap, WARN_ON attachments left, then ops->release); udmabuf.c of 6.1
(begin_cpu_udmabuf maps the buffer for udmabuf's misc device with the CPU
direction and records it, udmabuf.c:131-141; release_udmabuf unmaps with it,
udmabuf.c:116-117); the upstream fix "udmabuf: fix DMA direction mismatch in
release_udmabuf()" (2026, Fixes: 284562e1f348, Cc stable; its reproducer is
REL-003[WRITE-ended]), before which release unmapped with DMA_BIDIRECTIONAL
(5.10.223 udmabuf.c:108); issue 11 ("Release paths").

The kernel's complaints are read by each case right after its release
(``target.health()``), so they are this case's, with the step that caused
them; the run reads the health after every case as well.
"""

from __future__ import annotations

import pytest

from conformance.bracketed import write_through_mmap
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import Direction, SyncFlag

pytestmark = [pytest.mark.leak, pytest.mark.cpu_access]

PAGES = 4  # every buffer here, in pages of the target (order-0 pages: reused first)
DEVICE = "coherent"  # reads the pages themselves: no bounce copy stands between
MAP_DIRECTIONS = [Direction.TO_DEVICE, Direction.FROM_DEVICE, Direction.BIDIRECTIONAL]
SYNC_DIRECTIONS = [SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW]
BRACKETS = ["ended", "left-open"]


def assert_kernel_quiet(target, when: str) -> None:
    """No WARN/BUG/oops and no DMA-API debug error since the kernel was last asked."""
    __tracebackhide__ = True
    health = target.health()
    if health.warnings or health.dma_api_errors:
        pytest.fail(
            f"the kernel complained {when}: {health.warnings} warning(s), "
            f"{health.dma_api_errors} DMA-API debug error(s)\n{health.log_excerpt}"
        )


class Decoy:
    """A second buffer of the same size, written by the device: where freed pages go next.

    Allocators hand out the pages freed last first (the per-CPU lists, the
    model's allocator), so if the first buffer's pages were freed under its
    importer, the decoy gets them and its data shows through the importer.
    """

    def __init__(self, target, exporter: str, size: int) -> None:
        self.target = target
        self.buf = target.allocate(exporter, size)
        self.att = target.attach(self.buf, DEVICE)
        target.map_attachment(self.att, Direction.BIDIRECTIONAL)
        target.device_write(self.att, 0, pattern(size, seed=0xC3))

    def close(self) -> None:
        self.target.unmap_attachment(self.att, Direction.BIDIRECTIONAL)
        self.target.detach(self.att)
        self.target.close(self.buf)


@pytest.mark.case("REL-001")
@pytest.mark.kernel_side
@pytest.mark.needs("dma_api_debug", "kmsg", "debugfs_bufinfo")
@pytest.mark.parametrize("direction", MAP_DIRECTIONS, ids=lambda d: d.name)
def test_last_fd_closed_while_a_device_has_it_mapped(target, exporter, pages, direction):
    """Closing the last fd while a device has the buffer mapped: the device keeps it, and its
    unmap and detach then release it without a complaint.

    Contract: the attachment holds the dma-buf (dma_buf_get), so closing
    the last fd releases nothing; the device's mapping still reaches the
    buffer's own pages; the importer's unmap and detach work, and the last
    of them releases the buffer (dma_buf_release in the importer's context:
    the exporter's release must not trip on a table a device had, or on the
    one a CPU bracket made: udmabuf maps for its misc device at SYNC_START,
    udmabuf.c:131-141, and unmaps it at release).  A failing exporter frees
    the pages at the last fd (an extra dma_buf_put, a free from its own
    handle's close: the device then reads a newer buffer's data), releases
    twice, or unmaps at release with another direction than it mapped with
    (DMA-API debug: "frees DMA memory with different direction").
    """
    size = pages(PAGES)
    before = target.live_buffers()
    buf = target.allocate(exporter.name, size)
    data = pattern(size, seed=0x31)
    write_through_mmap(target, buf, data)
    att = target.attach(buf, DEVICE)
    target.map_attachment(att, direction)
    target.close(buf)
    assert target.live_buffers() == before + 1, (
        "the buffer was released at its last fd although a device still has it mapped"
    )
    decoy = Decoy(target, exporter.name, size)
    assert_same_bytes(
        target.device_read(att, 0, size),
        data,
        "after the last fd closed, the still-mapped device reads other data: the buffer's "
        "pages were freed under its mapping and handed out again",
    )
    decoy.close()
    target.unmap_attachment(att, direction)
    target.detach(att)
    assert target.live_buffers() == before, "the buffer outlived its last reference (detach)"
    assert_kernel_quiet(target, "while the device's detach released the buffer")


@pytest.mark.case("REL-002")
@pytest.mark.kernel_side
@pytest.mark.needs("dma_api_debug", "kmsg", "debugfs_bufinfo")
def test_last_fd_closed_while_a_vmap_is_held(target, exporter, pages, vmap_or_skip):
    """Closing the last fd while the kernel holds a vmap: the vmap keeps the buffer, and the
    vunmap then releases it without a complaint.

    Contract: the vmap's holder holds the dma-buf, and a vmap must be gone
    before release (dma_buf_release: BUG_ON(dmabuf->vmapping_counter));
    the kernel mapping still shows the buffer's own pages after the fd is
    gone.  A failing exporter frees the pages at the last fd (the kernel
    mapping then reads another buffer's data), or releases with the
    mapping held (a BUG, "buffer still mapped in the kernel").
    """
    size = pages(PAGES)
    before = target.live_buffers()
    buf = target.allocate(exporter.name, size)
    data = pattern(size, seed=0x47)
    write_through_mmap(target, buf, data)
    v = vmap_or_skip(buf)
    target.begin_cpu_access(buf, Direction.FROM_DEVICE)
    assert_same_bytes(target.vmap_read(v, 0, size), data, "the vmap does not show the buffer")
    target.end_cpu_access(buf, Direction.FROM_DEVICE)
    target.close(buf)
    assert target.live_buffers() == before + 1, (
        "the buffer was released at its last fd although the kernel holds a vmap of it"
    )
    decoy = Decoy(target, exporter.name, size)
    # No device touched this buffer since the bracket above: its mapping needs no new one
    # (and none can be opened: the bracket ioctls need the fd that was just closed).
    assert_same_bytes(
        target.vmap_read(v, 0, size),
        data,
        "after the last fd closed, the held vmap reads other data: the buffer's pages were "
        "freed under the kernel mapping and handed out again",
    )
    decoy.close()
    target.vunmap(v)
    assert target.live_buffers() == before, "the buffer outlived its last reference (vunmap)"
    assert_kernel_quiet(target, "while the vunmap released the buffer")


@pytest.mark.case("REL-003")
@pytest.mark.needs("dma_api_debug", "kmsg", "debugfs_bufinfo")
@pytest.mark.parametrize("bracket", BRACKETS)
@pytest.mark.parametrize("direction", SYNC_DIRECTIONS, ids=lambda d: d.name)
def test_sync_then_close_releases_cleanly(target, exporter, pages, direction, bracket):
    """A READ-only, WRITE-only or RW SYNC bracket, ended or left open, then close: the release
    is clean.

    Contract: what begin_cpu_access set up for the CPU (udmabuf: its misc
    device's table, mapped with the CPU direction of the first SYNC_START)
    is torn down at release with that same direction, also when user space
    never sent SYNC_END (a process that dies inside a bracket).  A failing
    exporter unmaps with another direction: udmabuf before the 2026 fix
    "DMA direction mismatch in release_udmabuf()" unmapped with
    DMA_BIDIRECTIONAL (5.10.223 udmabuf.c:108) and DMA-API debug reported
    "device driver frees DMA memory with different direction [mapped with
    DMA_TO_DEVICE] [unmapped with DMA_BIDIRECTIONAL]" after a write-only
    SYNC and close (the fix's own reproducer); 6.1.192 records the
    direction (udmabuf.c:140) and unmaps with it (:117).

    Only DMA-API debug sees the direction, and the release must really run
    for it to look: the case checks that the buffer is gone (debugfs
    bufinfo) before it asks the kernel's health.
    """
    size = pages(PAGES)
    before = target.live_buffers()
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    target.sync(buf, SyncFlag.START | direction)
    if direction & SyncFlag.WRITE:
        target.cpu_write(m, 0, pattern(size, seed=0x59))
    else:
        target.cpu_read(m, 0, size)
    if bracket == "ended":
        target.sync(buf, SyncFlag.END | direction)
    target.munmap(m)
    target.close(buf)
    assert target.live_buffers() == before, (
        "the buffer outlived its last fd and mapping: its release path never ran"
    )
    assert_kernel_quiet(target, f"while the buffer was released after a {direction.name} SYNC")
