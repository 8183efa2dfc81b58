"""The certification verdict of each exporter, from the summary.

* ``not conformant``: a MUST case failed without a waiver, a MUST case could
  not be judged (``error``), or no case passed at all (nothing was shown).
* ``conformant with waivers``: otherwise, when any failure was waived.
* ``conformant``: otherwise.  SHOULD failures do not change the verdict; they
  are listed next to it as advisories.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.summary import Summary

CONFORMANT = "conformant"
WITH_WAIVERS = "conformant with waivers"
NOT_CONFORMANT = "not conformant"
LEVELS = ("MUST", "SHOULD")


@dataclass
class Verdict:
    exporter: str
    verdict: str
    why: str
    failed_must: list[str] = field(default_factory=list)
    error_must: list[str] = field(default_factory=list)
    failed_should: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.exporter}: {self.verdict} ({self.why})"


def level_of(summary: Summary, case_id: str) -> str:
    meta = summary.cases.get(case_id)
    # A case without metadata is judged as binding: safer for certification.
    return meta.level if meta is not None and meta.level in LEVELS else "MUST"


def verdict_for(summary: Summary, exporter: str) -> Verdict:
    results = summary.exporters.get(exporter, {})
    v = Verdict(exporter, CONFORMANT, "")
    for case_id, outcome in sorted(results.items()):
        must = level_of(summary, case_id) == "MUST"
        if outcome == "failed" and summary.is_waived(exporter, case_id):
            v.waived.append(case_id)
        elif outcome == "failed":
            (v.failed_must if must else v.failed_should).append(case_id)
        elif outcome == "error" and must:
            v.error_must.append(case_id)
    passed = sum(1 for o in results.values() if o == "passed")
    if v.failed_must or v.error_must:
        v.verdict = NOT_CONFORMANT
        parts = []
        if v.failed_must:
            parts.append(f"{len(v.failed_must)} MUST case(s) failed: {_few(v.failed_must)}")
        if v.error_must:
            parts.append(f"{len(v.error_must)} MUST case(s) in error: {_few(v.error_must)}")
        v.why = "; ".join(parts)
    elif passed == 0:
        v.verdict = NOT_CONFORMANT
        v.why = "no case passed, so nothing was shown"
    elif v.waived:
        v.verdict = WITH_WAIVERS
        v.why = f"{passed} passed, {len(v.waived)} waived: {_few(v.waived)}"
    else:
        v.why = f"{passed} passed"
    if v.failed_should:
        v.why += f"; {len(v.failed_should)} SHOULD advisory failure(s): {_few(v.failed_should)}"
    return v


def verdicts(summary: Summary) -> list[Verdict]:
    return [verdict_for(summary, name) for name in sorted(summary.exporters)]


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
