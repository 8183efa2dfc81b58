"""Generated scenarios: random operation sequences, run on the target and the model in lockstep.

A hypothesis state machine picks Target operations on a small pool of
buffers, fds, user mappings, attachments and vmaps, and runs each on the
target under test and on the reference model standing in for the same kind
of exporter (``conformance.lockstep.CheckedTarget``).  At the first step
where they differ, hypothesis shrinks the sequence to a minimal one, and the
failure shows it as a ready-to-run pytest case.

The sequences keep the ownership protocol that the other cases keep (CPU
access inside SYNC or begin/end_cpu_access brackets and never while a device
has the buffer mapped; one device mapping at a time), so a correct exporter
on a coherent or a non-coherent machine never differs from the model: every
difference is a contract the exporter broke.

Source: the issue's "generated scenarios"; the rules of every other case
family, combined in orders no hand-written case tries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from conformance.errors import KernelError
from conformance.lockstep import CheckedTarget, Divergence, unchecked
from conformance.patterns import pattern
from conformance.records import Direction, SyncFlag
from conformance.skips import not_checked
from conformance.targets.base import Target

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

pytestmark = pytest.mark.generated

DEVICES = ("coherent", "noncoherent")
PICK = st.integers(min_value=0, max_value=7)  # an index into a pool, taken modulo its size
DIRECTIONS = (Direction.TO_DEVICE, Direction.FROM_DEVICE, Direction.BIDIRECTIONAL)
SYNC_DIRECTIONS = (SyncFlag.READ, SyncFlag.WRITE, SyncFlag.RW)


@dataclass
class Obj:
    """One dma-buf: its fds, user mappings and attachments (the pool the rules draw from)."""

    size: int
    fds: list[int] = field(default_factory=list)
    mappings: list[int] = field(default_factory=list)
    attachments: list[int] = field(default_factory=list)
    mapped: dict[int, Direction] = field(default_factory=dict)  # attachment -> direction
    vmaps: list[int] = field(default_factory=list)

    @property
    def device_owns(self) -> bool:
        return bool(self.mapped)


class Program:
    """The calls of one sequence, as the Python source of a pytest case."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self._counts: dict[str, int] = {}

    def name(self, handle: int, prefix: str) -> str:
        n = self._counts.get(prefix, 0) + 1
        self._counts[prefix] = n
        self.names[handle] = f"{prefix}{n}"
        return self.names[handle]

    def ref(self, handle: int) -> str:
        return self.names.get(handle, str(handle))

    def render(self, case_id: str) -> str:
        body = "\n".join(f"    {line}" for line in self.lines) or "    pass"
        return (
            "import os\n\nimport pytest\n\n"
            "from conformance.errors import *  # noqa: F403\n"
            "from conformance.patterns import pattern\n"
            "from conformance.records import Direction, SyncFlag\n\n\n"
            f'@pytest.mark.case("{case_id}")\n'
            "def test_generated_reproducer(target, exporter):\n"
            f'    """Shrunk by GEN-001: the last call is where the exporter diverged."""\n'
            f"{body}\n"
        )


class LockstepMachine(RuleBasedStateMachine):
    """Rules are Target operations; the CheckedTarget compares each with the model."""

    # set by make_machine for one case run
    make_target: Callable[[], CheckedTarget]
    exporter_name: str
    kernel_side: bool
    page_size: int  # the target kernel's: buffers and accesses are whole pages of it
    on_program: Callable[[Program], None]

    def __init__(self) -> None:
        super().__init__()
        self.t = self.make_target()
        self.objs: list[Obj] = []
        self.program = Program()
        self.on_program(self.program)

    # -- helpers ---------------------------------------------------------------------
    def call(self, source: str, op: str, *args: Any, result: str | None = None, **kw: Any) -> Any:
        """Run one operation; an errno both sides agree on is a legal outcome, recorded."""
        try:
            value = getattr(self.t, op)(*args, **kw)
        except KernelError as e:
            self.program.lines.append(f"with pytest.raises({type(e).__name__}):")
            self.program.lines.append(f"    {source}")
            return None
        except Divergence:
            self.program.lines.append(f"{source}  # <- diverges from the reference model")
            raise
        if result is not None and value is not None:
            source = f"{self.program.name(value, result)} = {source}"
        self.program.lines.append(source)
        return value

    def _forget_dead(self) -> None:
        # a buffer nothing refers to any more is gone: it frees a slot of the pool
        self.objs = [o for o in self.objs if o.fds or o.mappings or o.attachments or o.vmaps]

    def _pick(self, pool: list[Any], i: int) -> Any:
        return pool[i % len(pool)]

    def _with(self, attr: str) -> list[Obj]:
        return [o for o in self.objs if getattr(o, attr)]

    def teardown(self) -> None:
        try:
            self.t.close_all()
        except KernelError:
            pass

    # -- allocation and fds ---------------------------------------------------------------
    @precondition(lambda self: len(self.objs) < 3)
    @rule(pages=st.integers(min_value=1, max_value=4))
    def allocate(self, pages: int) -> None:
        size = pages * self.page_size
        buf = self.call(
            f"target.allocate(exporter.name, {size})",
            "allocate",
            self.exporter_name,
            size,
            result="b",
        )
        if buf is not None:
            self.objs.append(Obj(size, fds=[buf]))

    @precondition(lambda self: any(o.fds for o in self.objs))
    @rule(i=PICK)
    def dup(self, i: int) -> None:
        o = self._pick(self._with("fds"), i)
        fd = self.call(f"target.dup({self.program.ref(o.fds[0])})", "dup", o.fds[0], result="b")
        if fd is not None:
            o.fds.append(fd)

    @precondition(lambda self: any(o.fds for o in self.objs))
    @rule(i=PICK, j=PICK)
    def close(self, i: int, j: int) -> None:
        o = self._pick(self._with("fds"), i)
        fd = o.fds.pop(j % len(o.fds))
        self.call(f"target.close({self.program.ref(fd)})", "close", fd)
        self._forget_dead()

    @precondition(lambda self: any(o.fds for o in self.objs))
    @rule(i=PICK)
    def query(self, i: int) -> None:
        o = self._pick(self._with("fds"), i)
        fd = self.program.ref(o.fds[0])
        self.call(f"target.buffer_size({fd})", "buffer_size", o.fds[0])
        self.call(f"target.fdinfo({fd})", "fdinfo", o.fds[0])

    @precondition(lambda self: any(o.fds for o in self.objs))
    @rule(i=PICK, flags=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8]))
    def raw_sync(self, i: int, flags: int) -> None:
        """Any SYNC flags, brackets or not: errnos and balance are part of the contract."""
        o = self._pick(self._with("fds"), i)
        self.call(f"target.sync({self.program.ref(o.fds[0])}, {flags})", "sync", o.fds[0], flags)

    # -- user mappings ------------------------------------------------------------------
    @precondition(lambda self: any(o.fds for o in self.objs))
    @rule(i=PICK)
    def mmap(self, i: int) -> None:
        o = self._pick(self._with("fds"), i)
        m = self.call(f"target.mmap({self.program.ref(o.fds[0])})", "mmap", o.fds[0], result="m")
        if m is not None:
            o.mappings.append(m)

    @precondition(lambda self: any(o.mappings for o in self.objs))
    @rule(i=PICK, j=PICK)
    def munmap(self, i: int, j: int) -> None:
        o = self._pick(self._with("mappings"), i)
        m = o.mappings.pop(j % len(o.mappings))
        self.call(f"target.munmap({self.program.ref(m)})", "munmap", m)
        self._forget_dead()

    def _cpu_ready(self) -> list[Obj]:
        return [o for o in self.objs if o.mappings and o.fds and not o.device_owns]

    @precondition(lambda self: bool(self._cpu_ready()))
    @rule(i=PICK, page=st.integers(0, 3), seed=st.integers(1, 255))
    def cpu_write(self, i: int, page: int, seed: int) -> None:
        o = self._pick(self._cpu_ready(), i)
        fd, m = self.program.ref(o.fds[0]), self.program.ref(o.mappings[0])
        size = self.page_size
        offset = (page * size) % o.size
        self.call(f"target.sync({fd}, SyncFlag.START | SyncFlag.WRITE)", "sync", o.fds[0],
                  SyncFlag.START | SyncFlag.WRITE)  # fmt: skip
        self.call(f"target.cpu_write({m}, {offset}, pattern({size}, seed={seed}))",
                  "cpu_write", o.mappings[0], offset, pattern(size, seed=seed))  # fmt: skip
        self.call(f"target.sync({fd}, SyncFlag.END | SyncFlag.WRITE)", "sync", o.fds[0],
                  SyncFlag.END | SyncFlag.WRITE)  # fmt: skip

    @precondition(lambda self: bool(self._cpu_ready()))
    @rule(i=PICK)
    def cpu_read(self, i: int) -> None:
        o = self._pick(self._cpu_ready(), i)
        fd, m = self.program.ref(o.fds[0]), self.program.ref(o.mappings[0])
        self.call(f"target.sync({fd}, SyncFlag.START | SyncFlag.READ)", "sync", o.fds[0],
                  SyncFlag.START | SyncFlag.READ)  # fmt: skip
        self.call(f"target.cpu_read({m}, 0, {o.size})", "cpu_read", o.mappings[0], 0, o.size)
        self.call(f"target.sync({fd}, SyncFlag.END | SyncFlag.READ)", "sync", o.fds[0],
                  SyncFlag.END | SyncFlag.READ)  # fmt: skip

    # -- kernel side: attachments and vmaps --------------------------------------------------
    @precondition(lambda self: self.kernel_side and any(o.fds for o in self.objs))
    @rule(i=PICK, device=st.sampled_from(DEVICES))
    def attach(self, i: int, device: str) -> None:
        o = self._pick(self._with("fds"), i)
        a = self.call(f"target.attach({self.program.ref(o.fds[0])}, {device!r})", "attach",
                      o.fds[0], device, result="a")  # fmt: skip
        if a is not None:
            o.attachments.append(a)

    def _unmapped(self) -> list[Obj]:
        return [o for o in self.objs if o.attachments and not o.device_owns]

    @precondition(lambda self: bool(self._unmapped()))
    @rule(i=PICK, j=PICK, direction=st.sampled_from(DIRECTIONS))
    def map_attachment(self, i: int, j: int, direction: Direction) -> None:
        o = self._pick(self._unmapped(), i)
        a = self._pick(o.attachments, j)
        sg = self.call(f"target.map_attachment({self.program.ref(a)}, Direction.{direction.name})",
                       "map_attachment", a, direction)  # fmt: skip
        if sg is not None:
            o.mapped[a] = direction

    @precondition(lambda self: any(o.mapped for o in self.objs))
    @rule(i=PICK)
    def unmap_attachment(self, i: int) -> None:
        o = self._pick(self._with("mapped"), i)
        a, direction = next(iter(o.mapped.items()))
        del o.mapped[a]
        self.call(f"target.unmap_attachment({self.program.ref(a)}, Direction.{direction.name})",
                  "unmap_attachment", a, direction)  # fmt: skip

    @precondition(lambda self: any(o.mapped for o in self.objs))
    @rule(i=PICK, page=st.integers(0, 3), seed=st.integers(1, 255))
    def device_write(self, i: int, page: int, seed: int) -> None:
        o = self._pick(self._with("mapped"), i)
        a, direction = next(iter(o.mapped.items()))
        if direction == Direction.TO_DEVICE:
            return  # the device may only read a TO_DEVICE mapping
        offset = (page * self.page_size) % o.size
        self.call(f"target.device_write({self.program.ref(a)}, {offset}, "
                  f"pattern({self.page_size}, seed={seed}))",
                  "device_write", a, offset, pattern(self.page_size, seed=seed))  # fmt: skip

    @precondition(lambda self: any(o.mapped for o in self.objs))
    @rule(i=PICK)
    def device_read(self, i: int) -> None:
        o = self._pick(self._with("mapped"), i)
        a, direction = next(iter(o.mapped.items()))
        if direction == Direction.FROM_DEVICE:
            return  # what the device reads from a FROM_DEVICE mapping is undefined
        self.call(f"target.device_read({self.program.ref(a)}, 0, {o.size})", "device_read",
                  a, 0, o.size)  # fmt: skip

    @precondition(lambda self: any(o.attachments and not o.mapped for o in self.objs))
    @rule(i=PICK)
    def detach(self, i: int) -> None:
        o = self._pick([o for o in self.objs if o.attachments and not o.mapped], i)
        a = o.attachments.pop()
        self.call(f"target.detach({self.program.ref(a)})", "detach", a)
        self._forget_dead()

    @precondition(lambda self: self.kernel_side and any(o.fds for o in self.objs))
    @rule(i=PICK)
    def vmap(self, i: int) -> None:
        o = self._pick(self._with("fds"), i)
        v = self.call(f"target.vmap({self.program.ref(o.fds[0])})", "vmap", o.fds[0], result="v")
        if v is not None:
            o.vmaps.append(v)

    @precondition(lambda self: any(o.vmaps and o.fds and not o.device_owns for o in self.objs))
    @rule(i=PICK, seed=st.integers(1, 255), write=st.booleans())
    def vmap_access(self, i: int, seed: int, write: bool) -> None:
        o = self._pick([o for o in self.objs if o.vmaps and o.fds and not o.device_owns], i)
        fd, v = self.program.ref(o.fds[0]), self.program.ref(o.vmaps[0])
        d = Direction.TO_DEVICE if write else Direction.FROM_DEVICE
        self.call(f"target.begin_cpu_access({fd}, Direction.{d.name})", "begin_cpu_access",
                  o.fds[0], d)  # fmt: skip
        if write:
            self.call(f"target.vmap_write({v}, 0, pattern({self.page_size}, seed={seed}))",
                      "vmap_write", o.vmaps[0], 0, pattern(self.page_size, seed=seed))  # fmt: skip
        else:
            self.call(f"target.vmap_read({v}, 0, {o.size})", "vmap_read", o.vmaps[0], 0, o.size)
        self.call(f"target.end_cpu_access({fd}, Direction.{d.name})", "end_cpu_access",
                  o.fds[0], d)  # fmt: skip

    @precondition(lambda self: any(o.vmaps for o in self.objs))
    @rule(i=PICK)
    def vunmap(self, i: int) -> None:
        o = self._pick(self._with("vmaps"), i)
        v = o.vmaps.pop()
        self.call(f"target.vunmap({self.program.ref(v)})", "vunmap", v)
        self._forget_dead()

    @precondition(lambda self: self.kernel_side and any(o.fds for o in self.objs))
    @rule(i=PICK)
    def counters(self, i: int) -> None:
        o = self._pick(self._with("fds"), i)
        self.call(f"target.counters({self.program.ref(o.fds[0])})", "counters", o.fds[0])

    @invariant()
    def dma_calls_match(self) -> None:
        if self.kernel_side:
            self.call("target.dma_events()", "dma_events")


@dataclass
class Found:
    program: Program | None = None


def explore(real: Target, exporter: str, budget: Any) -> tuple[Program, Divergence] | None:
    """Random sequences until the budget is spent; the shrunk reproducer of a divergence."""
    from conformance.model import stand_in_for
    from conformance.targets.model import ModelTarget

    found = Found()
    stand_in = stand_in_for(real.exporters(), kernel=real.info().kernel)  # its release's
    kernel_side = bool(real.devices())
    # The shadow behaves like the machine under test (see fixtures/plugin.py).
    platform = real.info().extra.get("dma_platform", "model")

    def fresh() -> Target:
        # A model target starts every sequence from a new machine, so that a
        # sequence's result never depends on the one before (hypothesis replays
        # them while shrinking); a real kernel is the one kernel there is.
        return ModelTarget() if isinstance(real, ModelTarget) else real

    class Machine(LockstepMachine):
        make_target = staticmethod(
            lambda: CheckedTarget(fresh(), ModelTarget.for_platform(platform), stand_in)
        )
        exporter_name = exporter
        on_program = staticmethod(lambda p: setattr(found, "program", p))

    Machine.kernel_side = kernel_side
    Machine.page_size = int(real.info().page_size)
    Machine.TestCase.settings = settings(
        max_examples=10,
        stateful_step_count=budget.steps,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    # Batches of ten sequences until the time or the count runs out: hypothesis
    # itself has no time budget.  Shrinking a failure is not counted.
    end = time.monotonic() + budget.seconds
    runs = 0
    while time.monotonic() < end and runs < budget.examples:
        # What hypothesis' @seed sets: each batch its own, all fixed by --generated-seed.
        Machine._hypothesis_internal_use_seed = budget.seed * 1_000_003 + runs
        try:
            run_state_machine_as_test(Machine)
        except Divergence as exc:
            # hypothesis replays the shrunk sequence last: found.program is that one
            assert found.program is not None
            return found.program, exc
        runs += 10
    return None


@pytest.mark.case("GEN-001")
def test_random_operation_sequences_agree_with_the_model(target, exporter, generated_budget):
    """Random sequences of operations give the same results as the reference model.

    Contract: every rule of every family at once, in orders no written case
    tries (dups closed under mappings, attachments left over, vmaps kept
    across device maps, stray SYNC flags).  A failing exporter differs from
    the model at some step; the failure shows the shortest sequence found
    as a ready-to-run case.

    What it can see depends on the target's instruments: the user-space
    operations are compared everywhere; the kernel-side ones need the probe,
    the exporter's DMA calls its event log, stale device data a bouncing
    non-coherent device, a DMA-API misuse DMA-API debug (read after the
    case).  A divergence fails the case wherever it is found; no divergence
    is a pass only where every one of those could have failed, and is
    otherwise "not checked", naming what was missing.  (Not a ``needs``
    marker: that would stop the search on a board without DMA-API debug,
    where its user-space half still finds bugs.)
    """
    real = unchecked(target)
    info = real.info()
    missing = [
        why
        for name in ("probe", "dma_event_log", "swiotlb_bounce", "dma_api_debug")
        if (why := info.missing_instrument(name))
    ]
    result = explore(real, exporter.name, generated_budget)
    if result is None and missing:
        not_checked(
            "no generated sequence diverged from the model, but part of what they check "
            "could not fail here: " + "; ".join(missing)
        )
    if result is not None:
        program, exc = result
        pytest.fail(
            f"a generated sequence diverged; shrunk to {len(program.lines)} line(s). "
            "Ready-to-run reproducer:\n\n"
            f"{program.render('GEN-REPRO')}\n"
            f"Divergence:\n{exc}",
            pytrace=False,
        )
