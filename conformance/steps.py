"""Runs of steps: several Target operations sent as one request (``Target.run_steps``).

A case that repeats a cycle of operations hundreds of times (allocate, map,
unmap, close) paid a guest's or a board's round trip for each operation; as a
run of steps it pays one per run.  A step names an operation of
``conformance.targets.base.OPERATIONS`` and its arguments; ``Earlier(i)``
stands for the result of step ``i`` of the same run (the buffer an earlier
``allocate`` made).  On a checked target every step is still compared with
the reference model, one by one (``conformance.lockstep``).

Its own module, imported only where runs of steps are used: the guest agent's
start path does without its dataclasses (each one is code an emulated CPU
executes at every boot).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.targets.base import OPERATIONS

TYPE_CHECKING = False  # typing is not imported: a guest agent loads this module mid-run
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Earlier:
    """An argument of a step: the result of step ``index`` (0-based) of the same run."""

    index: int


@dataclass(frozen=True)
class Step:
    """One Target operation of a run, called as ``op(*args, **kwargs)``."""

    op: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepsResult:
    """What a run did: the results of the steps that ran, in order, and the refusal (a
    ``KernelError``) that stopped it at step ``len(results)``, if any."""

    results: list[Any]
    error: Any = None  # a conformance.errors.KernelError

    @property
    def stopped_at(self) -> int | None:
        """The index of the step that was refused, or None when every step ran."""
        return None if self.error is None else len(self.results)


def check_steps(steps: list[Step]) -> None:
    """Refuse, before anything runs, a run of steps that cannot be run as asked."""
    if not isinstance(steps, (list, tuple)):
        raise TypeError(f"run_steps takes a list of Step, not {type(steps).__name__}")
    for i, step in enumerate(steps):
        if not isinstance(step, Step):
            raise TypeError(f"step {i} is a {type(step).__name__}, not a Step: {step!r}")
        if step.op not in OPERATIONS:
            raise ValueError(f"step {i}: {step.op!r} is not one of the Target operations a "
                             "run of steps may call (conformance.targets.base.OPERATIONS)")
        for value in (*step.args, *step.kwargs.values()):
            if isinstance(value, Earlier) and not 0 <= value.index < i:
                raise ValueError(f"step {i} ({step.op}) refers to step {value.index}, which "
                                 "does not run before it")


def resolve_earlier(step: Step, results: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The step's arguments with each ``Earlier(i)`` replaced by ``results[i]``."""
    def value(v: Any) -> Any:
        return results[v.index] if isinstance(v, Earlier) else v

    return [value(a) for a in step.args], {k: value(v) for k, v in step.kwargs.items()}
