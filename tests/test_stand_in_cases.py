"""The cases on a 6.12 udmabuf: no divergence is the stand-in's fault (issue 10, section 3).

Runs cases/ with tests/fake_upstream_kernel.py: a model target playing a
6.12.118 kernel whose udmabuf has vmap and refuses mremap growth.  With the
6.12 stand-in no udmabuf case diverges from the model; with the 6.1 stand-in
(the suite before the version table) the issue's false failures
come back, which shows the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FALSE_FAILURES_OF_6_1 = {
    "KMAP-002",
    "KMAP-004",
    "VMAP-001",
    "VMAP-002",
    "NEGKMAP-002",
    "DMACON-002",
    # the kernel-path variants (vmap) of the streaming-DMA cases: 6.12's udmabuf has a vmap
    "STREAM-001",
    "STREAM-002",
    "STREAM-003",
    "STREAM-004",
    # issue 11's size ladder: SIZE-004 reads through the vmap (6.12's udmabuf has one)
    "SIZE-004",
    # issue 11's release paths: REL-002 holds a vmap over the close (6.12's udmabuf has one)
    "REL-002",
}
# MMAP-007 was the eighth: it now judges the growth step itself, since either
# answer (growth that faults past the end, or EFAULT) is legal on any kernel.


def _run(tmp_path: Path, standin_kernel: str) -> dict[str, tuple[str, str]]:
    env = dict(os.environ, STANDIN_KERNEL=standin_kernel)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "cases", "-q", "-p", "no:cacheprovider",
            "-p", "fake_upstream_kernel", "--target=model", f"--reports-dir={tmp_path}",
            "-k", "not test_random_operation_sequences",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    outcomes = summary["exporters"]["udmabuf"]
    messages = summary["messages"].get("udmabuf", {})
    return {case: (outcome, messages.get(case, "")) for case, outcome in outcomes.items()}


def _diverged(results: dict[str, tuple[str, str]]) -> set[str]:
    return {
        case.split("[")[0]
        for case, (outcome, message) in results.items()
        if outcome == "failed" and "Divergence" in message
    }


def test_the_6_12_stand_in_makes_no_false_failure(tmp_path):
    results = _run(tmp_path, "6.12.118")
    assert _diverged(results) == set(), {c: r for c, r in results.items() if r[0] == "failed"}
    for case in (
        "KMAP-002", "KMAP-004", "VMAP-001", "VMAP-002", "NEGKMAP-002", "DMACON-002", "MMAP-007"
    ):
        assert results[case][0] == "passed", (case, results[case])


def test_the_6_1_stand_in_on_6_12_gives_the_false_failures_back(tmp_path):
    assert _diverged(_run(tmp_path, "6.1.192")) == FALSE_FAILURES_OF_6_1
