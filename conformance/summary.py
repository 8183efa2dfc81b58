"""The machine-readable record of one conformance run: what was planned, what each case did.

This module holds the raw record only; judging it (families, verdicts) is
``conformance/report/verdict.py``, which adds its results to the JSON file.
``reports/conformance-summary.json``::

    {"run": {"id": "3f2a...", "started": "2026-12-02T12:00:00+00:00", "ended": ...,
             "exit_status": 0, "command": "pytest cases --target=qemu -n 2", "cwd": ...,
             "kernel_build": "sha256 of the image or config", "complete": true,
             "why_incomplete": ""},
     "target": "qemu", "kernel": "6.1.0 ...",
     "exporters": {"heap:system": {"ALLOC-001": "passed", ...}, ...},
     "cases": {"ALLOC-001": {"title": ..., "family": ..., "level": "MUST"}},
     "kinds": {"heap:system": "heap"},
     "planned": {"heap:system": {"ALLOC-001": "selected", "UDMABUF-001": "not applicable",
                                 "KMAP-001": "deselected"}},
     "waived": {"heap:system": {"CMO-002[TO_DEVICE]": {"reason": ..., "waiver": 1}}},
     "unused_waivers": [{"case": ..., "reason": ..., "exporter": ..., "kernel": ..., "index": 0}],
     "messages": {"heap:system": {"CMO-002[TO_DEVICE]": "first line of the failure"}},
     "comparisons": {"heap:system": {"DMACON-001": {"status": "partially", "compared": 3,
                                                    "steps": 5, "why": "..."}}},
     "target_info": {... TargetInfo.to_json() ...},
     "instruments": {"probe": {"present": true, "detail": "..."}, ...},
     "bad_input": {"heap:system": {"inputs": 10000, "mismatches": 0, "categories": {...}}},
     ... and what the verdict module adds: "verdicts", "verdict_reasons", "families",
     "counts", "comparison_counts"}

Outcomes are ``passed``, ``failed``, ``skipped`` or ``error`` (the case could
not be set up or torn down).  A case parametrized beyond the exporter gets a
suffixed id such as ``ALLOC-002[65536]``.  A waived failure keeps the outcome
``failed`` in ``exporters`` (that map is the raw result) and is listed in
``waived``.  ``planned`` is every case the collection saw for the exporter,
also those ``-m``/``-k`` deselected, so a family that did not run is known.
Readers must ignore keys they do not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "skipped", "error")

# When several phases report on one case, the worst wins.
_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}

# Long divergence tables are useful in JUnit; beyond this they are noise.
MESSAGE_LIMIT = 6000

# How the collection saw a case for an exporter (``Summary.planned``).
SELECTED, DESELECTED, NOT_APPLICABLE = "selected", "deselected", "not applicable"


@dataclass
class CaseMeta:
    title: str
    family: str
    level: str

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "family": self.family, "level": self.level}


@dataclass
class RunRecord:
    """Which run a summary belongs to, and whether that run went to its end."""

    id: str = ""
    started: str = ""
    ended: str = ""
    exit_status: int | None = None
    command: str = ""
    cwd: str = ""
    kernel_build: str = ""
    complete: bool = False
    why_incomplete: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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
    run: RunRecord = field(default_factory=RunRecord)
    kinds: dict[str, str] = field(default_factory=dict)
    planned: dict[str, dict[str, str]] = field(default_factory=dict)
    comparisons: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # per exporter: {"model": the model exporter it was compared with, "notes": [...]}
    stand_ins: dict[str, dict[str, Any]] = field(default_factory=dict)
    # issue 11 (bad input at volume): per exporter, BADIN-001's counts (inputs, by
    # category, errno mismatches, invalid inputs accepted, kernel complaints)
    bad_input: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a board farm's run: per board (the part after "@" in an exporter key), its
    # kernel and what the farm calls it (labgrid place, resources, coordinator)
    boards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, exporter: str, case_id: str, outcome: str, message: str = "") -> None:
        if outcome not in _RANK:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        results = self.exporters.setdefault(exporter, {})
        previous = results.get(case_id)
        if previous is None or _RANK[outcome] > _RANK[previous]:
            results[case_id] = outcome
            if message:
                self.messages.setdefault(exporter, {})[case_id] = message[:MESSAGE_LIMIT]

    def plan(self, exporter: str, kind: str, case_id: str, how: str, meta: CaseMeta) -> None:
        """Note a case the collection saw for ``exporter`` (selected or not)."""
        if how not in (SELECTED, DESELECTED, NOT_APPLICABLE):
            raise ValueError(f"unknown plan state {how!r}")
        self.kinds[exporter] = kind
        self.planned.setdefault(exporter, {})[case_id] = how
        self.cases.setdefault(case_id, meta)

    def waive(self, exporter: str, case_id: str, reason: str, waiver: int) -> None:
        """Mark a failed case as waived (``waiver``: the 1-based entry in the waiver file)."""
        self.record(exporter, case_id, "failed")
        self.waived.setdefault(exporter, {})[case_id] = {"reason": reason, "waiver": waiver}

    def is_waived(self, exporter: str, case_id: str) -> bool:
        return (
            case_id in self.waived.get(exporter, {})
            and self.exporters.get(exporter, {}).get(case_id) == "failed"
        )

    def all_exporters(self) -> list[str]:
        """Every exporter with a result or a plan, sorted."""
        return sorted(set(self.exporters) | set(self.planned))

    def instruments(self) -> dict[str, dict[str, Any]]:
        return dict(self.target_info.get("instruments", {}))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per exporter: cases per outcome, and how many of the failed were waived."""
        out: dict[str, dict[str, int]] = {}
        for exporter in self.all_exporters():
            results = self.exporters.get(exporter, {})
            tally = dict.fromkeys(OUTCOMES, 0)
            for outcome in results.values():
                tally[outcome] += 1
            tally["waived"] = sum(1 for c in results if self.is_waived(exporter, c))
            out[exporter] = tally
        return out

    def to_json(self) -> dict[str, Any]:
        """The raw record (without verdicts: ``report.verdict.summary_document`` adds them)."""
        return {
            "run": self.run.to_json(),
            "target": self.target,
            "kernel": self.kernel,
            "exporters": _sorted_nested(self.exporters),
            "cases": {cid: meta.to_json() for cid, meta in sorted(self.cases.items())},
            "kinds": dict(sorted(self.kinds.items())),
            "planned": _sorted_nested(self.planned),
            "waived": _sorted_nested(self.waived),
            "unused_waivers": list(self.unused_waivers),
            "messages": _sorted_nested(self.messages),
            "comparisons": _sorted_nested(self.comparisons),
            "stand_ins": dict(sorted(self.stand_ins.items())),
            "bad_input": dict(sorted(self.bad_input.items())),  # issue 11 (bad input at volume)
            "boards": dict(sorted(self.boards.items())),
            "target_info": self.target_info,
            "instruments": self.instruments(),
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
            run=RunRecord.from_json(dict(data.get("run", {}))),
            kinds=dict(data.get("kinds", {})),
            planned={k: dict(v) for k, v in data.get("planned", {}).items()},
            comparisons={k: dict(v) for k, v in data.get("comparisons", {}).items()},
            stand_ins={k: dict(v) for k, v in data.get("stand_ins", {}).items()},
            bad_input={k: dict(v) for k, v in data.get("bad_input", {}).items()},
            boards={k: dict(v) for k, v in data.get("boards", {}).items()},
        )

    @classmethod
    def load(cls, path: Path) -> Summary:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def write(self, path: Path, judged: dict[str, Any] | None = None) -> Path:
        """Write the record, plus ``judged`` (the verdict module's keys) when given."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({**self.to_json(), **(judged or {})}, indent=2) + "\n")
        tmp.replace(path)
        return path


def _sorted_nested(d: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: dict(sorted(inner.items())) for name, inner in sorted(d.items()) if inner}
