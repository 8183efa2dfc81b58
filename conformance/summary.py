"""The machine-readable conformance summary written after every run.

``reports/conformance-summary.json``::

    {"target": "qemu", "kernel": "6.1.0 ...",
     "exporters": {"heap:system": {"ALLOC-001": "passed", ...}, ...},
     "cases": {"ALLOC-001": {"title": ..., "family": ..., "level": "MUST"}},
     "waived": {"heap:system": {"CMO-002[TO_DEVICE]": {"reason": ..., "waiver": 1}}},
     "unused_waivers": [{"case": ..., "reason": ..., "exporter": ..., "kernel": ..., "index": 0}],
     "messages": {"heap:system": {"CMO-002[TO_DEVICE]": "first line of the failure"}},
     "verdicts": {"heap:system": "conformant with waivers"},
     "counts": {"heap:system": {"passed": 90, "failed": 1, "skipped": 1, "error": 0, "waived": 1}},
     "target_info": {... TargetInfo.to_json() ...}}

Outcomes are ``passed``, ``failed``, ``skipped`` or ``error`` (the case could
not be set up or torn down).  A case parametrized beyond the exporter gets a
suffixed id such as ``ALLOC-002[65536]``.  A waived failure keeps the outcome
``failed`` in ``exporters`` (that map is the raw result) and is listed in
``waived`` with the waiver's reason and its 1-based position in the waiver
file; pytest itself shows it as ``xfailed``.  Everything after ``cases`` is
an addition to the foundation schema; readers must ignore keys they do not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "skipped", "error")

# When several phases report on one case, the worst wins.
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}

# Long divergence tables are useful in JUnit; beyond this they are noise.
MESSAGE_LIMIT = 6000


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
    waived: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    unused_waivers: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, dict[str, str]] = field(default_factory=dict)
    target_info: dict[str, Any] = field(default_factory=dict)

    def record(self, exporter: str, case_id: str, outcome: str, message: str = "") -> None:
        if outcome not in _RANK:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        results = self.exporters.setdefault(exporter, {})
        previous = results.get(case_id)
        if previous is None or _RANK[outcome] > _RANK[previous]:
            results[case_id] = outcome
            if message:
                self.messages.setdefault(exporter, {})[case_id] = message[:MESSAGE_LIMIT]

    def waive(self, exporter: str, case_id: str, reason: str, waiver: int) -> None:
        """Mark a failed case as waived (``waiver``: the 1-based entry in the waiver file)."""
        self.record(exporter, case_id, "failed")
        self.waived.setdefault(exporter, {})[case_id] = {"reason": reason, "waiver": waiver}

    def is_waived(self, exporter: str, case_id: str) -> bool:
        return (
            case_id in self.waived.get(exporter, {})
            and self.exporters.get(exporter, {}).get(case_id) == "failed"
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Per exporter: cases per outcome, and how many of the failed were waived."""
        out: dict[str, dict[str, int]] = {}
        for exporter, results in self.exporters.items():
            tally = dict.fromkeys(OUTCOMES, 0)
            for outcome in results.values():
                tally[outcome] += 1
            tally["waived"] = sum(1 for c in results if self.is_waived(exporter, c))
            out[exporter] = tally
        return out

    def to_json(self) -> dict[str, Any]:
        from conformance.report.verdict import verdicts

        return {
            "target": self.target,
            "kernel": self.kernel,
            "exporters": {
                name: dict(sorted(results.items()))
                for name, results in sorted(self.exporters.items())
            },
            "cases": {cid: meta.to_json() for cid, meta in sorted(self.cases.items())},
            "waived": {
                name: dict(sorted(w.items())) for name, w in sorted(self.waived.items()) if w
            },
            "unused_waivers": list(self.unused_waivers),
            "messages": {
                name: dict(sorted(m.items())) for name, m in sorted(self.messages.items()) if m
            },
            "verdicts": {v.exporter: v.verdict for v in verdicts(self)},
            "counts": dict(sorted(self.counts().items())),
            "target_info": self.target_info,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        return cls(
            target=data.get("target", ""),
            kernel=data.get("kernel", ""),
            exporters={k: dict(v) for k, v in data.get("exporters", {}).items()},
            cases={k: CaseMeta(**v) for k, v in data.get("cases", {}).items()},
            waived={k: dict(v) for k, v in data.get("waived", {}).items()},
            unused_waivers=list(data.get("unused_waivers", [])),
            messages={k: dict(v) for k, v in data.get("messages", {}).items()},
            target_info=dict(data.get("target_info", {})),
        )

    @classmethod
    def load(cls, path: Path) -> Summary:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path
