"""The kernel matrix's side-by-side tables, from per-kernel summaries (no guest booted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance import matrix
from conformance.matrix import FIXED, NEW, NOT_CHECKED, STILL, KernelRun


def _run(release: str, results: dict[str, dict[str, str]],
         verdicts: dict[str, str] | None = None, **run: Any) -> KernelRun:
    summary = {"run": {"complete": True, **run}, "exporters": results,
               "verdicts": verdicts or {e: "conformant" for e in results}}
    return KernelRun(source=f"/usr/src/linux-source-{release}.tar.xz", release=release,
                     series=matrix.series_of(release), reports=f"r/{release}",
                     exit_status=0, summary=summary)


def test_changes_against_the_baseline() -> None:
    assert matrix.change("failed", "passed") == FIXED
    assert matrix.change("failed", "failed") == STILL
    assert matrix.change("passed", "failed") == NEW
    assert matrix.change(None, "failed") == NEW  # an exporter the baseline lacks (ION)
    assert matrix.change("failed", "skipped") == NOT_CHECKED
    assert matrix.change("failed", None) == NOT_CHECKED
    assert matrix.change("passed", "passed") == ""
    assert matrix.change("skipped", "passed") == ""


def test_side_by_side_counts_and_changes(tmp_path: Path) -> None:
    runs = [
        _run("5.10.223", {"ion:ion_system_heap": {"SYNC-001": "failed"},
                          "udmabuf": {"CMO-001": "failed", "MMAP-005": "passed"}},
             {"ion:ion_system_heap": "not conformant", "udmabuf": "not conformant"}),
        _run("6.1.192", {"udmabuf": {"CMO-001": "failed", "MMAP-005": "failed"}},
             {"udmabuf": "not conformant"}),
        _run("6.12.118", {"udmabuf": {"CMO-001": "failed", "MMAP-005": "passed"}},
             {"udmabuf": "not conformant"}),
    ]
    js, md = matrix.write_tables(runs, tmp_path, "6.1")
    doc = json.loads(js.read_text())
    assert doc["baseline"] == "6.1.192"
    assert doc["counts"]["6.1.192"]["udmabuf"] == {"passed": 0, "failed": 2, "skipped": 0,
                                                   "error": 0}
    assert doc["changes"]["6.12.118"] == {"udmabuf CMO-001": STILL, "udmabuf MMAP-005": FIXED}
    assert doc["changes"]["5.10.223"]["ion:ion_system_heap SYNC-001"] == NEW
    assert doc["results"]["udmabuf"]["MMAP-005"] == {"5.10.223": "passed", "6.1.192": "failed",
                                                    "6.12.118": "passed"}
    text = md.read_text()
    assert "| udmabuf | 1 / 1 / 0 | 0 / 2 / 0 | 1 / 1 / 0 |" in text
    assert "| ion:ion_system_heap | 0 / 1 / 0 | – | – |" in text
    assert "| udmabuf | MMAP-005 | pass | **FAIL** | pass | fixed | fixed |" in text
    assert "| 6.12.118 | 1 | 1 | 0 | 0 |" in text  # fixed, still there, new, not checked
    assert "| 5.10.223 | 1 | 1 | 1 | 0 |" in text
    assert matrix.exit_status(runs) == 1


def test_a_kernel_without_a_valid_verdict_makes_the_matrix_exit_2(tmp_path: Path) -> None:
    good = _run("6.1.192", {"udmabuf": {"CMO-001": "passed"}})
    assert matrix.exit_status([good]) == 0
    broken = KernelRun(source="/usr/src/linux-source-5.10.tar.xz", release="5.10.223",
                       reports=str(tmp_path / "none"))
    matrix._load(broken)
    assert "no summary" in broken.error
    assert matrix.exit_status([good, broken]) == 2
    incomplete = _run("6.12.118", {"udmabuf": {"CMO-001": "passed"}},
                      {"udmabuf": "incomplete"})
    assert matrix.exit_status([good, incomplete]) == 2
    waived = _run("6.12.118", {"udmabuf": {"CMO-001": "failed"}},
                  {"udmabuf": "conformant with waivers"})
    assert matrix.exit_status([good, waived]) == 0  # a waiver is an accepted deviation
    md = matrix.render_markdown(matrix.build_matrix([good, broken], "6.1"))
    assert "no valid verdict: no summary" in md


def test_table_only_reloads_what_was_run(tmp_path: Path) -> None:
    for release, outcome in (("6.12.118", "passed"), ("6.1.192", "failed")):
        d = tmp_path / "matrix" / release
        d.mkdir(parents=True)
        run = _run(release, {"vgem": {"VMAP-002": outcome}})
        run.reports = str(d)
        (d / matrix.SUMMARY_JSON).write_text(json.dumps(run.summary))
        (d / matrix.RUN_RECORD).write_text(json.dumps(run.to_json()))
    runs = matrix.load_existing(tmp_path / "matrix")
    assert [r.release for r in runs] == ["6.1.192", "6.12.118"]  # by version, not by name
    assert matrix.main(["--table-only", "--reports-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "matrix.json").read_text())
    assert doc["changes"]["6.12.118"] == {"vgem VMAP-002": FIXED}


def test_missing_sources_are_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = matrix.main(["--kernel-src", str(tmp_path / "nope.tar.xz"),
                          "--reports-dir", str(tmp_path)])
    assert status == 2
    assert "kernel source not found" in capsys.readouterr().err


def test_pytest_arguments_go_after_a_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        matrix.main(["-m", "sync"])  # a typo for "-- -m sync" must not run three kernels
    assert exc.value.code == 2
    assert "pytest's go after --" in capsys.readouterr().err
