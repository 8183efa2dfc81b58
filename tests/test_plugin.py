"""The pytest plugin end to end: pytest runs on cases/ in a subprocess, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cases(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "cases",
            "-p",
            "no:cacheprovider",
            f"--reports-dir={tmp_path}",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_model_run_writes_the_summary(tmp_path):
    proc = run_cases(tmp_path, "--target=model", "-m", "alloc or mmap or sync", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    assert summary["target"] == "model"
    results = summary["exporters"]["model:reference"]
    assert results["ALLOC-003"] == "passed"
    assert [o for c, o in results.items() if c.startswith("ALLOC-001[")] == ["passed"] * 5
    assert results["MMAP-002"] == "passed"
    assert set(results.values()) <= {"passed", "skipped"}
    assert summary["cases"]["SYNC-002[none]"]["family"] == "sync"
    assert "dma-buf conformance" in proc.stdout


def test_local_run_without_exporters_fails_and_says_why(tmp_path):
    from conformance.exporters.discovery import discover

    if discover():
        pytest.skip("this kernel has dma-buf exporters; the no-exporter path cannot be shown")
    proc = run_cases(tmp_path, "--target=local", "-q")
    assert proc.returncode not in (0, 5), proc.stdout
    out = proc.stdout + proc.stderr
    assert "no dma-buf exporter found on the local target" in out
    assert "CONFIG_DMABUF_HEAPS" in out or "/dev/dma_heap" in out
    assert "Traceback" not in out


def test_unknown_exporter_is_named_with_the_choices(tmp_path):
    proc = run_cases(tmp_path, "--target=model", "--exporter=heap:nosuch", "-q")
    assert proc.returncode not in (0, 5)
    out = proc.stdout + proc.stderr
    assert "'heap:nosuch'" in out and "model:reference" in out
    assert "Traceback" not in out


def test_faulty_exporter_failure_shows_the_divergence_from_the_model(tmp_path):
    proc = run_cases(
        tmp_path, "--target=model", "--exporter=model:faulty-no-zeroing", "-m", "zero_fill", "-q"
    )
    assert proc.returncode == 1, proc.stdout
    assert "diverged from model:reference" in proc.stdout
    assert "first difference at byte" in proc.stdout
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    assert "failed" in summary["exporters"]["model:faulty-no-zeroing"].values()


def test_k_selects_a_case_by_its_id(tmp_path: Path) -> None:
    proc = run_cases(tmp_path, "--exporter=model:reference", "-k", "CMO-006 or MMAP-002")
    assert proc.returncode == 0, proc.stdout[-2000:]
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    ran = set(summary["exporters"]["model:reference"])
    assert ran == {"CMO-006", "MMAP-002"}, ran
