"""A target served by ``conformance.guest.agent`` somewhere else: a QEMU guest or a board.

The agent runs ``LocalTarget`` where the kernel is; this side forwards each
Target operation to it as one request.  What differs between a guest and a
board is only the *link*: the channel (virtio-serial, a shell pipe) and its
life cycle (boot a guest, or connect to a board).  The operations are not
written out per target: :data:`FORWARDED` names them once and
:func:`_forwarder` makes each method from ``Target``'s own signature, so a new
operation in ``conformance.targets.base.OPERATIONS`` reaches every agent-backed
target by itself.

A link that dies (a guest panic, a board that reboots or drops the connection)
turns the operation in flight into ``GuestError`` with the console excerpt;
``restart()`` boots or reconnects so the run goes on with the next case.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections import Counter
from typing import Any, Callable, Optional, Protocol

from conformance.errors import GuestError
from conformance.guest import protocol
from conformance.qemu.console import ConsoleLog, parse_console
from conformance.records import DeviceSpec, ExporterInfo, KernelHealth, TargetInfo
from conformance.steps import Step, StepsResult, check_steps
from conformance.targets.base import AGENT_EXTRA_OPERATIONS, OPERATIONS, Target

DEFAULT_OP_TIMEOUT = 30.0
DEFAULT_READY_TIMEOUT = 120.0  # TCG on a loaded 2-core machine, or a board rebooting

# Every operation the agent's LocalTarget answers as it is.  info, health and end_case
# are asked of the agent too, then completed here with what only this side knows (the
# link, the console); exporters, devices and close_all are asked only when the answer
# can have changed.  So they are written out below.
WRITTEN_OUT: tuple[str, ...] = ("info", "health", "end_case", "exporters", "devices",
                                "close_all", "run_steps")
FORWARDED: tuple[str, ...] = tuple(
    op for op in OPERATIONS + AGENT_EXTRA_OPERATIONS if op not in WRITTEN_OUT
)
# What the agent serves besides the target's operations and that may change what the
# target offers: a module loaded or unloaded (the probe's devices), a program run
# (insmod, rmmod).  The answers asked once are asked again after one of them.
CHANGES_THE_TARGET: frozenset[str] = frozenset(("load_module", "unload_module", "exec"))

# An operation whose work grows with its input: its own timeout, from the arguments.
_TIMEOUTS: dict[str, Callable[[float, tuple[Any, ...]], float]] = {
    # Under TCG most inputs cost a few ms in the guest, but a udmabuf list of 1024 items
    # or a 64 MiB one pins and frees every page: the udmabuf-limits category took 20 s
    # for 527 inputs on a quiet 2-CPU host (38 ms each, up to 180 ms), and 500 of them
    # outlasted 35 s under load.  0.1 s per input is 2.5 times that average.
    "bad_input_batch": lambda base, args: max(base, 0.1 * len(args[1]) + 30),
    # a step is one operation: a few ms in the guest, more for a large buffer's data
    "run_steps": lambda base, args: max(base, 0.05 * len(args[0]) + 30),
}


class AgentLink(Protocol):
    """One way of reaching an agent: what ``AgentTarget`` needs of a guest or a board."""

    console: ConsoleLog  # the kernel's console (or kmsg) as this side captured it
    name: str
    # Whether the console is read for health after each case.  A guest's serial console
    # is written as the kernel prints; a board's copy of kmsg comes over the pipe some
    # time later, so a complaint of one case could be counted against the next: there
    # the agent's own kmsg reading, done in the request, is the health.
    health_from_console: bool

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> dict[str, Any]: ...

    def restart(self, timeout: float) -> dict[str, Any]: ...

    def cleanup(self) -> None: ...

    def alive(self) -> bool: ...

    def call_raw(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float) -> dict[str, Any]: ...

    def describe(self) -> dict[str, str]:
        """What the link adds to ``TargetInfo.extra`` (the booted image, the board)."""
        ...


def _forwarder(op: str) -> Callable[..., Any]:
    timeout_of = _TIMEOUTS.get(op)

    @functools.wraps(getattr(Target, op))
    def forward(self: AgentTarget, *args: Any, **kwargs: Any) -> Any:
        timeout = timeout_of(self.op_timeout, args) if timeout_of else None
        return self.call(op, *args, timeout=timeout, **kwargs)

    forward.__isabstractmethod__ = False  # type: ignore[attr-defined]
    return forward


def forwarded(cls: type) -> type:
    """Give ``cls`` one forwarding method per name in :data:`FORWARDED`."""
    for op in FORWARDED:
        if op not in cls.__dict__:
            setattr(cls, op, _forwarder(op))
    abc.update_abstractmethods(cls)
    return cls


@forwarded
class AgentTarget(Target):
    """Every Target operation answered by an agent over ``link``."""

    name = "agent"

    def __init__(self, link: AgentLink, *, op_timeout: float = DEFAULT_OP_TIMEOUT,
                 ready_timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        self.link = link
        self.op_timeout = op_timeout
        self.ready_timeout = ready_timeout
        self._health_mark = 0
        self._info: Optional[TargetInfo] = None
        # Answers that stay the same while the agent runs and its modules do not change
        # (the exporters, the probe's devices): the plugin asks them for every case.
        self._asked: dict[str, Any] = {}
        # Requests sent, and their count when the agent last released everything: while
        # the two are equal the agent holds nothing, so close_all needs no request.
        self._requests = 0
        self._settled_at = 0

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        self.link.start()
        self.link.wait_ready(self.ready_timeout)
        self._health_mark = self.link.console.mark()

    def restart(self) -> None:
        self.link.restart(self.ready_timeout)
        # Complaints from before the loss were reported with the case that lost the link.
        self._health_mark = self.link.console.mark()
        self._forget_answers()
        self._settled_at = self._requests  # a new agent holds nothing

    def _forget_answers(self) -> None:
        self._info = None
        self._asked.clear()

    def stop(self) -> None:
        self.link.cleanup()

    def console_excerpt(self, since: int = 0) -> str:
        return self.link.console.since(since)

    def console_mark(self) -> int:
        return self.link.console.mark()

    def call(self, op: str, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        self._requests += 1
        if op in CHANGES_THE_TARGET:
            self._forget_answers()
        msg = self.link.call_raw(op, args, kwargs, timeout or self.op_timeout)
        if "error" in msg:
            raise protocol.decode_error(msg["error"])
        return protocol.decode_value(msg.get("result"))

    def crash(self, kind: str = "panic", timeout: float = 20.0) -> None:
        """Test-only: panic or hang the kernel (or end the agent); always raises GuestError."""
        self.call("crash", kind, timeout=timeout)
        raise GuestError(f"crash({kind!r}) returned: the {self.name} target did not crash")

    # -- completed here ---------------------------------------------------------------

    def info(self) -> TargetInfo:
        if self._info is None or not self.link.alive():
            info: TargetInfo = self.call("info")
            extra = {**info.extra, **self.link.describe(), "guest_machine": info.machine}
            self._info = dataclasses.replace(info, target=self.name, extra=extra)
        return self._info

    def exporters(self) -> list[ExporterInfo]:
        return list(self._ask_once("exporters"))

    def devices(self) -> list[DeviceSpec]:
        return list(self._ask_once("devices"))

    def _ask_once(self, op: str) -> Any:
        if op not in self._asked or not self.link.alive():
            self._asked[op] = self.call(op)
        return self._asked[op]

    def close_all(self) -> None:
        if self._settled_at == self._requests:
            return  # nothing reached the agent since it released everything
        self.call("close_all")
        self._settled_at = self._requests

    def run_steps(self, steps: list[Step]) -> StepsResult:
        check_steps(steps)  # refused here, by name, before anything reaches the agent
        try:
            return self.call("run_steps", list(steps),
                             timeout=_TIMEOUTS["run_steps"](self.op_timeout, (steps,)))
        except GuestError as e:
            # None of the run's steps came back to be logged: say which were in flight.
            ops = ", ".join(f"{n} {op}" for op, n in Counter(s.op for s in steps).items())
            raise GuestError(f"{e}\nduring a run of {len(steps)} steps ({ops}), the first "
                             f"{steps[0].op}{steps[0].args!r}",
                             console_log=e.console_log) from None

    def health(self) -> KernelHealth:
        """The agent's view (DMA-API error count, its kmsg reading) plus the console's."""
        return self._with_console(self.call("health"))

    def end_case(self) -> KernelHealth:
        """``close_all`` and ``health`` in one request, completed with the console's view."""
        agent: KernelHealth = self.call("end_case")
        self._settled_at = self._requests
        return self._with_console(agent)

    def _with_console(self, agent: KernelHealth) -> KernelHealth:
        if not self.link.health_from_console:
            return agent
        mark = self.link.console.mark()
        console = parse_console(self.link.console.since(self._health_mark))
        self._health_mark = mark
        excerpt = "\n".join(x for x in (console.excerpt, agent.log_excerpt) if x)
        # Both sides may see the same report (kmsg and the console): max, not sum.
        return KernelHealth(
            warnings=max(agent.warnings, console.warnings),
            dma_api_errors=max(agent.dma_api_errors, console.dma_api_errors),
            log_excerpt=excerpt,
        )
