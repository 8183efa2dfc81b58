"""The plugin's part in an honest verdict, against a fake target in a scratch project.

The target is the reference model with the probe and its DMA event log
missing, as on a board without the module; the cases are small stand-ins with
the markers real cases carry.  pytest runs them in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = '''
import dataclasses

import fixtures.plugin as plugin
from conformance.records import Instrument
from conformance.targets.model import ModelTarget

pytest_plugins = ["fixtures.plugin", "fixtures.reporting"]


class NoProbe(ModelTarget):
    """The model, seen as a machine where the probe module is not loaded."""

    def info(self):
        info = super().info()
        missing = {
            "probe": Instrument(False, "dmabuf_probe not loaded (test)"),
            "dma_event_log": Instrument(False, "no probe, so no event log (test)"),
        }
        return dataclasses.replace(
            info, probe_loaded=False, instruments={**info.instruments, **missing}
        )

    def devices(self):
        return []


plugin.make_target = lambda config: NoProbe()
'''

CASES = '''
import pytest

from conformance.errors import NotAvailableOnTarget, ProbeUnavailable
from conformance.lockstep import unchecked
from conformance.records import Direction

pytestmark = pytest.mark.kmap_contract


@pytest.mark.case("T-NEEDS")
@pytest.mark.needs("dma_event_log")
def test_needs_the_event_log(target, exporter):
    """Judged by the DMA event log."""
    target.allocate(exporter.name, 4096)


@pytest.mark.case("T-KSIDE")
@pytest.mark.kernel_side
def test_kernel_side(target, exporter):
    """Needs an importer in the kernel."""


@pytest.mark.case("T-PROBE")
def test_probe_unavailable(target, exporter):
    """The probe went away under the case."""
    raise ProbeUnavailable("/dev/dmabuf_probe does not exist: build and load it")


@pytest.mark.case("T-NA")
def test_not_available(target, exporter):
    """The target cannot do this at all."""
    raise NotAvailableOnTarget("kmap does not exist on this kernel")


@pytest.mark.case("T-UDMABUF")
@pytest.mark.applies_to("udmabuf")
def test_udmabuf_only(target, exporter):
    """Binds udmabuf only."""


@pytest.mark.case("T-PARTIAL")
@pytest.mark.alloc
@pytest.mark.parametrize("direction", [Direction.BIDIRECTIONAL])
def test_shadow_stops(target, exporter, direction):
    """The model loses track of a buffer made behind the checker's back."""
    checked = target.allocate(exporter.name, 4096)
    behind = unchecked(target).allocate(exporter.name, 4096)
    target.buffer_size(behind)
    target.buffer_size(checked)
'''


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scratch")
    (d / "conftest.py").write_text(CONFTEST)
    (d / "cases").mkdir()
    (d / "cases" / "test_fake.py").write_text(textwrap.dedent(CASES))
    return d


@pytest.fixture(scope="module")
def fake_run(scratch: Path) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reports = scratch / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q", "-rs",
         "--target=model", "--exporter=model:faulty-no-zeroing", f"--reports-dir={reports}",
         f"--alluredir={scratch / 'allure'}"],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc, json.loads((reports / "conformance-summary.json").read_text()), scratch


def _skip_of(summary: dict, case: str) -> str:
    return summary["messages"]["model:faulty-no-zeroing"][case]


def test_a_missing_instrument_is_a_not_checked_skip_naming_it(fake_run):
    proc, summary, _ = fake_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert _skip_of(summary, "T-NEEDS").startswith(
        "not checked: no dma_event_log (the probe's DMA event log"
    )
    assert "no probe, so no event log (test)" in _skip_of(summary, "T-NEEDS")
    kside = _skip_of(summary, "T-KSIDE")
    assert kside.startswith("not checked: kernel-side case: no probe")
    assert "dmabuf_probe not loaded (test)" in kside and "make -C qemu/probe" in kside
    assert _skip_of(summary, "T-PROBE").startswith("not checked: the probe is not available: ")
    assert _skip_of(summary, "T-NA").startswith("not checked: the target cannot do this: kmap")
    assert _skip_of(summary, "T-UDMABUF") == (
        "not applicable: contract binds udmabuf exporters, not heap"
    )


def test_an_exporter_with_a_family_not_checked_is_incomplete_naming_the_probe(fake_run):
    _, summary, _ = fake_run
    exporter = "model:faulty-no-zeroing"
    assert summary["verdicts"][exporter] == "incomplete"
    why = summary["verdict_reasons"][exporter]
    assert "kmap_contract (4 not checked: kernel-side case: no probe" in why
    family = summary["families"][exporter]["kmap_contract"]
    assert any("no dma_event_log" in w for w in family["why_not_checked"])
    assert (family["not_checked"], family["not_applicable"], family["complete"]) == (4, 1, False)
    assert summary["planned"][exporter]["T-UDMABUF"] == "not applicable"
    assert summary["instruments"]["probe"] == {
        "present": False, "detail": "dmabuf_probe not loaded (test)"
    }


def test_a_stopped_shadow_says_how_far_it_compared(fake_run):
    proc, summary, scratch = fake_run
    exporter = "model:faulty-no-zeroing"
    case = "T-PARTIAL[0]"
    assert summary["exporters"][exporter][case] == "passed"
    comparison = summary["comparisons"][exporter][case]
    assert (comparison["status"], comparison["compared"], comparison["steps"]) == (
        "partially", 1, 3
    )
    assert "no model counterpart for buf#" in comparison["why"]
    assert summary["comparison_counts"][exporter] == {
        "fully": 0, "partially": 1, "not compared": 0
    }
    md = (scratch / "reports" / "conformance-summary.md").read_text()
    assert "compared up to step 1 of 3" in md
    result = _allure_result(scratch, "T-PARTIAL")
    names = [a["name"] for a in result.get("attachments", [])]
    assert any(n.startswith("compared up to step 1 of 3") for n in names), names


def _allure_result(scratch: Path, case: str) -> dict:
    for path in (scratch / "allure").glob("*-result.json"):
        data = json.loads(path.read_text())
        if any(lab["name"] == "story" and lab["value"] == case for lab in data["labels"]):
            return data
    raise AssertionError(f"no Allure result for {case}")


def test_allure_parameters_show_names_not_reprs(fake_run):
    _, _, scratch = fake_run
    params = {p["name"]: p["value"] for p in _allure_result(scratch, "T-PARTIAL")["parameters"]}
    assert params == {"exporter": "model:faulty-no-zeroing", "direction": "BIDIRECTIONAL"}
    env = (scratch / "allure" / "environment.properties").read_text()
    assert "instrument.probe=MISSING: dmabuf_probe not loaded (test)" in env
    assert "instrument.kmsg=present" in env


def test_no_probe_is_refused_off_the_qemu_target(scratch):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q",
         "--target=model", "--no-probe", f"--reports-dir={scratch / 'r2'}"],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 4
    assert "--no-probe applies to --target=qemu" in proc.stderr
    assert "Traceback" not in proc.stderr
