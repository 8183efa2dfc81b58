"""vgem: DRM PRIME export and import round trips.

Source: drivers/gpu/drm/drm_prime.c of 6.1 (drm_gem_prime_fd_to_handle finds
the object behind a dma-buf it exported, or one it imported before;
drm_gem_prime_handle_to_fd re-exports obj->dma_buf, or the imported
dma-buf itself for an object made by import), drivers/gpu/drm/vgem, and
IGT's prime_vgem / prime_self_import tests (self import gives the same
handle, the dma-buf outlives the GEM handle).
"""

from __future__ import annotations

import pytest

from conformance.patterns import assert_same_bytes, pattern
from conformance.skips import not_checked

pytestmark = [pytest.mark.exporter_specific, pytest.mark.applies_to("vgem")]

PAGES = 4  # the buffer of every case, in pages of the target


def _same_file(target, a: int, b: int) -> bool | None:
    """Whether two fds are one dma-buf file, by fdinfo ``ino``; None where fdinfo shows
    none (5.10's fs/proc/fd.c): the cases' shared-data checks then carry the contract."""
    first, second = target.fdinfo(a).get("ino"), target.fdinfo(b).get("ino")
    return None if first is None or second is None else first == second


def _heap_exporter(target, exporter) -> str:
    """An exporter of another kind on the same target, for the foreign import."""
    if exporter.kind == "model":
        return "model:reference"
    for e in target.exporters():
        if e.kind == "heap":
            return e.name
    not_checked("no DMA-BUF heap on this target to import a foreign dma-buf from")


@pytest.mark.case("VGEM-001")
def test_own_dma_buf_imports_back_to_the_same_buffer(target, exporter, pages):
    """Importing vgem's own dma-buf and exporting the handle again gives the same dma-buf.

    Contract: drm_gem_prime_fd_to_handle looks the dma-buf up in the
    device's PRIME cache and returns the object that exported it, whose
    obj->dma_buf is exported again (IGT prime_self_import).  Data written
    through either mapping is seen through the other.  A failing driver
    imports by copying, so two processes sharing by PRIME see two buffers.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x4B)
    target.cpu_write(m, 0, data)
    again = target.prime_import(exporter.name, buf)
    assert _same_file(target, buf, again) is not False, (
        "the re-exported dma-buf is another file (fdinfo ino differs): the import made "
        "a new object instead of finding the one that exported it"
    )
    m2 = target.mmap(again)
    assert_same_bytes(target.cpu_read(m2, 0, size), data)
    later = pattern(pages(1), seed=0x6C)
    target.cpu_write(m2, pages(1), later)
    assert_same_bytes(
        target.cpu_read(m, pages(1), pages(1)),
        later,
        "a write through the re-exported dma-buf is not seen through the original",
    )


@pytest.mark.case("VGEM-002")
def test_foreign_dma_buf_import_keeps_the_buffer(target, exporter, pages):
    """A heap's dma-buf imported into vgem and exported again is the heap's dma-buf.

    Contract: an object made by PRIME import re-exports the dma-buf it was
    imported from (drm_gem_prime_handle_to_fd: obj->import_attach->dmabuf),
    so the buffer stays one buffer across drivers.  A failing driver copies
    the foreign pages into an object of its own and exports that.
    """
    size = pages(PAGES)
    heap_buf = target.allocate(_heap_exporter(target, exporter), size)
    m = target.mmap(heap_buf)
    data = pattern(size, seed=0x2D)
    target.cpu_write(m, 0, data)
    again = target.prime_import(exporter.name, heap_buf)
    assert _same_file(target, heap_buf, again) is not False, (
        "vgem re-exported a foreign dma-buf as another file (fdinfo ino differs)"
    )
    m2 = target.mmap(again)
    assert_same_bytes(target.cpu_read(m2, 0, size), data)
    later = pattern(pages(1), seed=0x3A)
    target.cpu_write(m2, 0, later)
    assert_same_bytes(target.cpu_read(m, 0, pages(1)), later)


@pytest.mark.case("VGEM-003")
def test_dma_buf_outlives_the_gem_handle(target, exporter, pages):
    """After GEM_CLOSE of the handle and close of the first fd, the re-exported fd keeps the data.

    Contract: a dma-buf holds its own reference on the GEM object
    (drm_gem_prime_export takes one; drm_gem_dmabuf_release drops it), so
    closing the last handle does not free the pages while an fd lives.
    The pages are reused by a new buffer right after, so a use after free
    shows as that buffer's data.  A failing driver frees on the last handle.
    """
    size = pages(PAGES)
    buf = target.allocate(exporter.name, size)
    m = target.mmap(buf)
    data = pattern(size, seed=0x59)
    target.cpu_write(m, 0, data)
    target.munmap(m)
    again = target.prime_import(exporter.name, buf)  # the handle is closed inside
    target.close(buf)
    other = target.allocate(exporter.name, size)
    mo = target.mmap(other)
    target.cpu_write(mo, 0, b"\xa5" * size)
    m2 = target.mmap(again)
    got = target.cpu_read(m2, 0, size)
    assert_same_bytes(
        got,
        data,
        "the dma-buf lost its data once the GEM handle and the first fd were closed "
        f"(reads {got[:8].hex(' ')}…): its pages were freed under a live fd",
    )
