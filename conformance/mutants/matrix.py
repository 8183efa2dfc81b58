"""The kill matrix: ``reports/mutants.json`` and ``reports/mutants.md``.

For each mutant: the cases that killed it, whether a hand-written case of its
own family did (the goal), whether only generated scenarios or only an
instrument (the DMA event log, DMA-API debug) saw it, the cases that could not
count because they fail upstream too, and the time taken.  Equivalent mutants
carry their argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from conformance.mutants.catalogue import CatalogueError
from conformance.mutants.sweep import (
    BUILD_ERROR,
    EQUIVALENT,
    KILLED,
    RUN_ERROR,
    SURVIVED,
    MutantResult,
)

MATRIX_JSON = "mutants.json"
MATRIX_MD = "mutants.md"


@dataclass
class KillMatrix:
    kernel: str
    clean_image: str
    mode: str  # "full" or "ci"
    results: list[MutantResult] = field(default_factory=list)
    seconds: float = 0.0

    def sorted_results(self) -> list[MutantResult]:
        return sorted(self.results, key=lambda r: r.name)

    def totals(self) -> dict[str, int]:
        t = {s: 0 for s in (KILLED, SURVIVED, EQUIVALENT, BUILD_ERROR, RUN_ERROR)}
        for r in self.results:
            t[r.status] += 1
        t["by_own_family"] = sum(r.by_own_family for r in self.results)
        t["only_generated"] = sum(r.only_generated for r in self.results)
        t["instrument_only"] = sum(r.instrument_only for r in self.results
                                   if r.status == KILLED)
        t["mutants"] = len(self.results)
        return t

    def shortfalls(self) -> list[str]:
        """Why the goal does not hold: every non-equivalent mutant killed by its own family."""
        out = []
        for r in self.sorted_results():
            if r.status == EQUIVALENT:
                continue
            if r.status == KILLED and r.by_own_family:
                continue
            if r.status == KILLED:
                fams = sorted({f for f in r.killer_families.values() if f})
                out.append(f"{r.name}: killed only by {', '.join(r.killers[:4])} "
                           f"({', '.join(fams) or 'no family'}), not by a {r.family} case")
            elif r.status == SURVIVED and r.masked:
                cases = sorted({c.split("[", 1)[0] for c in r.masked})
                out.append(f"{r.name}: survived; masked: {', '.join(cases)} fail on the clean "
                           "kernel too, so they cannot kill it there")
            elif r.status == SURVIVED:
                out.append(f"{r.name}: survived (no case of any family failed on it)")
            else:
                out.append(f"{r.name}: {r.status}: {r.error.splitlines()[0] if r.error else ''}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kernel": self.kernel, "clean_image": self.clean_image, "mode": self.mode,
            "seconds": self.seconds, "totals": self.totals(), "goal_met": not self.shortfalls(),
            "shortfalls": self.shortfalls(),
            "mutants": [r.to_json() for r in self.sorted_results()],
        }

    def write(self, reports: Path) -> tuple[Path, Path]:
        reports.mkdir(parents=True, exist_ok=True)
        j = reports / MATRIX_JSON
        j.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        m = reports / MATRIX_MD
        m.write_text(render_markdown(self))
        return j, m


def load_matrix(reports: Path) -> KillMatrix:
    """The last matrix written to ``reports`` (for ``python -m conformance.mutants report``)."""
    path = reports / MATRIX_JSON
    if not path.is_file():
        raise CatalogueError(f"no kill matrix at {path}: run `python -m conformance.mutants sweep`")
    data = json.loads(path.read_text())
    return KillMatrix(kernel=data.get("kernel", ""), clean_image=data.get("clean_image", ""),
                      mode=data.get("mode", "full"), seconds=float(data.get("seconds", 0.0)),
                      results=[MutantResult(**r) for r in data.get("mutants", [])])


def load_results(reports: Path, clean_image: str) -> list[MutantResult]:
    """The results of the last matrix in ``reports``, if it was made on the same clean kernel."""
    path = reports / MATRIX_JSON
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if data.get("clean_image") != clean_image:
        raise CatalogueError(f"{path} was made on another clean kernel "
                             f"({data.get('clean_image')}, now {clean_image}): run the full sweep")
    return [MutantResult(**r) for r in data.get("mutants", [])]


def _killed_by(r: MutantResult) -> str:
    if r.status != KILLED:
        return "–"
    shown = []
    for c in r.killers[:3]:
        fam = r.killer_families.get(c, "")
        shown.append(f"**{c}**" if fam == r.family else c)
    more = len(r.killers) - len(shown)
    return ", ".join(shown) + (f" (+{more})" if more > 0 else "")


def _how(r: MutantResult) -> str:
    if r.status == EQUIVALENT:
        return "equivalent: " + r.equivalent
    if r.status in (BUILD_ERROR, RUN_ERROR):
        return r.error.splitlines()[0][:160] if r.error else ""
    notes = []
    if r.status == KILLED:
        notes.append("own family" if r.by_own_family else "NOT own family")
        if r.only_generated:
            notes.append("only GEN")
        if r.instrument_only:
            notes.append("only the event log / DMA-API debug sees it")
    if r.masked:
        notes.append(f"{len(r.masked)} masked (fail upstream)")
    return "; ".join(notes)


def render_markdown(matrix: KillMatrix) -> str:
    t = matrix.totals()
    lines = [
        f"# Kernel mutant kill matrix ({matrix.mode})",
        "",
        f"Kernel {matrix.kernel} (clean image {matrix.clean_image}); {t['mutants']} mutants: "
        f"{t[KILLED]} killed ({t['by_own_family']} by a case of their own family, "
        f"{t['only_generated']} only by GEN), {t[SURVIVED]} survived, {t[EQUIVALENT]} "
        f"equivalent, {t[BUILD_ERROR]} build errors, {t[RUN_ERROR]} run errors; "
        f"{matrix.seconds:.0f} s in all.",
        "",
        "A case kills a mutant when it passes on the clean kernel and fails on the mutant's; "
        "**bold**: a case of the mutant's own family.",
        "",
        "| mutant | exporter | callback | family | status | killed by | notes | build s | run s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in matrix.sorted_results():
        lines.append(
            f"| {r.name} | {r.exporter} | {r.callback} | {r.family} | {r.status} | "
            f"{_killed_by(r)} | {_how(r)} | {r.build_seconds:.0f}"
            f"{' (cached)' if r.cached_build else ''} | {r.run_seconds:.0f} |"
        )
    short = matrix.shortfalls()
    lines += ["", "## Goal: every non-equivalent mutant killed by a case of its own family", ""]
    lines += [f"- {s}" for s in short] if short else ["Met."]
    lines.append("")
    return "\n".join(lines)
