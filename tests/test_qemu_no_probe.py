"""A guest without the probe: the kernel-side family is not checked, the verdict says so (~30 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_a_qemu_run_without_the_probe_is_incomplete_naming_the_probe(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "--target=qemu", "--exporter=heap:system",
         "-m", "kmap_contract", "--no-probe", f"--reports-dir={tmp_path}",
         "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    if proc.returncode == 4 and "cannot use --target=qemu" in summary["run"]["why_incomplete"]:
        pytest.skip(f"no QEMU guest: {summary['run']['why_incomplete']}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary["run"]["complete"], summary["run"]
    assert summary["instruments"]["probe"]["present"] is False
    assert summary["verdicts"]["heap:system"] == "incomplete"
    family = summary["families"]["heap:system"]["kmap_contract"]
    assert family["run"] == 0 and family["not_checked"] >= 1 and not family["complete"]
    assert "kmap_contract" in summary["verdict_reasons"]["heap:system"]
    assert "no probe" in summary["verdict_reasons"]["heap:system"]
    verdict = subprocess.run(
        [sys.executable, "-m", "conformance.report", "verdict", "--reports-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert verdict.returncode == 2
    assert "heap:system: incomplete" in verdict.stdout and "no probe" in verdict.stdout
