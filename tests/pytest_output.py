"""Reading what a pytest subprocess printed, for the tests that run the cases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pytest_counts(stdout: str) -> dict[str, int]:
    """The final line's counts (``3 failed, 21 passed, ...``); "error"/"errors" as "errors"."""
    last = stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (\w+)", last)}
    counts["errors"] = counts.pop("error", 0) + counts.pop("errors", 0)
    return counts


def run_fake_cases(
    tmp_path: Path, conftest: str, cases: str, *args: str
) -> subprocess.CompletedProcess:
    """``pytest cases`` in ``tmp_path`` with this conftest and one case file, the plugin on."""
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "test_fake.py").write_text(textwrap.dedent(cases))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q", *args,
         f"--reports-dir={tmp_path / 'reports'}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
