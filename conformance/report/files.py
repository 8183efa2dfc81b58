"""The summary files of a run in the reports directory: written together, removed together."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.report.junit import render_junit
from conformance.report.kcidb import render_kcidb
from conformance.report.ktap import render_ktap
from conformance.report.markdown import render_markdown
from conformance.report.verdict import summary_document
from conformance.summary import Summary

SUMMARY_JSON = "conformance-summary.json"
SUMMARY_MD = "conformance-summary.md"
JUNIT_XML = "junit-conformance.xml"
KCIDB_JSON = "kcidb.json"
KTAP = "conformance.ktap"
SUMMARY_FILES = (SUMMARY_JSON, SUMMARY_MD, JUNIT_XML, KCIDB_JSON, KTAP)


def remove_summaries(reports_dir: Path) -> list[Path]:
    """Remove a previous run's summaries, so no verdict outlives its run; the removed paths."""
    removed = []
    for name in SUMMARY_FILES:
        path = reports_dir / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def write_summaries(summary: Summary, reports_dir: Path) -> list[Path]:
    """JSON (record plus verdicts), Markdown, JUnit XML, KCIDB JSON and KTAP of one run."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    paths = [summary.write(reports_dir / SUMMARY_JSON, summary_document(summary))]
    for name, text in rendered_formats(summary):
        path = reports_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def rendered_formats(summary: Summary) -> list[tuple[str, str]]:
    """Each file rendered from the summary, by name (also for an archived summary)."""
    return [
        (SUMMARY_MD, render_markdown(summary)),
        (JUNIT_XML, render_junit(summary)),
        (KCIDB_JSON, json.dumps(render_kcidb(summary), indent=2) + "\n"),
        (KTAP, render_ktap(summary)),
    ]
