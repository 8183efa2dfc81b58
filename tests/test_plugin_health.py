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
from pathlib import Path

from tests.pytest_output import run_fake_cases

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
    proc = run_fake_cases(tmp_path, CONFTEST, CASES, "--target=local",
                          "--exporter=model:reference")
    reports = tmp_path / "reports"
    summary = json.loads((reports / "conformance-summary.json").read_text())
    outcomes = summary["exporters"]["model:reference"]
    assert outcomes == {"T-MAKES": "failed", "T-NEXT": "passed"}, proc.stdout[-3000:]
    assert "frees DMA memory with different direction" in (
        summary["messages"]["model:reference"]["T-MAKES"]
    )


# On --target=model each case gets a fresh model (fixtures/plugin.py's `target`): the
# complaints of the case's own model are the ones to read, not the run's.
FRESH_MODEL_CONFTEST = CONFTEST.replace(
    "_shared = WarnsAtRelease()\nplugin.make_target = lambda config: _shared",
    "plugin.make_target = lambda config: WarnsAtRelease()",
)


def test_on_the_model_target_a_case_is_judged_by_its_own_models_complaints(
    tmp_path: Path,
) -> None:
    assert FRESH_MODEL_CONFTEST != CONFTEST
    proc = run_fake_cases(tmp_path, FRESH_MODEL_CONFTEST, CASES, "--target=model",
                          "--exporter=model:reference")
    summary = json.loads((tmp_path / "reports" / "conformance-summary.json").read_text())
    outcomes = summary["exporters"]["model:reference"]
    assert outcomes == {"T-MAKES": "failed", "T-NEXT": "passed"}, proc.stdout[-3000:]
