"""The three summary files of a run in the reports directory: written together, removed together."""

from __future__ import annotations

from pathlib import Path

from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.verdict import summary_document
from conformance.summary import Summary

SUMMARY_JSON = "conformance-summary.json"
SUMMARY_MD = "conformance-summary.md"
JUNIT_XML = "junit-conformance.xml"
SUMMARY_FILES = (SUMMARY_JSON, SUMMARY_MD, JUNIT_XML)


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
    """JSON (record plus verdicts), Markdown and JUnit XML of one run."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    paths = [summary.write(reports_dir / SUMMARY_JSON, summary_document(summary))]
    for name, text in ((SUMMARY_MD, render_markdown(summary)), (JUNIT_XML, render_junit(summary))):
        path = reports_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
