"""Run the conformance cases on several kernels and put the results side by side.

::

    python -m conformance.matrix                       # 5.10, 6.1, 6.12 from /usr/src
    python -m conformance.matrix --kernel-src A --kernel-src B -- -m sync
    python -m conformance.matrix --table-only          # redo the tables from reports/matrix/

For each kernel source it builds (or reuses) the test kernel, runs
``pytest cases --target=qemu -n N --kernel-src SRC`` with its own reports
directory, ``reports/matrix/<release>/`` (summary JSON/Markdown, JUnit, guest
consoles), then writes ``reports/matrix.json`` and ``reports/matrix.md``: the
outcome of every case on every exporter on every kernel, and for each kernel
what changed against the baseline (6.1 by default): a failure that is *fixed*,
*still there* or *new*.

Exit status: 0 when every exporter on every kernel is conformant, 1 when one is
not, 2 when a kernel has no valid verdict (build failed, guest did not boot,
run incomplete: the reason is printed).  The same 0/1/2 as
``python -m conformance.report verdict``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from conformance.errors import SetupError
from conformance.qemu.kernel import REPO_ROOT, ensure_kernel
from conformance.report.verdict import status_of

DEFAULT_SOURCES = (
    Path("/usr/src/linux-source-5.10.tar.xz"),
    Path("/usr/src/linux-source-6.1.tar.xz"),
    Path("/usr/src/linux-source-6.12.tar.xz"),
)
DEFAULT_BASELINE = "6.1"
SUMMARY_JSON = "conformance-summary.json"
RUN_RECORD = "matrix-run.json"  # what this module knows about one kernel's run

# A change against the baseline, per (case, exporter).
FIXED = "fixed"  # failed on the baseline, passes here
STILL = "still there"  # fails on both
NEW = "new"  # fails here, passed on the baseline or has no result there
NOT_CHECKED = "not checked here"  # failed on the baseline, did not pass or fail here


@dataclass
class KernelRun:
    """One kernel's run: where its reports are and how it ended."""

    source: str
    release: str = ""
    series: str = ""  # "6.1": what --baseline names
    reports: str = ""
    image_hash: str = ""
    exit_status: Optional[int] = None
    seconds: float = 0.0
    error: str = ""  # why there is no valid verdict for this kernel, if so
    summary: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "release": self.release, "series": self.series,
                "reports": self.reports, "image_hash": self.image_hash,
                "exit_status": self.exit_status, "seconds": self.seconds, "error": self.error}


def series_of(release: str) -> str:
    parts = release.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else release


def _say(msg: str) -> None:
    print(f"[matrix] {msg}", file=sys.stderr, flush=True)


# -- running ---------------------------------------------------------------------


def run_kernel(source: Path, reports_root: Path, workers: int,
               pytest_args: Sequence[str]) -> KernelRun:
    """Build the kernel, run the cases on it, load its summary."""
    run = KernelRun(source=str(source))
    started = time.monotonic()
    try:
        build = ensure_kernel(source)
    except SetupError as e:
        run.error = f"the kernel from {source} could not be built: {e}"
        run.seconds = round(time.monotonic() - started, 1)
        return run
    run.release, run.image_hash = build.release, build.image_hash
    run.series = series_of(build.release)
    reports = reports_root / build.release
    run.reports = str(reports)
    argv = [sys.executable, "-m", "pytest", str(REPO_ROOT / "cases"), "--target=qemu",
            "-n", str(workers), "--kernel-src", str(source), f"--reports-dir={reports}",
            "-p", "no:cacheprovider", "-q", *pytest_args]
    _say(f"{build.release}: {shlex.join(argv)}")
    run.exit_status = subprocess.call(argv, cwd=REPO_ROOT)
    run.seconds = round(time.monotonic() - started, 1)
    _load(run)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / RUN_RECORD).write_text(json.dumps(run.to_json(), indent=1) + "\n")
    _say(f"{build.release}: pytest exit {run.exit_status} in {run.seconds:.0f} s"
         + (f"; {run.error}" if run.error else ""))
    return run


def _load(run: KernelRun) -> None:
    """Read the run's summary; a missing or incomplete one is this kernel's error."""
    path = Path(run.reports) / SUMMARY_JSON
    try:
        run.summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        run.error = run.error or f"no summary at {path} ({e})"
        return
    record = run.summary.get("run", {})
    if record.get("complete") is False:
        run.error = run.error or f"run incomplete: {record.get('why_incomplete') or 'no reason'}"
    if not run.summary.get("exporters"):
        run.error = run.error or "the run recorded no results"


def load_existing(reports_root: Path) -> list[KernelRun]:
    """The kernels already run into ``reports_root`` (for ``--table-only``)."""
    runs = []
    for record in sorted(reports_root.glob(f"*/{RUN_RECORD}")):
        data = json.loads(record.read_text())
        run = KernelRun(**{k: data.get(k) for k in ("source", "release", "series", "reports",
                                                    "image_hash", "exit_status", "seconds")},
                        error=data.get("error", ""))
        run.error = ""  # judged again from the summary as it is now
        _load(run)
        runs.append(run)
    return sorted(runs, key=lambda r: _version_key(r.release))


def _version_key(release: str) -> tuple[int, ...]:
    out = []
    for part in release.replace("-", ".").split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


# -- the side-by-side table ---------------------------------------------------------


def _outcomes(run: KernelRun) -> dict[str, dict[str, str]]:
    return {exp: dict(cases) for exp, cases in run.summary.get("exporters", {}).items()}


def change(baseline: Optional[str], here: Optional[str]) -> str:
    """What a kernel's outcome is against the baseline's; "" when nothing to say."""
    failed_there = baseline in ("failed", "error")
    failed_here = here in ("failed", "error")
    if failed_there and failed_here:
        return STILL
    if failed_here:
        return NEW
    if failed_there and here == "passed":
        return FIXED
    if failed_there:
        return NOT_CHECKED
    return ""


def build_matrix(runs: Sequence[KernelRun], baseline: str) -> dict[str, Any]:
    """The JSON document: per kernel run facts, counts, and every (case, exporter) row."""
    kernels = [r.release or r.source for r in runs]
    base = next((r for r in runs if r.series == baseline), None)
    table: dict[str, dict[str, dict[str, str]]] = {}  # exporter -> case -> kernel -> outcome
    counts: dict[str, dict[str, dict[str, int]]] = {}  # kernel -> exporter -> outcome -> n
    for run, kernel in zip(runs, kernels):
        for exporter, cases in _outcomes(run).items():
            tally = counts.setdefault(kernel, {}).setdefault(
                exporter, {"passed": 0, "failed": 0, "skipped": 0, "error": 0})
            for case, outcome in cases.items():
                table.setdefault(exporter, {}).setdefault(case, {})[kernel] = outcome
                tally[outcome] = tally.get(outcome, 0) + 1
    changes: dict[str, dict[str, dict[str, str]]] = {}  # kernel -> "exp case" -> change
    if base is not None:
        base_kernel = base.release
        for run, kernel in zip(runs, kernels):
            if run is base:
                continue
            for exporter, cases in sorted(table.items()):
                for case, by_kernel in sorted(cases.items()):
                    c = change(by_kernel.get(base_kernel), by_kernel.get(kernel))
                    if c:
                        changes.setdefault(kernel, {})[f"{exporter} {case}"] = c
    return {
        "baseline": base.release if base else None,
        "kernels": [r.to_json() for r in runs],
        "verdicts": {k: r.summary.get("verdicts", {}) for r, k in zip(runs, kernels)},
        "counts": counts,
        "changes": changes,
        "results": {exp: dict(sorted(cases.items())) for exp, cases in sorted(table.items())},
        "messages": {k: r.summary.get("messages", {}) for r, k in zip(runs, kernels)},
    }


def _cell(outcome: Optional[str]) -> str:
    return {"passed": "pass", "failed": "**FAIL**", "error": "**ERROR**",
            "skipped": "skip", None: "–"}.get(outcome, str(outcome))


def render_markdown(doc: dict[str, Any]) -> str:
    kernels = [k["release"] or k["source"] for k in doc["kernels"]]
    base = doc["baseline"]
    lines = ["# Kernel matrix", ""]
    lines += ["| kernel | source | image | pytest exit | time | verdicts |",
              "|---|---|---|---|---|---|"]
    for k, kernel in zip(doc["kernels"], kernels):
        verdicts = doc["verdicts"].get(kernel, {})
        shown = "; ".join(f"{e}: {v}" for e, v in sorted(verdicts.items())) or "–"
        if k["error"]:
            shown = f"no valid verdict: {k['error']}"
        lines.append(f"| {kernel} | `{k['source']}` | `{k['image_hash'] or '–'}` | "
                     f"{k['exit_status']} | {k['seconds']:.0f} s | {shown} |")
    exporters = sorted({e for c in doc["counts"].values() for e in c})
    lines += ["", "## Counts (passed / failed / skipped, + errors)", "",
              "| exporter | " + " | ".join(kernels) + " |",
              "|---|" + "---|" * len(kernels)]
    for exporter in exporters:
        cells = []
        for kernel in kernels:
            t = doc["counts"].get(kernel, {}).get(exporter)
            if t is None:
                cells.append("–")
                continue
            cell = f"{t['passed']} / {t['failed']} / {t['skipped']}"
            cells.append(cell + (f" + {t['error']}E" if t.get("error") else ""))
        lines.append(f"| {exporter} | " + " | ".join(cells) + " |")
    if base and doc["changes"]:
        lines += ["", f"## Against {base} (cases × exporters)", "",
                  f"| kernel | {FIXED} | {STILL} | {NEW} | {NOT_CHECKED} |",
                  "|---|---|---|---|---|"]
        for kernel in kernels:
            if kernel == base:
                continue
            tally = {c: 0 for c in (FIXED, STILL, NEW, NOT_CHECKED)}
            for c in doc["changes"].get(kernel, {}).values():
                tally[c] += 1
            lines.append(f"| {kernel} | " + " | ".join(str(n) for n in tally.values()) + " |")
    lines += ["", "## Every failure, side by side", ""]
    if base:
        lines.append(f"Change columns compare with {base}: fixed, still there, new, "
                     "or not checked here (neither passed nor failed).")
        lines.append("")
    others = [k for k in kernels if k != base]
    head = ["exporter", "case", *kernels, *(f"vs {base} on {k}" for k in others if base)]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for exporter, cases in doc["results"].items():
        for case, by_kernel in cases.items():
            if not any(o in ("failed", "error") for o in by_kernel.values()):
                continue
            row = [exporter, case, *(_cell(by_kernel.get(k)) for k in kernels)]
            if base:
                row += [doc["changes"].get(k, {}).get(f"{exporter} {case}", "") for k in others]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Messages of each failure: `reports/matrix/<kernel>/conformance-summary.md`.",
              ""]
    return "\n".join(lines)


def write_tables(runs: Sequence[KernelRun], out_dir: Path, baseline: str) -> tuple[Path, Path]:
    doc = build_matrix(runs, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "matrix.json", out_dir / "matrix.md"
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(render_markdown(doc))
    return js, md


def exit_status(runs: Sequence[KernelRun]) -> int:
    """2 when some kernel has no valid verdict (it did not build, boot or run in full, or
    the single-run rule of ``report.verdict`` gives it none), else 1 when an exporter is
    not conformant on some kernel, else 0."""
    if not runs or any(r.error for r in runs):
        return 2
    per_kernel = [status_of(list(r.summary.get("verdicts", {}).values())) for r in runs]
    return 2 if 2 in per_kernel else max(per_kernel)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m conformance.matrix",
        description="run the conformance cases on several kernels in QEMU, side by side",
        epilog="arguments after -- go to each pytest run")
    ap.add_argument("--kernel-src", type=Path, action="append", default=None, metavar="PATH",
                    help="a kernel tarball or tree (repeatable; default: the 5.10, 6.1 and "
                         "6.12 Debian tarballs in /usr/src)")
    ap.add_argument("--reports-dir", type=Path, default=REPO_ROOT / "reports",
                    help="matrix.md/.json go here, each kernel's reports under matrix/<release>/")
    ap.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers (guests)")
    ap.add_argument("--baseline", default=DEFAULT_BASELINE,
                    help="the kernel series changes are counted against (default 6.1)")
    ap.add_argument("--table-only", action="store_true",
                    help="do not run; redo the tables from the kernels already in reports")
    args, rest = ap.parse_known_args(argv)
    # pytest's arguments come after "--"; anything else unknown is a typo, not pytest's.
    if rest and rest[0] != "--":
        ap.error(f"unknown arguments {' '.join(rest)} (pytest's go after --)")
    pytest_args = rest[1:]
    reports_root = args.reports_dir / "matrix"
    if args.table_only:
        runs = load_existing(reports_root)
        if not runs:
            print(f"error: no kernel runs under {reports_root}", file=sys.stderr)
            return 2
    else:
        sources = args.kernel_src or list(DEFAULT_SOURCES)
        missing = [s for s in sources if not s.exists()]
        if missing:
            print("error: kernel source not found: " + ", ".join(map(str, missing))
                  + " (qemu/setup-host.sh --with-matrix installs the 5.10, 6.1 and 6.12 "
                  "sources)", file=sys.stderr)
            return 2
        runs = [run_kernel(s, reports_root, args.workers, pytest_args) for s in sources]
        runs.sort(key=lambda r: _version_key(r.release))
    js, md = write_tables(runs, args.reports_dir, args.baseline)
    print(md.read_text())
    status = exit_status(runs)
    for run in runs:
        if run.error:
            print(f"error: {run.release or run.source}: {run.error}", file=sys.stderr)
    print(f"[matrix] {md} and {js}; exit {status}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
