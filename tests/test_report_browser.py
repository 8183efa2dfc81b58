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
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

from conformance.report.html import generate_html
from tests.headless_chromium import Chromium, Page, showing

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = Path("/tmp/report-artefacts")
FAULTY = "model:faulty-first-map-no-clean"
MODEL_TEST = "test_failing_case_page_shows_divergence_and_attachments"

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One headless Chromium for every check of the module."""
    chromium = Chromium()
    try:
        yield chromium
    finally:
        chromium.close()


def screenshot(page: Page, name: str) -> Path:
    out = ROOT / "reports" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(out)
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


def check_report(
    browser: Chromium, html: Path, results: Path, exporters: list[str], shot: str,
    case_text: Sequence[str] = ("diverged from", "Error"),
) -> None:
    """The front page and a failing case's page opened from their links, and its attachments tab.

    Each report is opened in a tab of its own browser context; the screenshots
    are taken of the pages just checked.
    """
    with browser.new_page(width=1400, height=1100) as page:
        check_pages(page, html, results, exporters, shot, case_text)


def check_pages(page: Page, html: Path, results: Path, exporters: list[str], shot: str,
                case_text: Sequence[str] = ("diverged from", "Error")) -> None:
    url = html.resolve().as_uri()
    overview = showing(page, url, exporters)
    for exporter in exporters:
        assert exporter in overview, f"exporter {exporter} not on the report's front page"
    screenshot(page, shot.replace(".png", "-overview.png"))
    failing = failing_result(results)
    case_url = f"{url}#{report_id(html, failing)}"
    # The model run's failing case is a divergence; a real kernel's may fail its own
    # assertion instead, and waiting for "diverged from" there cost minutes of reloads.
    case_page = showing(page, case_url, [], any_of=case_text)
    assert any(t in case_page for t in case_text), (case_text, case_page[-2000:])
    screenshot(page, shot)
    names = [a["name"] for a in failing["attachments"]]
    # The tab as a user opens it from the case page: the report's own navigation, no new load.
    attachments = showing(page, case_url + "/attachments", names, fresh=False)
    for name in names:
        assert name in attachments, f"attachment {name!r} not shown on {case_url}/attachments"


def model_run(out: Path) -> tuple[subprocess.CompletedProcess, Optional[Path]]:
    """A run of one faulty model exporter and the reference, and its HTML report."""
    results, html = out / "allure-results", out / "html"
    cmd = [sys.executable, "-m", "pytest", "cases", "--target=model", "-m", "attach_order_cmo",
           f"--exporter={FAULTY}", "--exporter=model:reference", f"--alluredir={results}",
           f"--reports-dir={out}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 1:
        return proc, None
    return proc, generate_html(results, html)


@pytest.fixture(scope="module", autouse=True)
def model_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Optional[Future]]:
    """``model_run`` in the background from the module's start, when its test is to run.

    It overlaps the browser's start and the check of the run's own report.
    """
    if not any(item.name == MODEL_TEST for item in request.session.items):
        yield None
        return
    out = tmp_path_factory.mktemp("model-report")
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(model_run, out)


@pytest.mark.skipif(
    not os.environ.get("DMABUF_REPORT_HTML"), reason="DMABUF_REPORT_HTML not set (tox -e report)"
)
def test_the_runs_own_report(browser: Chromium):
    html = Path(os.environ["DMABUF_REPORT_HTML"])
    results = Path(os.environ.get("DMABUF_REPORT_RESULTS", html.parent.parent / "allure-results"))
    summary = json.loads((html.parent.parent / "conformance-summary.json").read_text())
    assert html.is_file(), f"{html} missing: run `tox -e report` after a run with --alluredir"
    exporters = sorted(summary["exporters"])
    check_report(browser, html, results, exporters, "report-run-failing-case.png")


def test_failing_case_page_shows_divergence_and_attachments(
    browser: Chromium, model_report: Future
):
    proc, index = model_report.result()
    assert proc.returncode == 1, proc.stdout[-3000:]
    results = index.parent.parent / "allure-results"
    env = (results / "environment.properties").read_text()
    assert f"exporters_tested={FAULTY}, model:reference" in env and "kernel=" in env
    failing = failing_result(results)
    labels = {lab["name"]: lab["value"] for lab in failing["labels"]}
    assert labels["epic"] == FAULTY and labels["feature"] == "attach_order_cmo"
    assert labels["story"].startswith("CMO-") and labels["severity"] == "critical"
    assert any("lore.kernel.org" in link["url"] for link in failing["links"])
    assert any(s["status"] == "failed" and "→" in s["name"] for s in failing["steps"])
    assert "comparison with the reference model" in [a["name"] for a in failing["attachments"]]
    check_report(browser, index, results, [FAULTY, "model:reference"], "report-failing-case.png",
                 case_text=("diverged from",))
