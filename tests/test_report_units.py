"""Waivers, verdicts, Markdown and JUnit rendering, without running any case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from conformance.report.__main__ import main as report_main
from conformance.report.environment import environment
from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.verdict import Verdict, exit_status, run_problem, verdict_for
from conformance.report.waivers import WaiverFileError, load_waivers, parse_waivers
from conformance.summary import CaseMeta, RunRecord, Summary


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
    s.record("good", "A-2", "passed")
    s.record("good", "S-1", "failed", "advisory")
    s.record("waived", "A-1", "passed")
    s.waive("waived", "A-2", "erratum", 1)
    s.record("bad", "A-1", "passed")
    s.record("bad", "A-2", "failed", "diverged at step 3")
    s.record("broken", "A-1", "passed")
    s.record("broken", "A-2", "error", "setup failed")
    s.record("empty", "A-1", "skipped", "not applicable: optional capability")
    assert verdict_for(s, "good").verdict == "conformant"
    assert "SHOULD advisory" in verdict_for(s, "good").why
    assert verdict_for(s, "waived").verdict == "conformant with waivers"
    assert verdict_for(s, "bad").verdict == "not conformant"
    # An error says nothing about the exporter either way: the run could not judge it.
    assert verdict_for(s, "broken").verdict == "error"
    assert "could not be judged: A-2" in verdict_for(s, "broken").why
    assert verdict_for(s, "empty").verdict == "incomplete"
    assert "no MUST case ran" in verdict_for(s, "empty").why
    # Waiving does not hide the raw result: the schema's map keeps "failed".
    assert s.to_json()["exporters"]["waived"]["A-2"] == "failed"
    assert s.to_json()["waived"]["waived"]["A-2"] == {"reason": "erratum", "waiver": 1}


def _planned(kind: str = "heap") -> Summary:
    """Two MUST families and a SHOULD one, all planned for exporter ``x``."""
    s = _summary()
    s.cases["K-1"] = CaseMeta("kernel side", "kmap_contract", "MUST")
    s.cases["U-1"] = CaseMeta("udmabuf only", "exporter_specific", "MUST")
    for case in ("A-1", "A-2", "S-1", "K-1"):
        s.plan("x", kind, case, "selected", s.cases[case])
    s.plan("x", kind, "U-1", "not applicable", s.cases["U-1"])
    return s


@pytest.mark.parametrize(
    "skip, verdict",
    [
        ("not applicable: the exporter implements no vmap", "conformant"),
        ("not checked: no probe (the probe importer module is loaded): not loaded", "incomplete"),
        ("skipped for some reason", "incomplete"),  # unexplained: not a pass
    ],
)
def test_only_a_not_applicable_skip_leaves_a_must_family_complete(skip, verdict):
    s = _planned()
    for case in ("A-1", "A-2", "S-1"):
        s.record("x", case, "passed")
    s.record("x", "K-1", "skipped", skip)
    v = verdict_for(s, "x")
    assert v.verdict == verdict
    kmap = v.families["kmap_contract"]
    assert kmap.level == "MUST" and kmap.complete == (verdict == "conformant")
    if verdict == "incomplete":
        assert v.incomplete_families == ["kmap_contract"]
        assert "kmap_contract (1 not checked" in v.why
        assert kmap.why_not_checked == [f"K-1: {skip.removeprefix('not checked: ')}"]
    # A case another kind's contract binds is not a gap either.
    assert v.families["exporter_specific"].level == ""
    assert v.families["exporter_specific"].not_applicable == 1


def test_deselected_or_unreported_must_cases_make_the_exporter_incomplete():
    s = _planned()
    s.planned["x"]["K-1"] = "deselected"
    s.record("x", "A-1", "passed")  # A-2 selected but never reported (the run stopped)
    v = verdict_for(s, "x")
    assert v.verdict == "incomplete"
    assert v.families["kmap_contract"].why_not_run == ["K-1: deselected (-m/-k)"]
    assert v.families["alloc"].why_not_run == ["A-2: no result (the run stopped first)"]
    assert "kmap_contract (deselected by -m/-k)" in v.why and "alloc (1 not run" in v.why


def test_a_should_case_not_checked_leaves_the_verdict_alone_and_a_failure_wins():
    s = _planned()
    for case in ("A-1", "A-2", "K-1"):
        s.record("x", case, "passed")
    s.record("x", "S-1", "skipped", "not checked: no kmsg")
    assert verdict_for(s, "x").verdict == "conformant"
    assert verdict_for(s, "x").families["sync"].not_checked == 1
    s.record("x", "K-1", "skipped", "not checked: no probe")
    s.record("x", "A-2", "failed", "diverged")
    assert verdict_for(s, "x").verdict == "not conformant"  # a finding, whatever else is open


def test_verdict_exit_status_and_run_problem():
    s = _planned()
    assert "no run record" in run_problem(s)
    s.run = RunRecord(id="r1", started="t0", exit_status=4, complete=False,
                      why_incomplete="usage error: --exporter 'x': no such exporter")
    assert "did not complete: usage error: --exporter 'x'" in run_problem(s)
    s.run.complete = True
    assert run_problem(s) == ""
    mk = Verdict  # shorthand
    assert exit_status([mk("a", "conformant", ""), mk("b", "conformant with waivers", "")]) == 0
    assert exit_status([mk("a", "incomplete", ""), mk("b", "not conformant", "")]) == 1
    assert exit_status([mk("a", "conformant", ""), mk("b", "error", "")]) == 2
    assert exit_status([mk("a", "conformant", ""), mk("b", "incomplete", "")]) == 2
    assert exit_status([]) == 2


def _write(tmp_path, s: Summary):
    from conformance.report.files import write_summaries

    write_summaries(s, tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "outcomes, complete, status, words",
    [
        ({"A-1": "passed", "A-2": "passed", "S-1": "passed", "K-1": "passed"}, True, 0,
         "x: conformant"),
        ({"A-1": "passed", "A-2": "failed", "S-1": "passed", "K-1": "passed"}, True, 1,
         "x: not conformant"),
        ({"A-1": "passed", "A-2": "passed", "S-1": "passed"}, True, 2, "x: incomplete"),
        ({"A-1": "passed", "A-2": "passed", "S-1": "passed", "K-1": "passed"}, False, 2,
         "error: run r1"),
    ],
)
def test_verdict_command_judges_only_a_complete_run(
    tmp_path, capsys, outcomes, complete, status, words
):
    s = _planned()
    for case, outcome in outcomes.items():
        s.record("x", case, outcome)
    s.run = RunRecord(id="r1", started="t0", exit_status=1, complete=complete,
                      why_incomplete="" if complete else "interrupted: KeyboardInterrupt")
    assert report_main(["verdict", "--reports-dir", str(_write(tmp_path, s))]) == status
    out = capsys.readouterr()
    assert words in out.out + out.err
    if status == 2:
        assert out.err.startswith("error: ")
    if not complete:
        assert out.out == ""  # no verdict line of a run that did not complete
        assert report_main(["check-run", "--reports-dir", str(tmp_path)]) == 2


def test_verdict_command_without_a_summary_says_so(tmp_path, capsys):
    assert report_main(["verdict", "--reports-dir", str(tmp_path)]) == 2
    assert "does not exist: run the cases first" in capsys.readouterr().err
    (tmp_path / "conformance-summary.json").write_text("{\"run\": 3}")
    assert report_main(["verdict", "--reports-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


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


def test_instruments_run_and_families_show_in_markdown_junit_and_environment():
    s = _planned()
    for case in ("A-1", "A-2", "S-1"):
        s.record("x", case, "passed")
    s.record("x", "K-1", "skipped", "not checked: no probe (importer): not loaded")
    s.comparisons["x"] = {"A-1": {"status": "partially", "compared": 2, "steps": 5,
                                  "why": "step 3: the target ran out of a resource"},
                          "A-2": {"status": "fully", "compared": 4, "steps": 4, "why": ""}}
    s.target_info = {"target": "qemu", "kernel": "6.1",
                     "instruments": {"probe": {"present": False, "detail": "not loaded"},
                                     "kmsg": {"present": True, "detail": "/dev/kmsg"}}}
    s.run = RunRecord(id="r9", started="t0", ended="t1", exit_status=0, command="pytest cases",
                      kernel_build="abc123", complete=True)
    md = render_markdown(s)
    assert "| `probe` | **no** | not loaded |" in md
    assert "- run: `r9`" in md and "- kernel build: `abc123`" in md
    assert "| kmap_contract | MUST | 0 | 0 | 0 | 0 | 0 | 1 | 0 | **no** |" in md
    assert "- `K-1`: no probe (importer): not loaded" in md
    assert "1 case(s) fully, 1 partially" in md
    assert "compared up to step 2 of 5" in md
    suite = ET.fromstring(render_junit(s)).find("testsuite[@name='x']")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "incomplete"
    assert props["incomplete_families"] == "kmap_contract"
    assert props["instrument_probe"] == "missing: not loaded"
    assert props["run_id"] == "r9" and props["kernel_build"] == "abc123"
    assert (props["compared_fully"], props["compared_partially"]) == ("1", "1")
    env = environment(s.target_info, ["x"], ["x"], s.run.to_json())
    assert env["instrument.probe"] == "MISSING: not loaded"
    assert env["instrument.kmsg"] == "present: /dev/kmsg"
    assert env["run.id"] == "r9"
