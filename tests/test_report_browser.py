"""The Allure HTML report, generated offline and opened in Debian's headless Chromium.

Needs the ``allure`` generator (npm ``allure`` 3.x or allure-commandline 2.x)
and ``chromium``; skips with the install line when either is missing.  A run
of one faulty model exporter gives a failing case whose page must show the
divergence table and the attachments.  With ``DMABUF_REPORT_HTML`` set (``tox
-e report`` does), the report of the real run is checked the same way.  The
screenshots are kept in ``reports/`` and copied to ``/tmp/report-artefacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.report.html import generate_html

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = Path("/tmp/report-artefacts")

pytestmark = [
    pytest.mark.skipif(
        shutil.which("allure") is None,
        reason="no `allure` generator: `npm install -g allure` "
        "(needs `apt-get install -y nodejs npm`)",
    ),
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="no Chromium: `apt-get install -y chromium`"
    ),
]


def chromium(url: str, *args: str) -> str:
    # The report embeds an analytics tag: resolving no host keeps an offline CI from waiting on it.
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    return proc.stdout


def page_text(url: str) -> str:
    dom = chromium(url, "--dump-dom")
    dom = re.sub(r"(?s)<(script|style)[^>]*>.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def page_showing(url: str, wanted: list[str], tries: int = 3) -> str:
    """The page's text once it shows every wanted string, or its last text.

    The report loads its data asynchronously inside Chromium's virtual-time
    budget; on a loaded CI machine one load can end in the report's own
    "Failed to fetch" state.  A report that is really missing a string misses
    it on every load.
    """
    text = ""
    for _ in range(tries):
        text = page_text(url)
        if all(w in text for w in wanted):
            break
    return text


def screenshot(url: str, name: str) -> Path:
    out = ROOT / "reports" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    chromium(url, f"--screenshot={out}", "--window-size=1400,1100")
    assert out.is_file() and out.stat().st_size > 10_000, f"no screenshot written to {out}"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTEFACTS / name)
    return out


def failing_result(results: Path) -> dict:
    """A failed case with attachments, from the raw Allure results."""
    for path in sorted(results.glob("*-result.json")):
        data = json.loads(path.read_text())
        if data.get("status") == "failed" and data.get("attachments"):
            return data
    raise AssertionError(f"no failed case with attachments in {results}")


def report_id(html: Path, result: dict) -> str:
    """The id the generated report gives a raw result (Allure 3 hashes its own)."""
    index = json.loads((html.parent / "test-results.json").read_text())
    items = index.get("byId", index) if isinstance(index, dict) else index
    for entry in items.values() if isinstance(items, dict) else items:
        if entry.get("name") == result["name"] and entry.get("status") == "failed":
            return str(entry["id"])
    raise AssertionError(f"{result['name']} not in {html.parent / 'test-results.json'}")


def check_report(html: Path, results: Path, exporters: list[str], shot: str) -> None:
    url = html.resolve().as_uri()
    overview = page_showing(url, exporters)
    for exporter in exporters:
        assert exporter in overview, f"exporter {exporter} not on the report's front page"
    failing = failing_result(results)
    case_url = f"{url}#{report_id(html, failing)}"
    case_page = page_showing(case_url, ["diverged from"])
    assert "diverged from" in case_page or "Error" in case_page
    names = [a["name"] for a in failing["attachments"]]
    attachments = page_showing(case_url + "/attachments", names)
    for name in names:
        assert name in attachments, f"attachment {name!r} not shown on {case_url}/attachments"
    screenshot(url, shot.replace(".png", "-overview.png"))
    screenshot(case_url, shot)


def test_failing_case_page_shows_divergence_and_attachments(tmp_path):
    results, html = tmp_path / "allure-results", tmp_path / "html"
    faulty = "model:faulty-first-map-no-clean"
    cmd = [sys.executable, "-m", "pytest", "cases", "--target=model", "-m", "attach_order_cmo",
           f"--exporter={faulty}", "--exporter=model:reference", f"--alluredir={results}",
           f"--reports-dir={tmp_path}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:]
    env = (results / "environment.properties").read_text()
    assert f"exporters_tested={faulty}, model:reference" in env and "kernel=" in env
    failing = failing_result(results)
    labels = {lab["name"]: lab["value"] for lab in failing["labels"]}
    assert labels["epic"] == faulty and labels["feature"] == "attach_order_cmo"
    assert labels["story"].startswith("CMO-") and labels["severity"] == "critical"
    assert any("lore.kernel.org" in link["url"] for link in failing["links"])
    assert any(s["status"] == "failed" and "→" in s["name"] for s in failing["steps"])
    assert "comparison with the reference model" in [a["name"] for a in failing["attachments"]]
    index = generate_html(results, html)
    check_report(index, results, [faulty, "model:reference"], "report-failing-case.png")


@pytest.mark.skipif(
    not os.environ.get("DMABUF_REPORT_HTML"), reason="DMABUF_REPORT_HTML not set (tox -e report)"
)
def test_the_runs_own_report():
    html = Path(os.environ["DMABUF_REPORT_HTML"])
    results = Path(os.environ.get("DMABUF_REPORT_RESULTS", html.parent.parent / "allure-results"))
    summary = json.loads((html.parent.parent / "conformance-summary.json").read_text())
    assert html.is_file(), f"{html} missing: run `tox -e report` after a run with --alluredir"
    check_report(html, results, sorted(summary["exporters"]), "report-run-failing-case.png")
