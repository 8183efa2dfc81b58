"""The certification summary as Markdown: the run, verdicts, families, then every case."""

from __future__ import annotations

from conformance.report.verdict import (
    LEVELS,
    Verdict,
    comparison_counts,
    level_of,
    run_problem,
    verdicts,
)
from conformance.summary import Summary

_ICON = {"passed": "pass", "failed": "FAIL", "skipped": "skip", "error": "ERROR"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run_lines(summary: Summary) -> list[str]:
    run = summary.run
    problem = run_problem(summary)
    lines = [
        f"- run: `{run.id or 'unknown'}`, {run.started or '?'} to {run.ended or '?'} (UTC), "
        f"pytest exit status {run.exit_status}",
        f"- command: `{run.command}`" if run.command else "- command: unknown",
        f"- target: `{summary.target}`",
        f"- kernel: `{summary.kernel}`",
    ]
    if run.kernel_build:
        lines.append(f"- kernel build: `{run.kernel_build}`")
    for key in ("qemu_version", "qemu_arch"):
        value = summary.target_info.get("extra", {}).get(key)
        if value:
            lines.append(f"- {key.replace('_', ' ')}: `{value}`")
    if summary.boards:
        # A farm's run: each exporter's verdict is per board (exporter@board).
        lines += ["", "| board | kernel | farm | resources |", "|---|---|---|---|"]
        for name, b in sorted(summary.boards.items()):
            farm = b.get("labgrid_coordinator", "")
            farm = f"labgrid {farm}" if farm else b.get("board", "")
            lines.append(f"| `{name}` | `{b.get('kernel', '')}` | {_cell(farm)} | "
                         f"{_cell(b.get('labgrid_resources', ''))} |")
    if problem:
        lines += ["", f"**No valid verdict: {_cell(problem)}**"]
    return lines


def _instrument_lines(summary: Summary) -> list[str]:
    instruments = summary.instruments()
    if not instruments:
        return []
    lines = ["", "## Instruments", "", "| instrument | present | detail |", "|---|---|---|"]
    for name, inst in sorted(instruments.items()):
        present = "yes" if inst.get("present") else "**no**"
        lines.append(f"| `{name}` | {present} | {_cell(str(inst.get('detail', '')))} |")
    return lines


def _family_lines(summary: Summary, v: Verdict) -> list[str]:
    if not v.families:
        return []
    lines = [
        "| family | level | run | failed | waived | error | not applicable | not checked "
        "| not run | complete |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in v.families.values():
        done = "yes" if t.complete else "**no**"
        lines.append(
            f"| {t.family} | {t.level or 'n/a'} | {t.run} | {t.failed} | {t.waived} | {t.error} "
            f"| {t.not_applicable} | {t.not_checked} | {t.not_run} | {done} |"
        )
    whys = [w for t in v.families.values() for w in (*t.why_not_checked, *t.why_not_run)]
    if whys:
        lines += ["", "Not checked or not run:", ""]
        lines += [f"- `{w.split(': ', 1)[0]}`: {_cell(w.split(': ', 1)[-1])}" for w in whys]
    cmp = comparison_counts(summary, v.exporter)
    stand_in = summary.stand_ins.get(v.exporter)
    against = f" (`{stand_in['model']}`)" if stand_in else ""
    lines += ["", f"Comparison with the reference model{against}: {cmp['fully']} case(s) fully, "
              f"{cmp['partially']} partially, {cmp['not compared']} not compared.", ""]
    lines += [f"- note: {_cell(n)}" for n in (stand_in or {}).get("notes", [])]
    return lines


def render_markdown(summary: Summary) -> str:
    lines = ["# dma-buf conformance summary", "", *_run_lines(summary), *_instrument_lines(summary)]
    lines += [
        "", "## Verdicts", "",
        "| exporter | verdict | passed | failed | waived | skipped | error |",
        "|---|---|---|---|---|---|---|",
    ]
    counts = summary.counts()
    all_verdicts = verdicts(summary)
    for v in all_verdicts:
        c = counts[v.exporter]
        lines.append(
            f"| `{v.exporter}` | **{v.verdict}** | {c['passed']} | {c['failed'] - c['waived']} | "
            f"{c['waived']} | {c['skipped']} | {c['error']} |"
        )
    if not all_verdicts:
        lines.append("| (none) | no exporter was judged | | | | | |")
    lines.append("")
    for v in all_verdicts:
        lines.append(f"- {_cell(v.line())}")
    for v in all_verdicts:
        lines += ["", f"## {v.exporter}: {v.verdict}", "", *_family_lines(summary, v)]
        lines += _bad_input_lines(summary, v.exporter)  # issue 11 (bad input at volume)
        results = summary.exporters.get(v.exporter, {})
        for level in LEVELS:
            ids = [c for c in sorted(results) if level_of(summary, c) == level]
            if not ids:
                continue
            lines += [f"### {level} ({len(ids)} cases)", "", "| case | outcome | title |",
                      "|---|---|---|"]
            for case_id in ids:
                lines.append(_case_row(summary, v.exporter, case_id))
            lines.append("")
    if summary.unused_waivers:
        lines += ["## Unused waivers", "",
                  "These waivers matched no failed case in this run; remove them or check "
                  "their scope.", ""]
        for w in summary.unused_waivers:
            lines.append(
                f"- #{w['index'] + 1} `{w['case']}` (exporter `{w['exporter']}`, kernel "
                f"`{w['kernel']}`): {_cell(w['reason'])}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _case_row(summary: Summary, exporter: str, case_id: str) -> str:
    outcome = summary.exporters[exporter][case_id]
    shown = _ICON[outcome]
    waiver = summary.waived.get(exporter, {}).get(case_id)
    if waiver is not None and outcome == "failed":
        shown = f"waived (#{waiver['waiver']}: {waiver['reason']})"
    meta = summary.cases.get(case_id)
    title = meta.title if meta else ""
    message = summary.messages.get(exporter, {}).get(case_id, "")
    if message and outcome != "passed":
        title += f" — {message.splitlines()[0][:200]}"
    comparison = summary.comparisons.get(exporter, {}).get(case_id)
    if comparison and comparison.get("status") == "partially":
        title += (f" (compared up to step {comparison['compared']} of {comparison['steps']}: "
                  f"{comparison.get('why', '')})")
    return f"| `{case_id}` | {_cell(shown)} | {_cell(title)} |"


# -- issue 11 (bad input at volume): BADIN-001's counts for one exporter -------------------
def _bad_input_lines(summary: Summary, exporter: str) -> list[str]:
    b = summary.bad_input.get(exporter)
    if not b:
        return []
    lines = [
        f"Bad input (BADIN-001, seed {b.get('seed')}, against `{b.get('model')}`): "
        f"{b.get('inputs', 0)} inputs in {b.get('seconds', 0)} s, {b.get('mismatches', 0)} "
        f"errno mismatch(es), {b.get('accepted_invalid', 0)} invalid input(s) accepted, "
        f"{b.get('warnings', 0)} kernel warning(s), {b.get('dma_api_errors', 0)} DMA-API "
        "debug error(s).",
        "",
        "| category | inputs | mismatches | invalid accepted | batches with complaints |",
        "|---|---|---|---|---|",
    ]
    for name, c in sorted(b.get("categories", {}).items()):
        lines.append(f"| {name} | {c.get('inputs', 0)} | {c.get('mismatches', 0)} "
                     f"| {c.get('accepted_invalid', 0)} | {c.get('complaints', 0)} |")
    first = b.get("first_mismatches", [])
    if first:
        lines += ["", "First mismatches:", ""]
        lines += [f"- `{_cell(m)[:300]}`" for m in first[:10]]
    return lines + [""]
