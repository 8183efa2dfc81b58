"""A real run of the cases (model target, one faulty exporter) and the reports it writes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.pytest_output import pytest_counts

ROOT = Path(__file__).resolve().parent.parent


def run_cases(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "pytest", "cases", "--target=model", "-m", "attach_order_cmo",
        "--exporter=model:faulty-first-map-no-clean", "--exporter=model:reference",
        f"--reports-dir={tmp}", "-p", "no:cacheprovider", "-q", "-rx", *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def waived_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("reports")
    waivers = tmp / "waivers.json"
    waivers.write_text(json.dumps({"waivers": [
        {"case": "CMO-002", "reason": "erratum 42", "exporter": "model:faulty-first-map-*"},
        {"case": "CMO-003", "reason": "wrong kernel", "kernel": "5.4*"},
    ]}))
    return tmp, run_cases(tmp, f"--waivers={waivers}")


def test_summary_json_markdown_junit_agree_with_pytest_counts(waived_run):
    tmp, proc = waived_run
    assert proc.returncode == 1, proc.stdout[-3000:]  # CMO-003 still fails
    counts = pytest_counts(proc.stdout)
    summary = json.loads((tmp / "conformance-summary.json").read_text())
    outcomes = [o for per in summary["exporters"].values() for o in per.values()]
    waived = sum(len(w) for w in summary["waived"].values())
    assert waived == counts["xfailed"] >= 1
    assert outcomes.count("failed") - waived == counts["failed"]
    assert outcomes.count("passed") == counts["passed"]
    assert outcomes.count("skipped") == counts.get("skipped", 0)
    junit = ET.parse(tmp / "junit-conformance.xml").getroot()
    assert int(junit.get("failures")) == counts["failed"]
    assert int(junit.get("skipped")) == counts.get("skipped", 0) + counts["xfailed"]
    assert int(junit.get("tests")) == len(outcomes)
    md = (tmp / "conformance-summary.md").read_text()
    # Only one family ran (-m attach_order_cmo): the reference is not shown conformant.
    assert "| `model:reference` | **incomplete** |" in md
    assert "| `model:faulty-first-map-no-clean` | **not conformant** |" in md


def test_waived_failures_show_as_such_and_unused_waivers_are_reported(waived_run):
    tmp, proc = waived_run
    assert "XFAIL" in proc.stdout and "waived (#1): erratum 42" in proc.stdout
    summary = json.loads((tmp / "conformance-summary.json").read_text())
    faulty = "model:faulty-first-map-no-clean"
    assert all(summary["exporters"][faulty][c] == "failed" for c in summary["waived"][faulty])
    assert all(c.startswith("CMO-002") for c in summary["waived"][faulty])
    assert [w["case"] for w in summary["unused_waivers"]] == ["CMO-003"]
    assert "unused waiver #2 CMO-003" in proc.stdout
    assert "## Unused waivers" in (tmp / "conformance-summary.md").read_text()
    assert summary["verdicts"]["model:reference"] == "incomplete"
    assert summary["verdicts"]["model:faulty-first-map-no-clean"] == "not conformant"


def test_a_bad_waiver_file_is_a_usage_error_naming_the_problem(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text('{"waivers": [{"case": "CMO-002"}]}')
    proc = run_cases(tmp_path, f"--waivers={bad}")
    assert proc.returncode == 4
    assert "waiver #1: 'reason' is required" in proc.stderr
    assert "Traceback" not in proc.stderr
