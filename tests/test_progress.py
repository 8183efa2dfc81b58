"""The run's progress line: per exporter, cases done and failed, visible without -v, plain text."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "pytest", "cases", "--target=model", "-m", "attach_order_cmo",
           "--exporter=model:reference", "--exporter=model:faulty-first-map-no-clean",
           f"--reports-dir={tmp_path}", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300).stdout


def test_progress_lines_count_done_and_failed_per_exporter(tmp_path: Path) -> None:
    out = _run(tmp_path, "-q", "--progress-every", "0")
    lines = [line for line in out.splitlines() if line.startswith("[progress ")]
    assert lines, out[-2000:]
    last = lines[-1]
    assert re.search(r"model:faulty-first-map-no-clean 13 done, [1-9]\d* failed", last), last
    assert "model:reference 13 done" in last and "model:reference 13 done," not in last, last
    assert "\x1b" not in "".join(lines) and "\r" not in "".join(lines)


def test_progress_every_limits_the_lines(tmp_path: Path) -> None:
    out = _run(tmp_path, "-q", "--progress-every", "3600")
    assert "[progress " not in out
