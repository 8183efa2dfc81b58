"""The certification verdict of each exporter, and whether the run can be judged at all.

This module owns verdicts; ``conformance/summary.py`` only records.  In order:

* ``not conformant``: a MUST case failed without a waiver.  A failure is a
  finding whatever else did not run.
* ``error``: no MUST failure, but a MUST case ended in error: its setup or
  teardown broke (the guest died, a fixture raised), so the run could not
  judge the exporter there.  Rerun, and look at the error first.
* ``incomplete``: no MUST failure or error, but a MUST family that binds the
  exporter's kind did not run in full (``conformance/report/families.py``):
  a case not checked (missing instrument, no probe) or not run (deselected,
  stopped run), or no MUST case ran at all.
* ``conformant with waivers``: otherwise, when a failure was waived.
* ``conformant``: otherwise.  SHOULD failures never change the verdict; they
  are listed next to it as advisories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.lockstep import FULLY, NOT_COMPARED, PARTIALLY
from conformance.report.families import (
    LEVELS,
    FamilyTally,
    family_tallies,
    level_of,
)
from conformance.summary import Summary

CONFORMANT = "conformant"
WITH_WAIVERS = "conformant with waivers"
NOT_CONFORMANT = "not conformant"
INCOMPLETE = "incomplete"
ERROR = "error"
VERDICTS = (CONFORMANT, WITH_WAIVERS, NOT_CONFORMANT, INCOMPLETE, ERROR)

__all__ = [
    "CONFORMANT", "WITH_WAIVERS", "NOT_CONFORMANT", "INCOMPLETE", "ERROR", "LEVELS",
    "Verdict", "level_of", "verdict_for", "verdicts", "run_problem", "exit_status",
    "status_of",
    "summary_document",
]


@dataclass
class Verdict:
    exporter: str
    verdict: str
    why: str
    failed_must: list[str] = field(default_factory=list)
    error_must: list[str] = field(default_factory=list)
    failed_should: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    incomplete_families: list[str] = field(default_factory=list)
    families: dict[str, FamilyTally] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.exporter}: {self.verdict} ({self.why})"


def verdict_for(summary: Summary, exporter: str) -> Verdict:
    results = summary.exporters.get(exporter, {})
    v = Verdict(exporter, CONFORMANT, "", families=family_tallies(summary, exporter))
    for case_id, outcome in sorted(results.items()):
        must = level_of(summary, case_id) == "MUST"
        if outcome == "failed" and summary.is_waived(exporter, case_id):
            v.waived.append(case_id)
        elif outcome == "failed":
            (v.failed_must if must else v.failed_should).append(case_id)
        elif outcome == "error" and must:
            v.error_must.append(case_id)
    gaps = [t for t in v.families.values() if t.level == "MUST" and not t.complete]
    v.incomplete_families = [t.family for t in gaps]
    ran_must = sum(
        1 for c, o in results.items()
        if o in ("passed", "failed") and level_of(summary, c) == "MUST"
    )
    passed = sum(1 for o in results.values() if o == "passed")
    if v.failed_must:
        v.verdict = NOT_CONFORMANT
        v.why = f"{len(v.failed_must)} MUST case(s) failed: {_few(v.failed_must)}"
        if v.error_must:
            v.why += f"; {len(v.error_must)} in error: {_few(v.error_must)}"
    elif v.error_must:
        v.verdict = ERROR
        v.why = f"{len(v.error_must)} MUST case(s) could not be judged: {_few(v.error_must)}"
    elif gaps:
        v.verdict = INCOMPLETE
        deselected = [t.family for t in gaps if t.only_deselected]
        lines = [t.gap_line() for t in gaps if not t.only_deselected]
        if deselected:
            lines.append(f"{', '.join(deselected)} (deselected by -m/-k)")
        v.why = "MUST families not run in full: " + "; ".join(lines)
    elif ran_must == 0:
        v.verdict = INCOMPLETE
        v.why = "no MUST case ran, so nothing was shown"
    elif v.waived:
        v.verdict = WITH_WAIVERS
        v.why = f"{passed} passed, {len(v.waived)} waived: {_few(v.waived)}"
    else:
        v.why = f"{passed} passed"
    if v.failed_should:
        v.why += f"; {len(v.failed_should)} SHOULD advisory failure(s): {_few(v.failed_should)}"
    return v


def verdicts(summary: Summary) -> list[Verdict]:
    return [verdict_for(summary, name) for name in summary.all_exporters()]


def run_problem(summary: Summary) -> str:
    """Why the summary's run cannot be judged; "" when it ran to its end."""
    run = summary.run
    if not run.id:
        return "the summary has no run record (an older version wrote it): run the cases again"
    if not run.complete:
        status = "" if run.exit_status is None else f", pytest exit status {run.exit_status}"
        return (
            f"run {run.id} (started {run.started}{status}) did not complete: "
            f"{run.why_incomplete or 'no reason recorded'}"
        )
    if not summary.all_exporters():
        return f"run {run.id} judged no exporter"
    return ""


def exit_status(all_verdicts: list[Verdict]) -> int:
    """0: every exporter conformant; 1: one is not; 2: no valid verdict."""
    return status_of([v.verdict for v in all_verdicts])


def status_of(verdict_names: list[str]) -> int:
    """``exit_status`` from the verdict strings a summary carries (``verdicts``)."""
    if any(v == NOT_CONFORMANT for v in verdict_names):
        return 1
    if not verdict_names or any(v not in (CONFORMANT, WITH_WAIVERS) for v in verdict_names):
        return 2
    return 0


def comparison_counts(summary: Summary, exporter: str) -> dict[str, int]:
    tally = dict.fromkeys((FULLY, PARTIALLY, NOT_COMPARED), 0)
    results = summary.exporters.get(exporter, {})
    for case_id, comparison in summary.comparisons.get(exporter, {}).items():
        if results.get(case_id) in ("passed", "failed"):
            tally[str(comparison.get("status", NOT_COMPARED))] += 1
    return tally


def summary_document(summary: Summary) -> dict[str, Any]:
    """The judged keys ``conformance-summary.json`` carries next to the raw record."""
    judged = verdicts(summary)
    return {
        "verdicts": {v.exporter: v.verdict for v in judged},
        "verdict_reasons": {v.exporter: v.why for v in judged},
        "families": {
            v.exporter: {name: t.to_json() for name, t in v.families.items()} for v in judged
        },
        "counts": dict(sorted(summary.counts().items())),
        "comparison_counts": {e: comparison_counts(summary, e) for e in summary.all_exporters()},
    }


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
