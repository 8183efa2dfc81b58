"""The signal lines of ``python -m conformance.report lava``: one per case, pytest's counts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conformance.report.__main__ import main as report_main
from conformance.report.files import SUMMARY_JSON
from conformance.report.lava import LavaNameError, Signal, parse_lines, render_lava, signals
from conformance.summary import CaseMeta, Summary

REPO = Path(__file__).resolve().parents[1]
DEFINITION_SCRIPT = REPO / "lava" / "conformance.sh"


def _summary() -> Summary:
    s = Summary(target="local", kernel="6.1.192")
    for cid in ("MMAP-001", "MMAP-005", "VMAP-002", "CMO-002[TO_DEVICE]", "UDMABUF-001[create]"):
        s.cases[cid.split("[")[0]] = CaseMeta(cid, "mmap", "MUST")
    s.record("heap:system", "MMAP-001", "passed")
    s.record("heap:system", "CMO-002[TO_DEVICE]", "error", "set-up failed")
    s.record("heap:system", "UDMABUF-001[create]", "skipped", "not applicable")
    s.record("vgem", "MMAP-001", "passed")
    s.record("vgem", "MMAP-005", "failed", "maps from page 0")
    s.waive("vgem", "VMAP-002", "known: no begin_cpu_access", 1)
    return s


def test_every_result_kind_has_its_lava_result_and_waived_failures_their_own_set():
    assert signals(_summary()) == [
        Signal("heap.system", "CMO-002.TO_DEVICE", "unknown"),
        Signal("heap.system", "MMAP-001", "pass"),
        Signal("heap.system", "UDMABUF-001.create", "skip"),
        Signal("vgem", "MMAP-001", "pass"),
        Signal("vgem", "MMAP-005", "fail"),
        Signal("vgem-waived", "VMAP-002", "fail"),
    ]


def test_counts_per_set_are_the_summary_counts():
    s = _summary()
    by_set = Counter((sig.set, sig.result) for sig in signals(s))
    for exporter, tally in s.counts().items():
        base = exporter.replace(":", ".")
        assert by_set[(base, "pass")] == tally["passed"]
        assert by_set[(base, "fail")] == tally["failed"] - tally["waived"]
        assert by_set[(base + "-waived", "fail")] == tally["waived"]
        assert by_set[(base, "skip")] == tally["skipped"]
        assert by_set[(base, "unknown")] == tally["error"]


def test_lines_read_back_and_bad_lines_are_named():
    text = render_lava(_summary())
    assert text.splitlines()[0] == "heap.system CMO-002.TO_DEVICE unknown"
    assert parse_lines(text) == signals(_summary())
    with pytest.raises(LavaNameError, match=r"signals:2: expected"):
        parse_lines("a b pass\na b maybe\n", "signals")


def test_subcommand_prints_the_lines_and_refuses_a_missing_summary(tmp_path, capsys):
    _summary().write(tmp_path / SUMMARY_JSON)
    assert report_main(["lava", "--reports-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == render_lava(_summary())
    assert "note:" in err  # the hand-made run has no run record: said, not fatal
    assert report_main(["lava", "--reports-dir", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_subcommand_names_a_case_id_with_no_lava_name(tmp_path, capsys):
    s = _summary()
    s.record("vgem", "BAD ID", "passed")
    s.write(tmp_path / SUMMARY_JSON)
    assert report_main(["lava", "--reports-dir", str(tmp_path)]) == 2
    assert "error: case id 'BAD ID' has no LAVA name" in capsys.readouterr().err


def _fake_lava_bin(tmp_path: Path) -> Path:
    """lava-test-case/-set stand-ins that print the signals LAVA's helpers would print."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lava-test-case").write_text(
        '#!/bin/sh\necho "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=$1 RESULT=$3>"\n')
    (bin_dir / "lava-test-set").write_text(
        '#!/bin/sh\nif [ "$1" = start ]; then echo "<LAVA_SIGNAL_TESTSET START $2>"; '
        'else echo "<LAVA_SIGNAL_TESTSET STOP>"; fi\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_definition_script_turns_the_lines_into_sets_and_cases(tmp_path):
    """lava/conformance.sh with a python3 stand-in for pytest that writes the summary.

    The cases themselves are not run here (tests/test_lava_job.py runs them on a
    booted DUT); this checks the script's set/case loop and its parameters.
    """
    reports = tmp_path / "reports"
    fake_py = tmp_path / "python3"
    summary = tmp_path / "summary.json"
    _summary().write(summary)
    # pytest -> copy the prepared summary into --reports-dir; anything else -> the real python
    fake_py.write_text(
        "#!/bin/sh\n"
        f'if [ "$2" = pytest ]; then echo "pytest $*" > {tmp_path}/pytest-argv; '
        f'mkdir -p {reports} && cp {summary} {reports}/{SUMMARY_JSON}; exit 1; fi\n'
        f'exec {sys.executable} "$@"\n')
    fake_py.chmod(0o755)
    env = {**os.environ, "PATH": f"{_fake_lava_bin(tmp_path)}:{os.environ['PATH']}",
           "ROOT": "/", "REPO": str(REPO), "PYTHON": str(fake_py), "MARKER": "mmap",
           "PYTEST_ARGS": "--exporter vgem", "WAIVERS": "/w.json",
           "REPORTS_DIR": str(reports), "QUIET_CONSOLE": "no"}
    r = subprocess.run(["sh", str(DEFINITION_SCRIPT)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("<LAVA_SIGNAL")]
    assert lines == [
        "<LAVA_SIGNAL_TESTSET START heap.system>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=CMO-002.TO_DEVICE RESULT=unknown>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=MMAP-001 RESULT=pass>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=UDMABUF-001.create RESULT=skip>",
        "<LAVA_SIGNAL_TESTSET STOP>",
        "<LAVA_SIGNAL_TESTSET START vgem>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=MMAP-001 RESULT=pass>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=MMAP-005 RESULT=fail>",
        "<LAVA_SIGNAL_TESTSET STOP>",
        "<LAVA_SIGNAL_TESTSET START vgem-waived>",
        "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=VMAP-002 RESULT=fail>",
        "<LAVA_SIGNAL_TESTSET STOP>",
    ]
    argv = (tmp_path / "pytest-argv").read_text()
    assert f"{REPO}/cases --target=local" in argv
    assert "-m mmap --waivers=/w.json --exporter vgem" in argv
    assert "pytest exit status 1" in r.stdout  # a failing run still signals every case


def test_definition_script_reports_a_missing_summary_as_a_fail(tmp_path):
    fake_py = tmp_path / "python3"
    fake_py.write_text(f'#!/bin/sh\n[ "$2" = pytest ] && exit 4\nexec {sys.executable} "$@"\n')
    fake_py.chmod(0o755)
    env = {**os.environ, "PATH": f"{_fake_lava_bin(tmp_path)}:{os.environ['PATH']}",
           "ROOT": "/", "REPO": str(REPO), "PYTHON": str(fake_py),
           "REPORTS_DIR": str(tmp_path / "none"), "QUIET_CONSOLE": "no"}
    r = subprocess.run(["sh", str(DEFINITION_SCRIPT)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    assert "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=conformance-summary RESULT=fail>" in r.stdout


def test_definition_parameters_match_the_script():
    """Every parameter the definition declares is exported to the script, and used there."""
    text = (REPO / "lava" / "conformance.yaml").read_text()
    params = [ln.split(":")[0].strip() for ln in
              text.split("params:")[1].split("run:")[0].splitlines()
              if ln.startswith("  ") and not ln.strip().startswith("#")]
    export = next(ln for ln in text.splitlines() if "- export " in ln).split("export ")[1]
    assert sorted(params) == sorted(export.split())
    script = DEFINITION_SCRIPT.read_text()
    for p in params:
        assert f"${{{p}" in script or f"${p}" in script, p
