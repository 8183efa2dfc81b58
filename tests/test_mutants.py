"""The kernel mutant catalogue, the sweep's judgement, and its CI subset on real kernels.

The fast tests check the catalogue (headers, one per family in the CI subset,
every patch applies to the 6.1 source without fuzz) and how a kill is decided.
``test_ci_subset_is_killed_by_each_family`` (slow) is the regression guard of
detection power: it builds the subset's mutant kernels and runs each mutant's
own family on it and on the clean kernel; a mutant that its family no longer
kills fails the project's tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.mutants.catalogue import CatalogueError, load_catalogue, parse_mutant
from conformance.mutants.sweep import KILLED, RUN_ERROR, SURVIVED, SuiteRun, judge
from conformance.qemu.kernel import DEFAULT_SOURCE_TARBALL, REPO_ROOT, prepared_tree
from fixtures.plugin import FAMILIES

CATALOGUE = load_catalogue()


def test_the_catalogue_has_at_least_30_mutants_on_four_exporters() -> None:
    assert len(CATALOGUE) >= 30, [m.name for m in CATALOGUE]
    assert {m.exporter for m in CATALOGUE} >= {"heap:system", "heap:reserved", "udmabuf", "vgem"}


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_each_mutant_names_a_case_family_and_one_kernel_file(mutant) -> None:
    assert mutant.family in FAMILIES, f"{mutant.path.name}: Family {mutant.family!r} unknown"
    assert len(mutant.files) == 1, f"{mutant.path.name} changes {mutant.files}: one callback each"
    assert mutant.description and mutant.callback


# Families with a non-equivalent mutant that no CI mutant can guard on 6.1, and why.
NO_CI_GUARD = {
    "dma_constraints": "its one mutant (vgem-map-segment-unbounded) is masked: DMACON-001/002 "
    "fail on the clean 6.1 kernel for every exporter",
}


def test_the_ci_subset_has_one_mutant_per_family() -> None:
    ci = [m for m in CATALOGUE if m.ci]
    families = [m.family for m in ci]
    assert len(families) == len(set(families)), f"two CI mutants in one family: {families}"
    assert not [m.name for m in ci if m.equivalent], "an equivalent mutant cannot guard CI"
    guardable = {m.family for m in CATALOGUE if not m.equivalent} - set(NO_CI_GUARD)
    assert guardable <= set(families), f"families without a CI mutant: {guardable - set(families)}"


@pytest.fixture(scope="module")
def source_tree() -> Path:
    if not DEFAULT_SOURCE_TARBALL.is_file():
        pytest.skip(f"{DEFAULT_SOURCE_TARBALL} not installed (qemu/setup-host.sh)")
    return prepared_tree()


@pytest.mark.parametrize("mutant", CATALOGUE, ids=[m.name for m in CATALOGUE])
def test_each_patch_applies_to_the_6_1_source_without_fuzz(mutant, source_tree: Path) -> None:
    r = subprocess.run(["patch", "-d", str(source_tree), "-p1", "--dry-run", "--fuzz=0", "-f",
                        "-i", str(mutant.path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_header_without_a_family_is_refused_with_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.patch"
    bad.write_text("Mutant: x\nExporter: heap:system\nCallback: map\nDescription: d\n\n"
                   "--- a/f.c\n+++ b/f.c\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(CatalogueError, match=r"x\.patch: header lacks Family"):
        parse_mutant(bad)


def _run(outcomes: dict[str, str], problem: str = "") -> SuiteRun:
    families = {"CMO-001": "attach_order_cmo", "STREAM-001": "streaming_dma",
                "GEN-001[sync-direction]": "generated", "ALLOC-001": "alloc"}
    return SuiteRun(reports=Path("/r"), outcomes=outcomes, families=families,
                    messages={c: f"{c} failed: expected a sync_single_for_cpu" for c in outcomes},
                    problem=problem)


def test_a_case_failing_on_the_clean_kernel_cannot_kill() -> None:
    mutant = CATALOGUE[0]
    clean = _run({"CMO-001": "failed", "STREAM-001": "passed", "ALLOC-001": "passed"})
    mutated = _run({"CMO-001": "failed", "STREAM-001": "passed", "ALLOC-001": "passed"})
    result = judge(mutant, clean, mutated)
    assert result.status == SURVIVED and result.masked == ["CMO-001"] and not result.killers


def test_kills_name_the_family_and_whether_only_generated_or_instrument_saw_them() -> None:
    mutant = next(m for m in CATALOGUE if m.family == "streaming_dma")
    clean = _run({"STREAM-001": "passed", "GEN-001[sync-direction]": "passed",
                  "ALLOC-001": "passed"})
    result = judge(mutant, clean, _run({"STREAM-001": "failed", "ALLOC-001": "passed",
                                        "GEN-001[sync-direction]": "failed"}))
    assert result.status == KILLED and result.by_own_family and not result.only_generated
    assert result.killers == ["STREAM-001", "GEN-001[sync-direction]"]
    assert result.instrument_only  # both messages cite only the event log
    only_gen = judge(mutant, clean, _run({"STREAM-001": "passed", "ALLOC-001": "passed",
                                          "GEN-001[sync-direction]": "failed"}))
    assert only_gen.only_generated and not only_gen.by_own_family


def test_an_incomplete_run_decides_nothing() -> None:
    result = judge(CATALOGUE[0], _run({"CMO-001": "passed"}),
                   _run({}, problem="the run did not complete: guest did not boot"))
    assert result.status == RUN_ERROR and "did not boot" in result.error


@pytest.mark.slow
def test_ci_subset_is_killed_by_each_family(tmp_path: Path) -> None:
    if not DEFAULT_SOURCE_TARBALL.is_file():
        pytest.skip(f"{DEFAULT_SOURCE_TARBALL} not installed (qemu/setup-host.sh)")
    proc = subprocess.run([sys.executable, "-m", "conformance.mutants", "sweep", "--ci",
                           "--reports-dir", str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800)
    matrix_file = tmp_path / "mutants.json"
    assert matrix_file.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    matrix = json.loads(matrix_file.read_text())
    assert matrix["mode"] == "ci"
    assert len(matrix["mutants"]) == sum(m.ci for m in CATALOGUE)
    assert matrix["goal_met"], "\n".join(matrix["shortfalls"]) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 0
