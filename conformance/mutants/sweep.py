"""Run the suite on each mutant kernel and decide which cases kill it.

For each exporter the mutants touch, the clean workspace kernel is run first:
its outcomes are the baseline.  A mutant is *killed* by a case that passed on
the clean kernel and fails (or errors) on the mutant's; a case that already
fails upstream can kill nothing, so it is listed as masked instead.  A run
that does not complete (guest did not boot, usage error) decides nothing: the
mutant's status is ``run-error`` with the reason.

Each run is ``pytest cases --target=qemu --kernel IMAGE --kdir KDIR --exporter
EXP`` in its own reports directory (``reports/mutants/<name>/``), so every
kill has its summary, console and messages next to it.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from conformance.errors import SetupError
from conformance.mutants.catalogue import Mutant
from conformance.mutants.workspace import Workspace
from conformance.qemu.kernel import REPO_ROOT, KernelBuild

SUMMARY_JSON = "conformance-summary.json"
# GEN-001 explores a fixed number of sequences instead of a time budget, so that the clean
# and the mutant kernel see the same sequences unless the mutant changes what happens: a
# time budget explores as far as the machine's speed allows, and a known upstream finding
# met in one run and not the other would count as a kill.
GENERATED_ARGS = ("--generated-examples=40", "--generated-budget=600")
GENERATED_PREFIX = "GEN-"

KILLED, SURVIVED, EQUIVALENT, BUILD_ERROR, RUN_ERROR = (
    "killed", "survived", "equivalent", "build-error", "run-error")

# Failure messages whose only evidence is an instrument: the probe's DMA event
# log (a map/unmap/sync call that should have been made) or DMA-API debug.
_INSTRUMENT_EVIDENCE = re.compile(
    r"event log|expected an? (?:sync|map|unmap)_|dma_event|DMA-API|dma-debug|dma_debug",
    re.IGNORECASE)


def _say(msg: str) -> None:
    print(f"[mutants] {msg}", file=sys.stderr, flush=True)


@dataclass
class SuiteRun:
    """One pytest run on one kernel for one exporter."""

    reports: Path
    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)  # case id -> family
    problem: str = ""  # why the run decides nothing; "" when it completed
    seconds: float = 0.0


@dataclass
class MutantResult:
    name: str
    exporter: str
    family: str
    callback: str
    description: str
    status: str
    killers: list[str] = field(default_factory=list)  # hand-written cases first, then GEN
    killer_families: dict[str, str] = field(default_factory=dict)
    by_own_family: bool = False  # a hand-written case of the expected family killed it
    only_generated: bool = False  # killed, but only by generated scenarios
    instrument_only: bool = False  # every kill's evidence is the event log or DMA-API debug
    masked: list[str] = field(default_factory=list)  # failing upstream too: cannot kill
    evidence: dict[str, str] = field(default_factory=dict)  # case -> first line of failure
    seen_by: list[str] = field(default_factory=list)
    equivalent: str = ""
    error: str = ""
    build_seconds: float = 0.0
    run_seconds: float = 0.0
    cached_build: bool = False
    reports: str = ""

    @classmethod
    def of(cls, mutant: Mutant, status: str, **fields: Any) -> MutantResult:
        """A result that carries ``mutant``'s own description."""
        return cls(name=mutant.name, exporter=mutant.exporter, family=mutant.family,
                   callback=mutant.callback, description=mutant.description, status=status,
                   seen_by=list(mutant.seen_by), equivalent=mutant.equivalent, **fields)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _case_base(case_id: str) -> str:
    return case_id.split("[", 1)[0]


def run_suite(build: KernelBuild, exporter: str, reports: Path, *, workers: int = 1,
              pytest_args: Sequence[str] = ()) -> SuiteRun:
    """The cases on ``build`` for ``exporter``; outcomes from the run's summary."""
    reports.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", str(REPO_ROOT / "cases"), "--target=qemu",
            f"--kernel={build.image}", f"--kdir={build.kdir}", f"--exporter={exporter}",
            f"--reports-dir={reports}", "-p", "no:cacheprovider", "-q", "--no-header",
            "-o", "console_output_style=classic", *(["-n", str(workers)] if workers > 1 else []),
            *pytest_args]
    started = time.monotonic()
    with (reports / "pytest.log").open("w") as log:
        log.write("$ " + shlex.join(argv) + "\n")
        log.flush()
        subprocess.run(argv, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    run = SuiteRun(reports=reports, seconds=round(time.monotonic() - started, 1))
    try:
        summary = json.loads((reports / SUMMARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        run.problem = f"no summary from the run ({e}); log: {reports / 'pytest.log'}"
        return run
    record = summary.get("run", {})
    if not record.get("complete"):
        run.problem = (f"the run did not complete: {record.get('why_incomplete') or 'no reason'}"
                       f"; log: {reports / 'pytest.log'}")
    run.outcomes = dict(summary.get("exporters", {}).get(exporter, {}))
    run.messages = dict(summary.get("messages", {}).get(exporter, {}))
    run.families = {cid: meta.get("family", "") for cid, meta in summary.get("cases", {}).items()}
    if not run.outcomes and not run.problem:
        run.problem = f"no case ran on {exporter} (is it in this guest?)"
    return run


def judge(mutant: Mutant, clean: SuiteRun, mutated: SuiteRun) -> MutantResult:
    """Which cases kill ``mutant``: passed on the clean kernel, fail on the mutant's."""
    result = MutantResult.of(mutant, SURVIVED, reports=str(mutated.reports),
                             run_seconds=mutated.seconds)
    if clean.problem or mutated.problem:
        result.status = RUN_ERROR
        result.error = mutated.problem or f"clean kernel: {clean.problem}"
        return result
    families = {**clean.families, **mutated.families}
    bad = ("failed", "error")
    killers = sorted(c for c, o in mutated.outcomes.items()
                     if o in bad and clean.outcomes.get(c) == "passed")
    result.masked = sorted(c for c, o in mutated.outcomes.items()
                           if o in bad and clean.outcomes.get(c) in bad)
    hand = [c for c in killers if not c.startswith(GENERATED_PREFIX)]
    result.killers = hand + [c for c in killers if c.startswith(GENERATED_PREFIX)]
    result.killer_families = {c: families.get(c) or families.get(_case_base(c), "")
                              for c in killers}
    result.evidence = {c: mutated.messages.get(c, "").splitlines()[0][:300]
                       if mutated.messages.get(c) else "" for c in killers}
    if killers:
        result.status = KILLED
        result.by_own_family = any(result.killer_families[c] == mutant.family for c in hand)
        result.only_generated = not hand
        result.instrument_only = all(_INSTRUMENT_EVIDENCE.search(result.evidence[c] or "")
                                     for c in killers)
    elif mutant.equivalent:
        result.status = EQUIVALENT
    return result


@dataclass
class Sweep:
    """A sweep over mutants: builds, the clean baselines, the per-mutant runs."""

    workspace: Workspace
    reports_root: Path
    workers: int = 1
    family_only: bool = False  # run only the mutant's family (the CI subset)
    pytest_args: tuple[str, ...] = ()
    _baselines: dict[str, SuiteRun] = field(default_factory=dict)  # exporter -> clean run
    _families: dict[str, list[str]] = field(default_factory=dict)  # exporter -> families

    def plan(self, mutants: Sequence[Mutant]) -> None:
        """Note every family the mutants of each exporter need, so that in family-only
        mode one clean run per exporter covers all of them."""
        for m in mutants:
            fams = self._families.setdefault(m.exporter, [])
            if m.family not in fams:
                fams.append(m.family)

    def _args_for(self, families: Sequence[str]) -> list[str]:
        args = [*GENERATED_ARGS, *self.pytest_args]  # the user's come later and win
        if self.family_only:
            args += ["-m", " or ".join(families)]
        return args

    def baseline(self, clean: KernelBuild, mutant: Mutant) -> SuiteRun:
        if mutant.family not in self._families.get(mutant.exporter, []):
            self.plan([mutant])
            self._baselines.pop(mutant.exporter, None)
        if mutant.exporter not in self._baselines:
            families = self._families[mutant.exporter]
            where = self.reports_root / "clean" / _safe(mutant.exporter)
            what = f" ({', '.join(families)})" if self.family_only else ""
            _say(f"clean kernel, {mutant.exporter}{what}: running the cases")
            run = run_suite(clean, mutant.exporter, where, workers=self.workers,
                            pytest_args=self._args_for(families))
            _say(f"clean kernel, {mutant.exporter}: {_tally(run)} in {run.seconds:.0f} s"
                 + (f"; {run.problem}" if run.problem else ""))
            self._baselines[mutant.exporter] = run
        return self._baselines[mutant.exporter]

    def run(self, mutant: Mutant) -> MutantResult:
        started = time.monotonic()
        try:
            clean = self.workspace.clean()
            built = self.workspace.build(mutant)
        except SetupError as e:
            return MutantResult.of(mutant, BUILD_ERROR, error=str(e)[-2000:],
                                   build_seconds=round(time.monotonic() - started, 1))
        base = self.baseline(clean, mutant)
        mutated = run_suite(built.kernel, mutant.exporter, self.reports_root / _safe(mutant.name),
                            workers=self.workers, pytest_args=self._args_for([mutant.family]))
        result = judge(mutant, base, mutated)
        result.build_seconds, result.cached_build = built.seconds, built.cached
        return result


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _tally(run: SuiteRun) -> str:
    counts: dict[str, int] = {}
    for o in run.outcomes.values():
        counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no results"
