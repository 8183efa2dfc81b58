"""GEN-001 finds and shrinks a bug in faulty model exporters and passes on the reference.

Runs the case as a user would (``pytest cases/test_generated.py``), then runs
the reproducer it printed, as printed, and checks that it fails the same way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAULTY = ["model:faulty-sgt-cache-no-cmo", "model:faulty-negative-kmap-cnt"]


def run_pytest(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--target=model", f"--reports-dir={tmp_path}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> subprocess.CompletedProcess:
    tmp = tmp_path_factory.mktemp("gen")
    exporters = [f"--exporter={e}" for e in ["model:reference", *FAULTY]]
    return run_pytest(
        ["cases/test_generated.py", "--generated-budget=10", "-rA", *exporters], tmp
    )


def reproducer(output: str, exporter: str) -> str:
    # the failure section of one exporter, up to the divergence message
    section = output.split(f"[{exporter}]", 1)[1]
    code = section.split("Ready-to-run reproducer:\n\n", 1)[1].split("\nDivergence:", 1)[0]
    return code


def test_reference_passes(generated_run):
    assert re.search(r"PASSED .*test_generated.py.*\[model:reference\]", generated_run.stdout), (
        generated_run.stdout[-3000:]
    )


@pytest.mark.parametrize("faulty", FAULTY)
def test_faulty_exporter_is_found_and_shrunk(generated_run, faulty, tmp_path):
    exporter = faulty
    out = generated_run.stdout
    assert re.search(rf"FAILED .*test_generated.py.*\[{re.escape(exporter)}\]", out), out[-3000:]
    code = reproducer(out, exporter)
    calls = [line for line in code.splitlines() if line.startswith("    target.")
             or re.match(r"    \w+ = target\.", line)]  # fmt: skip
    assert 1 <= len(calls) <= 30, code  # shrunk: a short sequence, not the whole run
    assert "# <- diverges from the reference model" in code

    # the reproducer is a ready-to-run case: it fails on the faulty exporter ...
    case = tmp_path / "repro" / "test_repro.py"
    case.parent.mkdir()
    case.write_text(code)
    # outside the repository's tree its conftest.py is not read: load the plugin by name
    plugins = ["-p", "fixtures.plugin", "-p", "fixtures.reporting"]
    failing = run_pytest([str(case), *plugins, f"--exporter={exporter}"], tmp_path)
    assert failing.returncode == 1 and "diverged from" in failing.stdout, failing.stdout[-3000:]
    # ... and passes on the reference
    passing = run_pytest([str(case), *plugins, "--exporter=model:reference"], tmp_path)
    assert passing.returncode == 0, passing.stdout[-3000:]


def test_gen_001_is_selected_by_its_family_marker_and_only_by_it(tmp_path):
    generated = run_pytest(["cases", "-m", "generated", "--collect-only"], tmp_path)
    ids = [line for line in generated.stdout.splitlines() if "::" in line]
    assert ids and all("test_generated.py::" in i for i in ids), generated.stdout[-2000:]
    others = run_pytest(
        ["cases", "-m", "mmap or sync or exporter_specific", "--collect-only"], tmp_path
    )
    assert "::" in others.stdout and "test_generated.py" not in others.stdout


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
        gen(target=NoDmaApiDebug(), exporter=ExporterInfo("model:reference", "model"),
            generated_budget=budget)  # fmt: skip
    # with every instrument it is a pass (returns)
    gen(target=ModelTarget(), exporter=ExporterInfo("model:reference", "model"),
        generated_budget=budget)  # fmt: skip
