"""A kernel complaint about a buffer's release belongs to the case that made the buffer.

Release paths (the exporter's unmap and free when the last fd goes) run when
the case's handles are closed.  The plugin closes them inside the case's call
phase, before it reads the kernel's health, so a complaint there fails that
case, not the next one (on 5.10, udmabuf's release direction mismatch was
blamed on whichever case ran after).  A fake target stands in for a kernel
whose release path warns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = '''
import fixtures.plugin as plugin
from conformance.targets.model import ModelTarget

pytest_plugins = ["fixtures.plugin", "fixtures.reporting"]


class WarnsAtRelease(ModelTarget):
    """A shared target (as a guest is) whose exporter warns when a buffer is released."""

    def close_all(self):
        released = bool(self._fds)
        super().close_all()  # the model forgets its own warnings here; a kernel does not
        if released:
            self._warnings.append("release_udmabuf: frees DMA memory with different direction")


_shared = WarnsAtRelease()
plugin.make_target = lambda config: _shared
'''

CASES = '''
import pytest

pytestmark = pytest.mark.alloc


@pytest.mark.case("T-MAKES")
def test_makes_a_buffer(target, exporter):
    """Leaves a buffer for the release path."""
    target.allocate(exporter.name, 4096)


@pytest.mark.case("T-NEXT")
def test_runs_next(target, exporter):
    """Makes nothing."""
'''


def test_a_release_complaint_fails_the_case_that_made_the_buffer(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "test_fake.py").write_text(textwrap.dedent(CASES))
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q",
         "--target=local", "--exporter=model:reference", f"--reports-dir={reports}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    summary = json.loads((reports / "conformance-summary.json").read_text())
    outcomes = summary["exporters"]["model:reference"]
    assert outcomes == {"T-MAKES": "failed", "T-NEXT": "passed"}, proc.stdout[-3000:]
    assert "frees DMA memory with different direction" in (
        summary["messages"]["model:reference"]["T-MAKES"]
    )
