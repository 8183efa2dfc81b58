"""End to end under LAVA: lava-run boots the DUT and runs lava/conformance.yaml on it.

The job (lava/qemu-job.yaml, lava/devices/qemu-dmabuf.jinja2) boots the suite's
test kernel with the DUT initramfs under LAVA 2023.01's own dispatcher, with no
server: LAVA's test shell parses the signals on the serial console, which is
also the kernel's console.  The results LAVA recorded are then checked against
the run's conformance-summary.json, which the DUT wrote to the device's reports
share.  The default selection (``-m "mmap or vmap_aliasing"``) has passes, skips
(not applicable) and two failures on upstream 6.1 vgem (MMAP-005, VMAP-002);
VMAP-002 is waived here, so each LAVA result kind and the waived set show.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from conformance.lava.install import SETUP_COMMAND, LavaMissing, find_lava
from conformance.lava.job import JobParams
from conformance.lava.run import JobRun, run_job
from conformance.report.files import SUMMARY_JSON
from conformance.report.lava import case_id_of, exporter_of, signals
from conformance.summary import Summary

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("DMABUF_LAVA_REQUIRED") == "1"  # tox -e lava: never skip


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"tox -e lava cannot run its LAVA job: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    try:
        install = find_lava()
    except LavaMissing as exc:
        _unavailable(str(exc))
    if os.geteuid() != 0:
        _unavailable(f"lava-run runs its jobs as root; run `{SETUP_COMMAND}` and this test "
                     "as root")
    job_dir = tmp_path_factory.mktemp("lava") / "1"
    waivers = job_dir.parent / "waivers.json"
    waivers.write_text(json.dumps({"waivers": [
        {"case": "VMAP-002", "exporter": "vgem",
         "reason": "test of the waived set: upstream vgem has no begin_cpu_access"}]}))
    # The DUT sees this host's / at its root (chroot /host), so host paths hold there.
    params = JobParams(waivers=str(waivers))
    return run_job(install, params, job_dir, timeout=1500)


@pytest.fixture(scope="module")
def summary(job: JobRun) -> Summary:
    path = job.reports_dir / SUMMARY_JSON
    assert path.is_file(), f"the DUT wrote no summary; lava-run's log: {job.log}"
    return Summary.load(path)


def test_lava_ran_the_job_and_the_definition(job: JobRun):
    lava = job.lava_results()
    assert job.returncode == 0, f"lava-run exit status {job.returncode}; log: {job.log}"
    assert lava.get("job") == "pass", lava
    # LAVA's record of the definition's run: ENDRUN reached, so no signal was lost at the end.
    assert lava.get("0_dmabuf-conformance") == "pass", lava


def test_the_run_on_the_dut_is_complete_and_local(summary: Summary):
    assert summary.run.complete, summary.run.why_incomplete
    assert summary.target == "local"
    assert summary.run.exit_status == 1  # failures, not an error of the run
    assert "--target=local" in summary.run.command


def test_lava_recorded_every_case_with_pytests_counts(job: JobRun, summary: Summary):
    recorded = Counter((r.set, r.case, r.result) for r in job.cases())
    expected = Counter((s.set, s.case, s.result) for s in signals(summary))
    assert recorded == expected
    # Per exporter, LAVA's counts are pytest's: pass, fail (waived apart), skip, error.
    for exporter, tally in summary.counts().items():
        got = Counter()
        for r in job.cases():
            name, waived = exporter_of(r.set)
            if name == exporter:
                got["waived" if waived else r.result] += 1
        assert (got["pass"], got["fail"], got["skip"], got["unknown"], got["waived"]) == (
            tally["passed"], tally["failed"] - tally["waived"], tally["skipped"],
            tally["error"], tally["waived"]), exporter
    assert sum(recorded.values()) == sum(len(r) for r in summary.exporters.values())


def test_a_failing_a_waived_a_skipped_and_a_passing_case(job: JobRun, summary: Summary):
    by_case = {(r.set, case_id_of(r.case)): r.result for r in job.cases()}
    assert by_case[("vgem", "MMAP-005")] == "fail"  # upstream 6.1: vgem maps from page 0
    assert summary.exporters["vgem"]["MMAP-005"] == "failed"
    assert by_case[("vgem-waived", "VMAP-002")] == "fail"
    assert ("vgem", "VMAP-002") not in by_case
    assert summary.is_waived("vgem", "VMAP-002")
    skipped = [c for (s, c), res in by_case.items() if s == "heap.system" and res == "skip"]
    assert skipped and all(summary.exporters["heap:system"][c] == "skipped" for c in skipped)
    assert by_case[("heap.system", "MMAP-001")] == "pass"


def test_console_loglevel_was_lowered_while_signalling_and_restored(job: JobRun):
    console = job.log.read_text(errors="replace")
    assert "console loglevel 5 -> 1 while signalling (console ttyS0)" in console
    assert "console loglevel restored: 5" in console
    assert "Bad test result" not in console and "Invalid TESTCASE signal" not in console
