"""What GEN-001's exploration found: the shortest reproducer per class, and the time it took.

The state machine offers every failing sequence it runs to ``Findings``,
which keeps the shortest per class.  That is the reproducer reported, whether
hypothesis finished shrinking or the shrink budget stopped it first: the
report never depends on what hypothesis raised at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# A run that has found this many classes stops exploring: what hides behind
# that many bugs is for the next run, once some are fixed.
MAX_CLASSES = 8


class Program:
    """The calls of one sequence, as the body of a pytest case."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._counts: dict[str, int] = {}

    def new_name(self, prefix: str) -> str:
        """``b1``, ``m1``, ``a1``, ``v1``...: what a handle is called in the reproducer."""
        n = self._counts.get(prefix, 0) + 1
        self._counts[prefix] = n
        return f"{prefix}{n}"

    @property
    def calls(self) -> int:
        return sum(1 for line in self.lines if "target." in line and not line.startswith("#"))

    def render(self, case_id: str) -> str:
        body = "\n".join(f"    {line}" for line in self.lines) or "    pass"
        return (
            "import pytest\n\n"
            "from conformance.errors import *  # noqa: F403\n"
            "from conformance.patterns import pattern\n"
            "from conformance.records import Direction, SyncFlag\n\n\n"
            f'@pytest.mark.case("{case_id}")\n'
            "def test_generated_reproducer(target, exporter):\n"
            '    """Shrunk by GEN-001: the marked call is where the exporter diverged."""\n'
            f"{body}\n"
        )


@dataclass
class Finding:
    """The shortest sequence seen so far that shows one class."""

    name: str  # the class, e.g. "sync-dma-calls"
    summary: str  # one line: what differed
    detail: str  # the step table of the comparison with the model
    program: Program
    found_after: float  # seconds of exploration before the class first showed
    sequences: int  # sequences explored before it first showed
    shrink_seconds: float = 0.0
    shrunk: bool = True  # False: the shrink budget ran out first
    offers: int = 1  # failing sequences of this class seen (the first and its shrinks)

    def message(self, case_id: str) -> str:
        how = (
            f"shrunk in {self.shrink_seconds:.1f} s to {self.program.calls} call(s)"
            if self.shrunk
            else f"shrink budget spent after {self.shrink_seconds:.1f} s: the shortest sequence "
            f"seen has {self.program.calls} call(s)"
        )
        return (
            f"{case_id}: {self.summary}\n"
            f"Found after {self.found_after:.1f} s of exploration ({self.sequences} sequences); "
            f"{how}.\n\n"
            f"Minimal sequence, step by step:\n{self.detail}\n\n"
            f"Ready-to-run reproducer:\n\n{self.program.render(case_id)}"
        )


@dataclass
class Findings:
    """Every class one GEN-001 run found, and where its time went."""

    set_aside: set[str] = field(default_factory=set)  # classes no longer counted as failures
    found: dict[str, Finding] = field(default_factory=dict)
    sequences: int = 0  # sequences explored (not counting the replays of shrinking)
    explore_seconds: float = 0.0
    shrink_seconds: float = 0.0
    # Set while one hypothesis run shrinks: when the first new class showed, and
    # when shrinking must stop.
    failing_since: float | None = None
    shrink_deadline: float | None = None
    shrink_cut: bool = False  # the deadline stopped a run's shrinking
    _run_started: float = field(default=0.0, init=False, repr=False)
    _running: bool = field(default=False, init=False, repr=False)

    def offer(self, name: str, summary: str, detail: str, program: Program,
              shrink_budget: float) -> None:  # fmt: skip
        """A sequence that failed with class ``name``: kept if it is the shortest so far."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            self.shrink_deadline = now + shrink_budget
        known = self.found.get(name)
        if known is None:
            self.found[name] = Finding(
                name, summary, detail, program, self.explore_seconds_at(now), self.sequences
            )
            return
        known.offers += 1
        if program.calls < known.program.calls:
            known.summary, known.detail, known.program = summary, detail, program

    def explore_seconds_at(self, now: float) -> float:
        return self.explore_seconds + (now - self._run_started) if self._running else 0.0

    def shrink_time_left(self) -> bool:
        return self.shrink_deadline is None or time.monotonic() < self.shrink_deadline

    # -- one hypothesis run --------------------------------------------------------------
    def start_run(self) -> None:
        self._run_started = time.monotonic()
        self._running = True
        self.failing_since = self.shrink_deadline = None

    def end_run(self, new: list[str]) -> None:
        """Book the run's time: exploring until its first new class, shrinking after."""
        now = time.monotonic()
        shrinking_from = self.failing_since if self.failing_since is not None else now
        self.explore_seconds += shrinking_from - self._run_started
        spent = now - shrinking_from
        self.shrink_seconds += spent
        cut = self.shrink_deadline is not None and now >= self.shrink_deadline
        for name in new:
            self.found[name].shrink_seconds = spent
            self.found[name].shrunk = not cut
        self.shrink_cut = self.shrink_cut or cut
        self._running = False
        self.set_aside.update(new)

    def new_in_run(self, before: set[str]) -> list[str]:
        return sorted(set(self.found) - before)
