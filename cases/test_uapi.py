"""The rest of the dma-buf file uapi: lseek, poll, fdinfo, SET_NAME, sync_file, dup.

Source: drivers/dma-buf/dma-buf.c of 6.1 (dma_buf_llseek, dma_buf_poll,
dma_buf_show_fdinfo, dma_buf_set_name, dma_buf_export_sync_file,
dma_buf_import_sync_file), include/uapi/linux/dma-buf.h, IGT's dma-buf
tests (lseek size and bad lseek, sync_file export/import, dup/fork
refcounting), ../shared/notes/uapi-facts.md.
"""

from __future__ import annotations

import os
import select

import pytest

from conformance.errors import InvalidArgument
from conformance.patterns import assert_same_bytes, pattern
from conformance.records import SyncFlag

pytestmark = pytest.mark.uapi

PAGES = 4  # the buffer of every case, in pages of the target
DMA_BUF_NAME_LEN = 32  # include/uapi/linux/dma-buf.h, the NUL included
SEEK_DATA = 3

# UAPI-002's refused seeks: (offset in bytes, offset in pages of the target, whence)
BAD_SEEKS = {
    "cur-0": (0, 0, os.SEEK_CUR),
    "set-1": (1, 0, os.SEEK_SET),
    "end-minus-1": (-1, 0, os.SEEK_END),
    "end-plus-page": (0, 1, os.SEEK_END),
    "seek-data": (0, 0, SEEK_DATA),
}


@pytest.mark.case("UAPI-001")
def test_lseek_reports_the_size_and_the_start(target, exporter, pages):
    """``lseek(fd, 0, SEEK_END)`` is the buffer size and ``lseek(fd, 0, SEEK_SET)`` is 0.

    Contract: dma_buf_llseek, the documented way to learn a dma-buf's size
    (IGT "lseek size").  A failing kernel reports another size, so user
    space maps too little or too much.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    assert target.lseek(buf, 0, os.SEEK_END) == size
    assert target.lseek(buf, 0, os.SEEK_SET) == 0


@pytest.mark.case("UAPI-002")
@pytest.mark.parametrize("seek", list(BAD_SEEKS), ids=list(BAD_SEEKS))
def test_any_other_lseek_is_einval(target, exporter, pages, seek):
    """Every lseek other than (0, SEEK_SET) and (0, SEEK_END) is refused with EINVAL.

    Contract: dma_buf_llseek returns -EINVAL for a non-zero offset or another
    whence.  A failing kernel moves a file position that means nothing for
    a dma-buf, and user space reads it as a size.
    """
    offset, page_offset, whence = BAD_SEEKS[seek]
    buf = target.allocate(exporter.name, pages(PAGES))
    with pytest.raises(InvalidArgument):
        target.lseek(buf, offset + pages(page_offset), whence)


@pytest.mark.case("UAPI-003")
def test_idle_buffer_polls_ready_for_read_and_write(target, exporter, pages):
    """A buffer with no pending fences is at once ready for reading and writing.

    Contract: dma_buf_poll: EPOLLIN waits for the write fences and EPOLLOUT
    for all fences; with none, both are ready immediately.  A failing
    exporter or kernel blocks user space on a buffer nobody is using.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    wanted = select.POLLIN | select.POLLOUT
    assert target.poll(buf, wanted, 0) & wanted == wanted


@pytest.mark.case("UAPI-004")
@pytest.mark.cpu_access
def test_fdinfo_shows_size_exporter_and_file_references(target, exporter, pages):
    """fdinfo shows the size, the exporter's name and how many references hold the file.

    Contract: dma_buf_show_fdinfo prints ``size``, ``count`` (file
    references, the procfs one left out), ``exp_name`` and ``name`` only
    once one is set.  A failing exporter leaves exp_name empty (tools cannot
    tell who owns the memory) or a reference is not taken, so the count
    lies and the buffer can be freed under a user.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    info = target.fdinfo(buf)
    assert int(info["size"]) == size
    assert info.get("exp_name"), f"no exporter name in fdinfo: {info}"
    assert "name" not in info, f"a name before any SET_NAME: {info['name']!r}"
    assert int(info["count"]) == 1
    second = target.dup(buf)
    assert int(target.fdinfo(buf)["count"]) == 2, "dup does not take a file reference"
    m = target.mmap(buf)
    assert int(target.fdinfo(second)["count"]) == 3, "a mapping does not hold the file"
    target.munmap(m)
    target.close(second)
    assert int(target.fdinfo(buf)["count"]) == 1


@pytest.mark.case("UAPI-005")
@pytest.mark.parametrize("encoding", ["A", "B", "legacy"])
def test_set_name_shows_in_fdinfo_and_replaces_the_old_one(target, exporter, pages, encoding):
    """DMA_BUF_SET_NAME in each encoding names the buffer; a second call replaces the name.

    Contract: dma-buf.h defines DMA_BUF_SET_NAME_A (u32 pointer) and _B
    (u64 pointer) besides the legacy pointer-sized number; dma_buf_set_name
    frees the old name.  A failing kernel refuses one encoding (32-bit user
    space on a 64-bit kernel cannot name buffers) or keeps the old name.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    target.set_name(buf, b"first-name", encoding)
    assert target.fdinfo(buf).get("name") == "first-name"
    target.set_name(buf, b"second", encoding)
    assert target.fdinfo(buf).get("name") == "second"


@pytest.mark.case("UAPI-006")
@pytest.mark.parametrize("encoding", ["A", "B"])
def test_set_name_length_limit(target, exporter, pages, encoding):
    """A name of 31 bytes is accepted; 32 bytes or more is EINVAL and keeps the old name.

    Contract: dma_buf_set_name copies with strndup_user(buf,
    DMA_BUF_NAME_LEN), which refuses a string whose NUL does not fit in 32
    bytes.  A failing kernel copies names of any length (unbounded kernel
    memory on user request, oversize lines in fdinfo and bufinfo).
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    longest = b"n" * (DMA_BUF_NAME_LEN - 1)
    target.set_name(buf, longest, encoding)
    assert target.fdinfo(buf).get("name") == longest.decode()
    for length in (DMA_BUF_NAME_LEN, 4 * DMA_BUF_NAME_LEN):
        with pytest.raises(InvalidArgument):
            target.set_name(buf, b"x" * length, encoding)
    assert target.fdinfo(buf).get("name") == longest.decode(), "a refused name replaced the old"


@pytest.mark.case("UAPI-007")
@pytest.mark.kernels("6.0..", why="the sync-file ioctls came in 6.0 (20e10881a043, 594740497e99)")
@pytest.mark.parametrize("flags", [SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW], ids=str)
def test_sync_file_export_then_import(target, exporter, pages, flags):
    """A sync file exported with READ, WRITE or RW can be imported back; the buffer stays idle.

    Contract: DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE (6.0+)
    take a non-empty subset of RW.  On an idle buffer the exported fence is
    signalled, so after the import the buffer still polls ready.  A failing
    kernel refuses a valid direction or leaves an unsignalled fence behind.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    sync_file = target.export_sync_file(buf, int(flags))
    target.import_sync_file(buf, sync_file, int(SyncFlag.WRITE))
    target.close_sync_file(sync_file)
    wanted = select.POLLIN | select.POLLOUT
    assert target.poll(buf, wanted, 0) & wanted == wanted


@pytest.mark.case("UAPI-008")
@pytest.mark.kernels("6.0..", why="the sync-file ioctls came in 6.0 (20e10881a043, 594740497e99)")
@pytest.mark.parametrize("flags", [0, int(SyncFlag.END), 8, int(SyncFlag.RW) | 8, 1 << 31],
                         ids=["none", "END", "bit3", "RW+bit3", "bit31"])  # fmt: skip
def test_sync_file_with_invalid_flags_is_einval(target, exporter, pages, flags):
    """Export and import with no direction or unknown bits are refused with EINVAL.

    Contract: both ioctls check ``flags & ~DMA_BUF_SYNC_RW`` and that READ or
    WRITE is set.  A failing kernel accepts them, so the bits can never get
    a meaning.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    with pytest.raises(InvalidArgument):
        target.export_sync_file(buf, flags)
    good = target.export_sync_file(buf, int(SyncFlag.RW))
    with pytest.raises(InvalidArgument):
        target.import_sync_file(buf, good, flags)


@pytest.mark.case("UAPI-009")
@pytest.mark.kernels("6.0..", why="the sync-file ioctls came in 6.0 (20e10881a043, 594740497e99)")
def test_importing_a_closed_sync_file_is_einval(target, exporter, pages):
    """Importing a sync file that was closed is refused with EINVAL.

    Contract: dma_buf_import_sync_file gets the fence with
    sync_file_get_fence, which fails for an fd that is no sync file.  A
    failing kernel dereferences a stale file.
    """
    buf = target.allocate(exporter.name, pages(PAGES))
    sync_file = target.export_sync_file(buf, int(SyncFlag.RW))
    target.close_sync_file(sync_file)
    with pytest.raises(InvalidArgument):
        target.import_sync_file(buf, sync_file, int(SyncFlag.RW))


@pytest.mark.case("UAPI-010")
@pytest.mark.cpu_access
def test_dup_shares_the_buffer_and_outlives_the_original(target, exporter, pages):
    """A dup'ed fd is the same buffer: same inode and size, shared pages, alive after close.

    Contract: dup takes a reference on the one dma-buf file (IGT dup
    refcounting).  A failing exporter frees the buffer when the first fd
    closes, or the second fd maps other pages.  The inode is compared where
    fdinfo shows one (5.10's fs/proc/fd.c does not print ``ino``); the
    shared pages after the first fd is closed are checked on every kernel.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    second = target.dup(buf)
    inos = {target.fdinfo(b).get("ino") for b in (buf, second)}
    if None not in inos:
        assert len(inos) == 1, f"the dup is another file: fdinfo ino {sorted(inos)}"
    assert target.buffer_size(second) == size
    first_map = target.mmap(buf)
    data = pattern(size, seed=0x7D)
    target.cpu_write(first_map, 0, data)
    target.munmap(first_map)
    target.close(buf)
    m = target.mmap(second)
    assert_same_bytes(target.cpu_read(m, 0, size), data)
