"""The size ladder's and the two-importer cases' support: chunk layout, patterns, target ops.

The cases themselves are checked against every faulty model exporter by
tests/test_faulty_matrix.py; here, what they stand on: the system heap's
chunk layout the faulty profiles act on, the per-page pattern and checksums
the targets compute, and the model's answers to the new operations.
"""

from __future__ import annotations

import errno

import pytest

from conformance.errors import KernelError
from conformance.model.chunks import chunk_of_page, system_heap_chunks
from conformance.records import Direction
from conformance.targets.base import OPERATIONS, digests, page_pattern
from conformance.targets.model import ModelTarget

PAGE = 4096


@pytest.mark.parametrize(
    "pages, layout",
    [
        (1, [0]),
        (2, [0, 0]),
        (7, [0] * 7),
        (16, [4]),
        (17, [4, 0]),
        (256, [8]),
        (273, [8, 4, 0]),
        (515, [8, 8, 0, 0, 0]),
        (287, [8, 4] + [0] * 15),  # 31 = 16 + 15 after 256
    ],
)
def test_chunks_follow_the_system_heaps_largest_first_orders(pages, layout):
    chunks = system_heap_chunks(pages)
    assert [c.order for c in chunks] == layout
    assert chunks[0].first == 0 and chunks[-1].end == pages
    assert all(a.end == b.first for a, b in zip(chunks, chunks[1:]))
    assert chunk_of_page(chunks, pages - 1) == chunks[-1]
    with pytest.raises(IndexError):
        chunk_of_page(chunks, pages)


def test_page_pattern_differs_on_every_page_and_digests_cut_per_page():
    data = page_pattern(515 * PAGE, PAGE, seed=7)
    assert len(data) == 515 * PAGE
    sums = digests(data, PAGE)
    assert len(sums) == 515 and len(set(sums)) == 515
    assert page_pattern(3 * PAGE, PAGE, seed=8) != page_pattern(3 * PAGE, PAGE, seed=7)[: 3 * PAGE]
    assert digests(b"x" * 10, 4) == digests(b"xxxx", 4) * 2 + digests(b"xx", 4)
    with pytest.raises(ValueError):
        digests(b"x", 0)


def test_the_new_operations_are_operations():
    for op in ("cpu_digests", "device_digests", "vmap_digests", "attachment_segments",
               "cpu_fill", "device_fill"):  # fmt: skip
        assert op in OPERATIONS


def test_model_fills_and_digests_through_each_view():
    t = ModelTarget()
    size = 20 * PAGE
    buf = t.allocate("model:reference", size)
    m = t.mmap(buf)
    t.cpu_fill(m, 0, size, PAGE, 0x21)
    expected = digests(page_pattern(size, PAGE, 0x21), PAGE)
    assert t.cpu_digests(m, 0, size, PAGE) == expected
    v = t.vmap(buf)
    assert t.vmap_digests(v, 0, size, PAGE) == expected
    att = t.attach(buf, "coherent")
    with pytest.raises(KernelError) as exc:
        t.attachment_segments(att)  # not mapped yet
    assert exc.value.errno == errno.EINVAL
    segments = t.map_attachment(att, Direction.BIDIRECTIONAL)
    assert t.attachment_segments(att) == segments
    t.device_fill(att, PAGE, PAGE, PAGE, 0x33)
    assert t.device_digests(att, PAGE, PAGE, PAGE) == digests(page_pattern(PAGE, PAGE, 0x33), PAGE)


def test_model_shared_sg_table_loses_the_other_attachments_mapping():
    t = ModelTarget()
    buf = t.allocate("model:faulty-shared-sg-table", 4 * PAGE)
    a = t.attach(buf, "noncoherent")
    b = t.attach(buf, "coherent")
    t.map_attachment(a, Direction.TO_DEVICE)
    segments = t.map_attachment(b, Direction.TO_DEVICE)
    t.unmap_attachment(a, Direction.TO_DEVICE)
    assert segments and t.attachment_segments(b) == []
    reference = ModelTarget()
    buf = reference.allocate("model:reference", 4 * PAGE)
    a, b = reference.attach(buf, "noncoherent"), reference.attach(buf, "coherent")
    reference.map_attachment(a, Direction.TO_DEVICE)
    segments = reference.map_attachment(b, Direction.TO_DEVICE)
    reference.unmap_attachment(a, Direction.TO_DEVICE)
    assert reference.attachment_segments(b) == segments


@pytest.mark.parametrize(
    "faulty, bad_sizes",
    [
        ("faulty-no-zero-high-order", {16, 256, 273, 515}),
        ("faulty-sg-drops-order0-tail", {273, 515}),
    ],
)
def test_chunk_order_faults_show_at_their_sizes_only(faulty, bad_sizes):
    """The zero-fill and sg-list faults, straight on the model (the cases' shape, no pytest)."""
    for pages in (1, 2, 7, 16, 256, 273, 515):
        t = ModelTarget()
        size = pages * PAGE
        old = t.allocate(f"model:{faulty}", size)
        m = t.mmap(old)
        t.cpu_fill(m, 0, size, PAGE, 1)
        t.munmap(m)
        t.close(old)
        buf = t.allocate(f"model:{faulty}", size)
        m = t.mmap(buf)
        zeroed = t.cpu_digests(m, 0, size, PAGE) == digests(bytes(size), PAGE)
        att = t.attach(buf, "coherent")
        covered = sum(s.length for s in t.map_attachment(att, Direction.BIDIRECTIONAL)) == size
        assert (zeroed and covered) == (pages not in bad_sizes), (faulty, pages, zeroed, covered)
