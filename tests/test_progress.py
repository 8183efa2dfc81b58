"""The run's progress line: per exporter, cases done and failed, visible without -v, plain text."""

from __future__ import annotations

import os
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


def test_a_workers_notice_reaches_the_terminal_once(tmp_path: Path) -> None:
    """What an xdist worker announces (its guest ready) is shown by the controller.

    xdist shows nothing a worker prints: the notice travels with the worker's next
    report, and is taken off it (pytest's JUnit XML does not get it as a property).
    """
    (tmp_path / "conftest.py").write_text(
        "import os, pytest\n"
        "from fixtures.progress import notice\n"
        "@pytest.fixture(scope='session', autouse=True)\n"
        "def booted(request):\n"
        "    notice(request.config, f\"[qemu] guest {os.environ.get('PYTEST_XDIST_WORKER')} "
        "ready in 1.0 s\")\n")
    (tmp_path / "test_a.py").write_text(
        "import pytest\n@pytest.mark.parametrize('n', range(4))\ndef test_n(n):\n    pass\n")
    junit = tmp_path / "junit.xml"
    r = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-p", "fixtures.progress",
                        "-n", "2", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                        f"--rootdir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    for worker in ("gw0", "gw1"):
        assert r.stdout.count(f"[qemu] guest {worker} ready in 1.0 s\n") == 1, r.stdout
    assert "dmabuf_notice" not in junit.read_text()
