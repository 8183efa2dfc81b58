"""How far the reference model followed a case: "compared up to step N of M"."""

from __future__ import annotations

import errno

import pytest

from conformance.errors import OutOfMemory
from conformance.lockstep import CheckedTarget
from conformance.targets.model import ModelTarget

BIG = 8 << 20


class Starved(ModelTarget):
    """A machine whose memory ends where the model's does not."""

    def allocate(self, exporter: str, size: int, **kwargs) -> int:
        if size >= BIG:
            raise OutOfMemory(errno.ENOMEM, "DMA_HEAP_IOCTL_ALLOC", size)
        return super().allocate(exporter, size, **kwargs)


def test_a_shadow_that_never_stops_compared_every_step():
    checked = CheckedTarget(ModelTarget(), ModelTarget())
    buf = checked.allocate("model:reference", 4096)
    checked.buffer_size(buf)
    c = checked.log.comparison()
    assert (c.status, c.compared, c.steps) == ("fully", 2, 2)


def test_running_out_of_memory_stops_the_comparison_after_the_last_agreed_step():
    checked = CheckedTarget(Starved(), ModelTarget())
    buf = checked.allocate("model:reference", 4096)
    with pytest.raises(OutOfMemory):
        checked.allocate("model:reference", BIG)
    checked.buffer_size(buf)
    c = checked.log.comparison()
    assert (c.status, c.compared, c.steps) == ("partially", 1, 3)
    assert c.line() == (
        "compared up to step 1 of 3: step 2: the target ran out of a resource (ENOMEM) "
        "where the model did not"
    )


def test_a_case_without_a_shadow_is_not_compared():
    checked = CheckedTarget(ModelTarget())
    checked.allocate("model:reference", 4096)
    c = checked.log.comparison()
    assert (c.status, c.compared, c.steps) == ("not compared", 0, 1)


def test_kernel_mappings_is_left_to_the_cases_but_other_counters_are_compared():
    from conformance.lockstep import Outcome, _same

    def counters(**values):
        return Outcome("ok", values, "")

    # a real kernel cannot see a one-page vm_map_ram mapping in /proc/vmallocinfo
    assert _same("counters", counters(vmap_count=1, kernel_mappings=0),
                 counters(vmap_count=1, kernel_mappings=1)) == ""
    assert "vmap_count: target 2, reference 1" in _same(
        "counters", counters(vmap_count=2, kernel_mappings=0), counters(vmap_count=1)
    )
