"""The machine-readable conformance summary written after every run.

``reports/conformance-summary.json``::

    {"target": "qemu", "kernel": "6.1.0 ...",
     "exporters": {"heap:system": {"ALLOC-001": "passed", ...}, ...},
     "cases": {"ALLOC-001": {"title": ..., "family": ..., "level": "MUST"}}}

Outcomes are ``passed``, ``failed``, ``skipped`` or ``error`` (the case could
not be set up or torn down).  A case parametrized beyond the exporter gets a
suffixed id such as ``ALLOC-002[65536]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "skipped", "error")

# When several phases report on one case, the worst wins.
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


@dataclass
class CaseMeta:
    title: str
    family: str
    level: str

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "family": self.family, "level": self.level}


@dataclass
class Summary:
    target: str = ""
    kernel: str = ""
    exporters: dict[str, dict[str, str]] = field(default_factory=dict)
    cases: dict[str, CaseMeta] = field(default_factory=dict)

    def record(self, exporter: str, case_id: str, outcome: str) -> None:
        if outcome not in _RANK:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        results = self.exporters.setdefault(exporter, {})
        previous = results.get(case_id)
        if previous is None or _RANK[outcome] > _RANK[previous]:
            results[case_id] = outcome

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for exporter, results in self.exporters.items():
            tally = dict.fromkeys(OUTCOMES, 0)
            for outcome in results.values():
                tally[outcome] += 1
            out[exporter] = tally
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kernel": self.kernel,
            "exporters": {
                name: dict(sorted(results.items()))
                for name, results in sorted(self.exporters.items())
            },
            "cases": {cid: meta.to_json() for cid, meta in sorted(self.cases.items())},
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path
