"""Waivers, verdicts, Markdown and JUnit rendering, without running any case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.verdict import verdict_for
from conformance.report.waivers import WaiverFileError, load_waivers, parse_waivers
from conformance.summary import CaseMeta, Summary


def test_waiver_matches_case_family_of_parametrizations_exporter_and_kernel():
    ws = parse_waivers(
        {"waivers": [{"case": "CMO-002", "reason": "erratum", "exporter": "heap:*",
                      "kernel": "6.1*"}]}
    )
    assert ws.match("heap:system", "CMO-002[TO_DEVICE]", "6.1.0-test") is not None
    assert ws.match("heap:system", "CMO-0021", "6.1.0") is None
    assert ws.match("udmabuf", "CMO-002", "6.1.0") is None
    assert ws.match("heap:system", "CMO-002", "6.6.0") is None


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"waivers": [{"case": "X-1"}]}, "'reason' is required"),
        ({"waivers": [{"case": "X-1", "reason": "r", "exporters": "heap:*"}]}, "unknown field"),
        ({"waivers": [{"case": 3, "reason": "r"}]}, "'case' must be a string"),
        ({"waiver": []}, "unknown top-level key"),
        ("nope", "expected"),
    ],
)
def test_bad_waiver_documents_name_what_is_wrong(doc, words):
    with pytest.raises(WaiverFileError, match=words):
        parse_waivers(doc, "w.json")


def test_waiver_file_that_is_not_json_names_line(tmp_path):
    path = tmp_path / "w.json"
    path.write_text('{"waivers": [\n  {"case": "X"},,\n]}')
    with pytest.raises(WaiverFileError, match="not valid JSON.*line 2"):
        load_waivers(path)
    with pytest.raises(WaiverFileError, match="cannot read"):
        load_waivers(tmp_path / "missing.json")


def _summary() -> Summary:
    s = Summary(target="model", kernel="6.1")
    s.cases = {
        "A-1": CaseMeta("must one", "alloc", "MUST"),
        "A-2": CaseMeta("must two", "alloc", "MUST"),
        "S-1": CaseMeta("should one", "sync", "SHOULD"),
    }
    return s


def test_verdicts_follow_must_should_and_waivers():
    s = _summary()
    s.record("good", "A-1", "passed")
    s.record("good", "S-1", "failed", "advisory")
    s.record("waived", "A-1", "passed")
    s.waive("waived", "A-2", "erratum", 1)
    s.record("bad", "A-1", "passed")
    s.record("bad", "A-2", "failed", "diverged at step 3")
    s.record("broken", "A-1", "passed")
    s.record("broken", "A-2", "error", "setup failed")
    s.record("empty", "A-1", "skipped", "not applicable")
    assert verdict_for(s, "good").verdict == "conformant"
    assert "SHOULD advisory" in verdict_for(s, "good").why
    assert verdict_for(s, "waived").verdict == "conformant with waivers"
    assert verdict_for(s, "bad").verdict == "not conformant"
    assert verdict_for(s, "broken").verdict == "not conformant"
    assert verdict_for(s, "empty").verdict == "not conformant"
    # Waiving does not hide the raw result: the schema's map keeps "failed".
    assert s.to_json()["exporters"]["waived"]["A-2"] == "failed"
    assert s.to_json()["waived"]["waived"]["A-2"] == {"reason": "erratum", "waiver": 1}


def test_markdown_and_junit_agree_with_the_summary():
    s = _summary()
    s.record("x", "A-1", "passed")
    s.waive("x", "A-2", "erratum", 1)
    s.record("x", "S-1", "failed", "line one\nline two")
    s.record("y", "A-1", "error", "boom")
    md = render_markdown(s)
    assert "| `x` | **conformant with waivers** | 1 | 1 | 1 | 0 | 0 |" in md
    assert "waived (#1: erratum)" in md and "### SHOULD (1 cases)" in md
    root = ET.fromstring(render_junit(s))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "4", "1", "1", "1",
    )
    x = root.find("testsuite[@name='x']")
    assert x.find("properties/property[@name='verdict']").get("value") == (
        "conformant with waivers"
    )
    assert x.find("testcase[@name='A-2']/skipped").get("type") == "waived"
    assert x.find("testcase[@name='S-1']/failure").text == "line one\nline two"


def test_summary_round_trips_through_json(tmp_path):
    s = _summary()
    s.waive("x", "A-2", "erratum", 1)
    s.write(tmp_path / "s.json")
    again = Summary.load(tmp_path / "s.json")
    assert again.to_json() == s.to_json()
