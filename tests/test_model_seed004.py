"""Seed 004's 8 steps on the model: without the unmap CMO the coherent device reads a stale line."""

from __future__ import annotations

import pytest

from conformance.records import Direction
from conformance.targets.model import ModelTarget

SIZE = 2 * 4096
DATA = bytes((0x5A + i) & 0xFF for i in range(SIZE))


def seed_004(exporter: str) -> tuple[bytes, ModelTarget]:
    t = ModelTarget()
    buf = t.allocate(exporter, SIZE)
    coherent = t.attach(buf, "coherent")  # 1
    noncoherent = t.attach(buf, "noncoherent")  # 2
    t.map_attachment(noncoherent, Direction.BIDIRECTIONAL)  # 3
    t.device_write(noncoherent, 0, DATA)  # 4
    t.unmap_attachment(noncoherent, Direction.BIDIRECTIONAL)  # 5
    t.map_attachment(coherent, Direction.BIDIRECTIONAL)  # 6
    seen = t.device_read(coherent, 0, SIZE)  # 7
    t.unmap_attachment(coherent, Direction.BIDIRECTIONAL)  # 8
    return seen, t


def test_reference_coherent_device_reads_the_data():
    seen, t = seed_004("model:reference")
    assert seen == DATA
    invalidates = [op for op in t.cmo_log() if op.op == "invalidate"]
    assert any("dma_unmap_sg(noncoherent)" in op.cause for op in invalidates)
    events = [(e.device, e.op) for e in t.dma_events()]
    assert ("noncoherent", "unmap_sg") in events


def test_faulty_sgt_cache_no_cmo_coherent_device_reads_a_stale_line():
    seen, t = seed_004("model:faulty-sgt-cache-no-cmo")
    assert seen != DATA
    assert seen == bytes(SIZE)  # the zeroes the CPU prefetched before the device wrote
    # step 5 made no DMA call at all, so nothing invalidated the line
    assert not [e for e in t.dma_events() if e.op == "unmap_sg"]
    assert not [op for op in t.cmo_log() if op.op == "invalidate"]


@pytest.mark.parametrize("speculative", [True, False])
def test_stale_line_needs_a_cached_copy(speculative):
    # Without speculation the line is still there: the allocation's zeroing
    # left it valid (clean after map), so the bug shows either way.
    t = ModelTarget(speculative=speculative)
    buf = t.allocate("model:faulty-sgt-cache-no-cmo", SIZE)
    c, n = t.attach(buf, "coherent"), t.attach(buf, "noncoherent")
    t.map_attachment(n, Direction.BIDIRECTIONAL)
    t.device_write(n, 0, DATA)
    t.unmap_attachment(n, Direction.BIDIRECTIONAL)
    t.map_attachment(c, Direction.BIDIRECTIONAL)
    assert t.device_read(c, 0, SIZE) != DATA
