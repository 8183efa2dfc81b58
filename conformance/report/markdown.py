"""The certification summary as Markdown: verdicts first, then every case per exporter."""

from __future__ import annotations

from conformance.report.verdict import LEVELS, level_of, verdicts
from conformance.summary import Summary

_ICON = {"passed": "pass", "failed": "FAIL", "skipped": "skip", "error": "ERROR"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: Summary) -> str:
    lines = [
        "# dma-buf conformance summary",
        "",
        f"- target: `{summary.target}`",
        f"- kernel: `{summary.kernel}`",
    ]
    for key in ("kernel_config_hash", "qemu_version", "qemu_arch"):
        value = summary.target_info.get("extra", {}).get(key)
        if value:
            lines.append(f"- {key.replace('_', ' ')}: `{value}`")
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
    lines.append("")
    for v in all_verdicts:
        lines.append(f"- {_cell(v.line())}")
    for v in all_verdicts:
        lines += ["", f"## {v.exporter}: {v.verdict}", ""]
        results = summary.exporters[v.exporter]
        for level in LEVELS:
            ids = [c for c in sorted(results) if level_of(summary, c) == level]
            if not ids:
                continue
            lines += [f"### {level} ({len(ids)} cases)", "", "| case | outcome | title |",
                      "|---|---|---|"]
            for case_id in ids:
                outcome = _ICON[results[case_id]]
                waiver = summary.waived.get(v.exporter, {}).get(case_id)
                if waiver is not None and results[case_id] == "failed":
                    outcome = f"waived (#{waiver['waiver']}: {waiver['reason']})"
                meta = summary.cases.get(case_id)
                title = meta.title if meta else ""
                message = summary.messages.get(v.exporter, {}).get(case_id, "")
                if message and results[case_id] != "passed":
                    title += f" — {message.splitlines()[0][:200]}"
                lines.append(f"| `{case_id}` | {_cell(outcome)} | {_cell(title)} |")
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
