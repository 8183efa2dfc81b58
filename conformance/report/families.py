"""What of each case family ran for an exporter, and what did not, with the why.

A family "ran in full" for an exporter when each of its MUST cases that binds
the exporter's kind ran to a result (passed, failed, waived) or ended
"not applicable" (an optional capability the exporter may lawfully lack).
A case skipped for any other reason is "not checked" (a missing instrument,
the probe not loaded, an unexplained skip), and a case that never reported
(deselected by ``-m``/``-k``, an interrupted run, a crashed worker) is
"not run".  SHOULD cases are counted the same way but never leave a family
incomplete.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conformance.skips import NOT_APPLICABLE as NA_PREFIX
from conformance.skips import NOT_CHECKED as NC_PREFIX
from conformance.summary import DESELECTED, NOT_APPLICABLE, Summary

LEVELS = ("MUST", "SHOULD")
DESELECTED_WHY = "deselected (-m/-k)"


def level_of(summary: Summary, case_id: str) -> str:
    meta = summary.cases.get(case_id)
    # A case without metadata is judged as binding: safer for certification.
    return meta.level if meta is not None and meta.level in LEVELS else "MUST"


def family_of(summary: Summary, case_id: str) -> str:
    meta = summary.cases.get(case_id)
    return meta.family if meta is not None and meta.family else "other"


@dataclass
class FamilyTally:
    """One family for one exporter.  ``run`` = passed + failed + waived."""

    family: str
    # MUST as soon as one MUST case of it binds the exporter's kind; "" when none binds.
    level: str = ""
    run: int = 0
    passed: int = 0
    failed: int = 0
    waived: int = 0
    error: int = 0
    not_applicable: int = 0
    not_checked: int = 0
    not_run: int = 0
    # "CASE: why" of every not-checked or not-run case, MUST ones first.
    why_not_checked: list[str] = field(default_factory=list)
    why_not_run: list[str] = field(default_factory=list)
    # MUST cases whose gap leaves the family incomplete.
    must_gaps: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.must_gaps

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["complete"] = self.complete
        return out

    @property
    def only_deselected(self) -> bool:
        """Its one gap: -m/-k left it out (said once for all such families)."""
        return not self.not_checked and all(DESELECTED_WHY in w for w in self.why_not_run)

    def gap_line(self) -> str:
        """``kmap_contract (4 not checked: no probe (...): not loaded)``."""
        parts = []
        if self.not_checked:
            first = self.why_not_checked[0].split(": ", 1)[-1] if self.why_not_checked else ""
            parts.append(f"{self.not_checked} not checked: {first}")
        if self.not_run:
            first = self.why_not_run[0].split(": ", 1)[-1] if self.why_not_run else ""
            parts.append(f"{self.not_run} not run: {first}")
        return f"{self.family} ({'; '.join(parts)})"


def skip_kind(message: str) -> tuple[str, str]:
    """``("not applicable"|"not checked", why)`` of a skip message."""
    if message.startswith(NA_PREFIX):
        return "not applicable", message[len(NA_PREFIX):]
    if message.startswith(NC_PREFIX):
        return "not checked", message[len(NC_PREFIX):]
    # An unexplained skip must not make a verdict look complete.
    return "not checked", message or "skipped without a reason"


def family_tallies(summary: Summary, exporter: str) -> dict[str, FamilyTally]:
    results = summary.exporters.get(exporter, {})
    # Without a recorded plan (a summary built by hand), what ran is the plan.
    planned = summary.planned.get(exporter) or dict.fromkeys(results, "selected")
    messages = summary.messages.get(exporter, {})
    tallies: dict[str, FamilyTally] = {}
    for case_id in sorted(set(planned) | set(results)):
        how = planned.get(case_id, "selected")
        family = family_of(summary, case_id)
        t = tallies.setdefault(family, FamilyTally(family))
        must = level_of(summary, case_id) == "MUST"
        if how == NOT_APPLICABLE:
            t.not_applicable += 1
            continue
        t.level = "MUST" if must or t.level == "MUST" else "SHOULD"
        outcome = results.get(case_id)
        if outcome is None:
            t.not_run += 1
            why = DESELECTED_WHY if how == DESELECTED else "no result (the run stopped first)"
            t.why_not_run.append(f"{case_id}: {why}")
            if must:
                t.must_gaps.append(case_id)
        elif outcome == "skipped":
            kind, why = skip_kind(messages.get(case_id, ""))
            if kind == "not applicable":
                t.not_applicable += 1
            else:
                t.not_checked += 1
                t.why_not_checked.append(f"{case_id}: {why.splitlines()[0] if why else why}")
                if must:
                    t.must_gaps.append(case_id)
        elif outcome == "error":
            t.error += 1
        else:
            t.run += 1
            if outcome == "passed":
                t.passed += 1
            elif summary.is_waived(exporter, case_id):
                t.waived += 1
            else:
                t.failed += 1
    return dict(sorted(tallies.items()))
