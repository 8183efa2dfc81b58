"""``Target.run_steps``: several operations in one request, each still checked (issue 14).

A case that cycles allocate/map/unmap/close hundreds of times paid a guest's
round trip per operation.  ``run_steps`` sends the cycle as one request; the
steps must behave exactly as the calls one by one would, and on a checked
target each must still be compared with the reference model, so a faulty
exporter is caught at the same step as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import errors
from conformance.guest.agent import Agent
from conformance.lockstep import CheckedTarget, Divergence
from conformance.records import Direction
from conformance.steps import Earlier, Step, StepsResult
from conformance.targets.agent import AgentTarget
from conformance.targets.model import ModelTarget
from tests.test_case_bookkeeping import LoopbackLink
from tests.test_qemu_protocol import _call

REF = "model:reference"


def cycle(size: int = 8192) -> list[Step]:
    return [
        Step("allocate", (REF, size)),
        Step("mmap", (Earlier(0),)),
        Step("cpu_write", (Earlier(1), 0, b"abc")),
        Step("cpu_read", (Earlier(1), 0, 3)),
        Step("begin_cpu_access", (Earlier(0), Direction.FROM_DEVICE)),
        Step("end_cpu_access", (Earlier(0), Direction.FROM_DEVICE)),
        Step("munmap", (Earlier(1),)),
        Step("buffer_size", (Earlier(0),)),
        Step("close", (Earlier(0),)),
    ]


def test_steps_give_what_the_calls_one_by_one_give() -> None:
    ran = ModelTarget().run_steps(cycle())
    assert ran.error is None and ran.stopped_at is None
    assert ran.results[3] == b"abc" and ran.results[7] == 8192
    assert len(ran.results) == len(cycle())


def test_a_refused_step_stops_the_run_and_comes_back_with_what_ran_before() -> None:
    target = ModelTarget()
    steps = [Step("allocate", (REF, 4096)), Step("sync", (Earlier(0), 0x80)),
             Step("close", (Earlier(0),))]
    ran = target.run_steps(steps)
    assert isinstance(ran.error, errors.InvalidArgument) and ran.stopped_at == 1
    assert len(ran.results) == 1
    assert target.live_buffers() == 1  # the close after the refusal did not run


@pytest.mark.parametrize("bad, message", [
    (Step("format_disk"), "step 1: 'format_disk' is not one of the Target operations"),
    (Step("close", (Earlier(1),)), r"step 1 \(close\) refers to step 1, which does not run"),
    (("close", 3), "step 1 is a tuple, not a Step"),
    (Step("health"), "step 1: 'health' is not one of the Target operations"),
])
def test_a_run_that_cannot_run_is_refused_by_name_before_anything_runs(
        bad: object, message: str) -> None:
    target = ModelTarget()
    with pytest.raises((ValueError, TypeError), match=message):
        target.run_steps([Step("allocate", (REF, 4096)), bad])  # type: ignore[list-item]
    assert target.live_buffers() == 0


def test_across_a_link_the_run_is_one_request(tmp_path: Path) -> None:
    link = LoopbackLink(tmp_path / "console.log", ModelTarget())
    target = AgentTarget(link)
    target.start()
    link.requests.clear()
    ran = target.run_steps(cycle())
    assert link.requests == ["run_steps"]
    assert isinstance(ran, StepsResult) and ran.results[3] == b"abc" and ran.error is None
    # a refusal crosses as the same typed error
    ran = target.run_steps([Step("allocate", (REF, 0))])
    assert isinstance(ran.error, errors.InvalidArgument) and ran.results == []
    # refused on this side, by name: nothing is sent
    link.requests.clear()
    with pytest.raises(ValueError, match="'crash' is not one of"):
        target.run_steps([Step("crash", ("panic",))])
    assert link.requests == []


def test_the_agent_gives_each_step_its_direction_back() -> None:
    seen: list[object] = []

    class Spy(ModelTarget):
        def begin_cpu_access(self, buf: int, direction: Direction) -> None:
            seen.append(direction)

    _call(Agent(Spy(), None), "run_steps",
          [Step("begin_cpu_access", (1,), {"direction": Direction.TO_DEVICE})])
    assert seen == [Direction.TO_DEVICE] and isinstance(seen[0], Direction)


def test_a_checked_target_compares_every_step_of_a_run(tmp_path: Path) -> None:
    link = LoopbackLink(tmp_path / "console.log", ModelTarget())
    checked = CheckedTarget(AgentTarget(link), ModelTarget())
    checked.inner.start()
    link.requests.clear()
    ran = checked.run_steps(cycle() + [Step("allocate", (REF, 0))])
    assert link.requests == ["run_steps"]
    assert isinstance(ran.error, errors.InvalidArgument) and len(ran.results) == len(cycle())
    c = checked.log.comparison()
    assert (c.status, c.compared, c.steps) == ("fully", 10, 10)
    assert [s.call.split("(")[0] for s in checked.log.steps][:2] == ["allocate", "mmap"]


class LosesTheWrite(ModelTarget):
    """An exporter whose CPU mapping does not keep what was written through it."""

    def cpu_read(self, mapping: int, offset: int, length: int) -> bytes:
        return bytes(length)


def test_a_faulty_exporter_diverges_at_the_same_step_inside_a_run() -> None:
    one_by_one = CheckedTarget(LosesTheWrite(), ModelTarget())
    buf = one_by_one.allocate(REF, 8192)
    m = one_by_one.mmap(buf)
    one_by_one.cpu_write(m, 0, b"abc")
    with pytest.raises(Divergence) as alone:
        one_by_one.cpu_read(m, 0, 3)

    batched = CheckedTarget(LosesTheWrite(), ModelTarget())
    with pytest.raises(Divergence) as in_a_run:
        batched.run_steps(cycle())
    assert "at step 4, cpu_read" in str(in_a_run.value)
    assert str(in_a_run.value) == str(alone.value)


def test_a_lost_guest_names_the_run_that_was_in_flight(tmp_path: Path) -> None:
    class Lost(LoopbackLink):
        def call_raw(self, op, args, kwargs, timeout):  # type: ignore[no-untyped-def]
            if op == "run_steps":
                raise errors.GuestError("the guest did not answer run_steps within 32 s",
                                        console_log="Kernel panic")
            return super().call_raw(op, args, kwargs, timeout)

    target = AgentTarget(Lost(tmp_path / "console.log", ModelTarget()))
    target.start()
    with pytest.raises(errors.GuestError) as lost:
        target.run_steps(cycle())
    assert str(lost.value).endswith(
        "during a run of 9 steps (1 allocate, 1 mmap, 1 cpu_write, 1 cpu_read, "
        "1 begin_cpu_access, 1 end_cpu_access, 1 munmap, 1 buffer_size, 1 close), "
        "the first allocate('model:reference', 8192)")
    assert lost.value.console_log == "Kernel panic"
