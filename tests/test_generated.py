"""GEN-001 reports each divergence class as its own result, shrunk, and passes on the reference.

Runs the case as a user would (``pytest cases/test_generated.py``) on the
reference, on a model exporter with two unrelated faults and on each of those
faults alone, with a waiver file naming one class; then reads the summary,
and runs the reproducers it printed, as printed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.generated.classes import NEVER_WRITTEN, complaint_classes, step_difference
from conformance.report.waivers import parse_waivers

REPO = Path(__file__).resolve().parents[1]
TWO_FAULTS = "model:faulty-two-faults"
# each fault of the two-fault exporter alone, and the class it must give
SINGLE = {
    "model:faulty-cpu-access-skips-mapped": "sync-dma-calls",
    "model:faulty-mmap-past-end": "mmap-errno",
}
WAIVERS = {"waivers": [
    {"case": "GEN-001[sync-dma-calls]", "reason": "known: mapped attachments not synced",
     "exporter": TWO_FAULTS},
    {"case": "GEN-001[mmap-errno]", "reason": "known: no mmap bounds check",
     "exporter": "model:faulty-mmap-past-end"},
]}  # fmt: skip


def run_pytest(args: list[str], reports: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--target=model", f"--reports-dir={reports}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, summary: dict, seconds: float) -> None:
        self.proc, self.summary, self.seconds = proc, summary, seconds

    def results(self, exporter: str) -> dict[str, str]:
        return self.summary["exporters"][exporter]

    def classes(self, exporter: str) -> dict[str, str]:
        return {c: o for c, o in self.results(exporter).items() if c.startswith("GEN-001[")}

    def message(self, exporter: str, case: str) -> str:
        return self.summary["messages"][exporter][case]


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("gen")
    waivers = tmp / "waivers.json"
    waivers.write_text(json.dumps(WAIVERS))
    exporters = [f"--exporter={e}" for e in ["model:reference", TWO_FAULTS, *SINGLE]]
    start = time.monotonic()
    proc = run_pytest(["cases/test_generated.py", "-rA", f"--waivers={waivers}", *exporters], tmp)
    seconds = time.monotonic() - start
    summary = json.loads((tmp / "conformance-summary.json").read_text())
    return Run(proc, summary, seconds)


def test_reference_passes(generated_run):
    assert generated_run.results("model:reference") == {"GEN-001": "passed"}, (
        generated_run.proc.stdout[-3000:]
    )


def test_two_faults_give_two_distinct_results(generated_run):
    classes = generated_run.classes(TWO_FAULTS)
    assert classes == {"GEN-001[sync-dma-calls]": "failed", "GEN-001[mmap-errno]": "failed"}, (
        generated_run.proc.stdout[-3000:]
    )
    # GEN-001 itself is the search, which ran to its budget
    assert generated_run.results(TWO_FAULTS)["GEN-001"] == "passed"
    assert "explored" in generated_run.message(TWO_FAULTS, "GEN-001")


@pytest.mark.parametrize("faulty, cls", sorted(SINGLE.items()))
def test_a_single_fault_gives_exactly_one_class(generated_run, faulty, cls):
    assert list(generated_run.classes(faulty)) == [f"GEN-001[{cls}]"]
    # ... the same class as that fault gives beside the other one
    assert f"GEN-001[{cls}]" in generated_run.classes(TWO_FAULTS)


def test_a_waiver_for_one_class_does_not_hide_the_other(generated_run):
    summary = generated_run.summary
    assert list(summary["waived"][TWO_FAULTS]) == ["GEN-001[sync-dma-calls]"]
    assert summary["verdicts"][TWO_FAULTS] == "not conformant"
    assert "GEN-001[mmap-errno]" in summary["verdict_reasons"][TWO_FAULTS]
    assert "GEN-001[sync-dma-calls]" not in summary["verdict_reasons"][TWO_FAULTS]
    # pytest fails the item for the unwaived class; the fully waived one is xfailed
    out = generated_run.proc.stdout
    assert re.search(rf"FAILED .*test_generated.py.*\[{re.escape(TWO_FAULTS)}\]", out), out[-3000:]
    assert re.search(r"XFAIL .*test_generated.py.*\[model:faulty-mmap-past-end\]", out), out[-3000:]
    mmap_alone = summary["counts"]["model:faulty-mmap-past-end"]
    assert (mmap_alone["failed"], mmap_alone["waived"]) == (1, 1)
    assert summary["unused_waivers"] == []
    assert generated_run.proc.returncode == 1


def test_the_waiver_syntax_for_one_class():
    waivers = parse_waivers({"waivers": [
        {"case": "GEN-001[sync-direction]", "reason": "known"},
        {"case": "GEN-001", "reason": "all of them", "exporter": "heap:*"},
    ]})  # fmt: skip
    one, every = waivers.waivers
    assert one.matches("udmabuf", "GEN-001[sync-direction]", "6.1")
    assert not one.matches("udmabuf", "GEN-001[mmap-errno]", "6.1")
    assert not one.matches("udmabuf", "GEN-001", "6.1")
    assert every.matches("heap:system", "GEN-001[mmap-errno]", "6.1")
    assert waivers.match("udmabuf", "GEN-001[sync-dma-calls]", "6.1") is None


def test_each_class_says_how_long_it_took_and_shows_its_sequence(generated_run):
    for faulty in [TWO_FAULTS, *SINGLE]:
        for case in generated_run.classes(faulty):
            text = generated_run.message(faulty, case)
            # shrunk, or cut by the shrink budget with the shortest sequence seen
            took = (r"Found after [\d.]+ s of exploration \(\d+ sequences\); "
                    r"(shrunk in|shrink budget spent after) [\d.]+ s")  # fmt: skip
            assert re.search(took, text), text
            assert "Minimal sequence, step by step:" in text
            assert "# <- diverges from the reference model" in text
        search = generated_run.message(faulty, "GEN-001")
        found = re.search(r"explored \d+ sequences in ([\d.]+) s; shrinking took ([\d.]+) s",
                          search)  # fmt: skip
        assert found, search
        # the whole search on one faulty exporter, shrinking included, stays under a minute
        assert float(found[1]) + float(found[2]) < 60, search
    assert generated_run.seconds < 4 * 60


def reproducer(text: str) -> str:
    code = text.split("Ready-to-run reproducer:\n\n", 1)[1]
    return code


@pytest.mark.parametrize("cls", sorted(SINGLE.values()))
def test_the_reproducer_of_each_class_is_a_ready_to_run_case(generated_run, cls, tmp_path):
    code = reproducer(generated_run.message(TWO_FAULTS, f"GEN-001[{cls}]"))
    calls = [line for line in code.splitlines() if re.match(r"    (\w+ = )?target\.", line)]
    assert 1 <= len(calls) <= 20, code  # shrunk: a short sequence, not the whole run
    case = tmp_path / "repro" / "test_repro.py"
    case.parent.mkdir()
    case.write_text(code)
    # outside the repository's tree its conftest.py is not read: load the plugin by name
    plugins = ["-p", "fixtures.plugin", "-p", "fixtures.reporting"]
    failing = run_pytest([str(case), *plugins, f"--exporter={TWO_FAULTS}"], tmp_path)
    assert failing.returncode == 1 and "diverged from" in failing.stdout, failing.stdout[-3000:]
    passing = run_pytest([str(case), *plugins, "--exporter=model:reference"], tmp_path)
    assert passing.returncode == 0, passing.stdout[-3000:]


def test_the_shrink_budget_bounds_shrinking():
    """An exporter whose repro takes long to shrink stops at the budget, with the best so far."""
    from conformance.targets.model import ModelTarget
    from fixtures.generated import GeneratedBudget
    from fixtures.generated_machine import explore

    budget = GeneratedBudget(seconds=3, examples=200, steps=25, shrink_seconds=0.5,
                             shrink_total=0.5)  # fmt: skip
    start = time.monotonic()
    result = explore(ModelTarget(), "model:faulty-first-map-no-clean", budget)
    wall = time.monotonic() - start
    findings = result.findings
    assert list(findings.found) == ["map-dma-calls"]
    finding = findings.found["map-dma-calls"]
    assert not finding.shrunk and finding.shrink_seconds < 1.5, finding.shrink_seconds
    assert "shrink budget spent" in finding.message("GEN-001[map-dma-calls]")
    assert finding.program.calls >= 1 and "# <- diverges" in finding.program.render("X")
    assert wall < 3 + 3, wall


def test_gen_001_is_selected_by_its_family_marker_and_only_by_it(tmp_path):
    generated = run_pytest(["cases", "-m", "generated", "--collect-only"], tmp_path)
    ids = [line for line in generated.stdout.splitlines() if "::" in line]
    assert ids and all("test_generated.py::" in i for i in ids), generated.stdout[-2000:]
    others = run_pytest(
        ["cases", "-m", "mmap or sync or exporter_specific", "--collect-only"], tmp_path
    )
    assert "::" in others.stdout and "test_generated.py" not in others.stdout


class _Node:
    """What the case needs of ``request.node``: a stash for its sub-results."""

    def __init__(self) -> None:
        self.stash = pytest.Stash()


class _Request:
    def __init__(self) -> None:
        self.node = _Node()


def test_no_divergence_is_not_a_pass_where_an_instrument_is_missing():
    """Without DMA-API debug (or the event log, the probe, bouncing) GEN-001 ends "not checked"."""
    import dataclasses

    from cases.test_generated import test_random_operation_sequences_agree_with_the_model as gen
    from conformance.records import ExporterInfo, Instrument
    from conformance.skips import NOT_CHECKED
    from conformance.targets.model import ModelTarget
    from fixtures.generated import GeneratedBudget

    class NoDmaApiDebug(ModelTarget):
        def info(self):  # type: ignore[no-untyped-def]
            info = super().info()
            off = Instrument(False, "CONFIG_DMA_API_DEBUG is not set (this test's stand-in)")
            return dataclasses.replace(info, instruments={**info.instruments, "dma_api_debug": off})

    budget = GeneratedBudget(seconds=1.0, examples=10, steps=5)
    with pytest.raises(pytest.skip.Exception, match=NOT_CHECKED + ".*no dma_api_debug"):
        gen(request=_Request(), target=NoDmaApiDebug(),
            exporter=ExporterInfo("model:reference", "model"), generated_budget=budget)  # fmt: skip
    # with every instrument it is a pass (returns)
    gen(request=_Request(), target=ModelTarget(),
        exporter=ExporterInfo("model:reference", "model"), generated_budget=budget)  # fmt: skip


def test_classes_name_the_contract_not_the_symptom():
    # data nobody wrote since allocation: the zero-fill contract, whoever reads it
    for op in ("cpu_read", "device_read", "vmap_read"):
        d = step_difference("x", op, "ok", "ok", b"\0\1", b"\0\0", lambda i: NEVER_WRITTEN)
        assert d.name == "zero-fill-data"
    d = step_difference("cpu-read", "cpu_read", "ok", "ok", b"\1", b"\2", lambda i: "device")
    assert d.name == "device-to-cpu-data"
    assert step_difference("mmap", "mmap", "ok", "EINVAL", None, None).name == "mmap-errno"
    assert step_difference("sync", "dma_events", "ok", "ok", 1, 2).name == "sync-dma-calls"
    counters = step_difference(
        "sync", "counters", "ok", "ok", {"kmap_count": 0, "kernel_mappings": 1},
        {"kmap_count": 1, "kernel_mappings": 0}, note="counter kmap_count: target 0, reference 1",
    )  # fmt: skip
    assert counters.name == "counter-kmap-count"


def test_kernel_complaints_are_classed_by_what_they_say():
    kernel = (
        "DMA-API: dmabuf_probe coherent: device driver syncs DMA memory with different "
        "direction [device address=0x1000] [size=4096 bytes] [mapped with DMA_TO_DEVICE] "
        "[synced with DMA_FROM_DEVICE]\n"
        "WARNING: CPU: 0 PID: 77 at kernel/dma/debug.c:1071 check_sync+0x1b0/0x6c0"
    )
    assert complaint_classes(kernel, 1, 1, "sync") == ["sync-direction"]
    # only the WARNING line of the report: by the function that raised it
    assert complaint_classes(kernel.splitlines()[1], 1, 1, "sync") == ["sync-direction"]
    model = "DMA-API: dma_unmap_sg on udmabuf-misc: direction BIDIRECTIONAL differs from the map's"
    assert complaint_classes(model, 0, 1, "close") == ["unmap-direction"]
    other = "WARNING: release: buffer 1001 still mapped in the kernel (vmap_count 1)"
    assert complaint_classes(other, 1, 0, "close") == ["close-warning"]
    assert complaint_classes("", 0, 2, "map") == ["dma-debug"]


def test_no_private_hypothesis_attribute_is_used():
    for path in ("cases/test_generated.py", "fixtures/generated_machine.py",
                 "fixtures/generated.py"):  # fmt: skip
        text = (REPO / path).read_text()
        assert "_hypothesis_internal" not in text and "TestCase.settings" not in text, path
