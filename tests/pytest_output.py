"""Reading what a pytest subprocess printed, for the tests that run the cases."""

from __future__ import annotations

import re


def pytest_counts(stdout: str) -> dict[str, int]:
    """The final line's counts (``3 failed, 21 passed, ...``); "error"/"errors" as "errors"."""
    last = stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (\w+)", last)}
    counts["errors"] = counts.pop("error", 0) + counts.pop("errors", 0)
    return counts
