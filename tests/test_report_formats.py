"""KCIDB (reports/kcidb.json) and KTAP (reports/conformance.ktap) of a run.

KCIDB data is checked with the schema of PyPI's kcidb-io; KTAP with the
kernel's own parser, tools/testing/kunit/kunit_parser.py, taken at test time
from an installed Debian linux-source tarball (GPL-2.0: extracted into a
temporary directory, never kept in this repository).
"""

from __future__ import annotations

import importlib
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.report.__main__ import main as report_main
from conformance.report.files import KCIDB_JSON, KTAP, SUMMARY_JSON
from conformance.report.kcidb import render_kcidb
from conformance.report.kcidb_paths import PathError, kcidb_path, parse_kcidb_path
from conformance.report.ktap import render_ktap
from conformance.summary import DESELECTED, SELECTED, CaseMeta, RunRecord, Summary
from tests.pytest_output import pytest_counts

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (Path.home() / ".cache" / "dmabuf-conformance" / "src", Path("/usr/src"))
INSTALL = "apt-get install linux-source-6.1"
# kcidb-io's own pattern for a test path (schema v5)
KCIDB_PATH = re.compile(r"^([a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*)?$")


# -- the kernel's KTAP parser ---------------------------------------------------------


def _kunit_dir(tmp: Path) -> Path | None:
    """tools/testing/kunit of a kernel source: an extracted tree, else the newest tarball."""
    for tree in sorted(SOURCES[0].glob("*/linux-source-*/tools/testing/kunit")):
        if (tree / "kunit_parser.py").is_file() and (tree / "kunit_printer.py").is_file():
            for name in ("kunit_parser.py", "kunit_printer.py"):
                shutil.copy(tree / name, tmp / name)
            return tmp
    tarballs = sorted(SOURCES[1].glob("linux-source-*.tar.xz"),
                      key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)], reverse=True)
    for tarball in tarballs:
        # tar(1) is three times faster than the tarfile module through the 150 MB xz.
        subprocess.run(["tar", "-xJf", str(tarball), "-C", str(tmp), "--wildcards",
                        "--strip-components=4", "*/tools/testing/kunit/kunit_p*er.py"],
                       check=False, capture_output=True, timeout=600)
        if (tmp / "kunit_parser.py").is_file() and (tmp / "kunit_printer.py").is_file():
            return tmp
    return None


@pytest.fixture(scope="session")
def kunit_parser(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    where = _kunit_dir(tmp_path_factory.mktemp("kunit"))
    if where is None:
        pytest.skip(f"no kernel source with tools/testing/kunit: {INSTALL}")
    sys.path.insert(0, str(where))
    try:
        printer = importlib.import_module("kunit_printer")
        parser = importlib.import_module("kunit_parser")
    finally:
        sys.path.remove(str(where))
    # Its printer writes to the real stdout (bound at import): keep what it says instead.
    parser.stdout = printer.Printer(io.StringIO())
    return parser


def parse_ktap(kunit_parser: ModuleType, text: str) -> Any:
    result = kunit_parser.parse_run_tests(text.splitlines())
    said = kunit_parser.stdout._output.getvalue()
    assert result.counts.errors == 0, said
    return result


def statuses(kunit_parser: ModuleType, result: Any) -> dict[str, dict[str, str]]:
    return {
        suite.name: {t.name: t.status.name for t in suite.subtests} for suite in result.subtests
    }


# -- small summaries ---------------------------------------------------------------------


def _summary() -> Summary:
    s = Summary(target="qemu", kernel="6.1.0-test",
                target_info={"machine": "aarch64", "page_size": 4096,
                             "extra": {"kernel_config_hash": "c0ffee", "kernel_build": "b1d"}},
                run=RunRecord(id="r1", started="2026-12-03T04:00:00+00:00",
                              ended="2026-12-03T04:01:00+00:00", exit_status=1,
                              command="pytest cases", kernel_build="b1d", complete=True))
    for exporter, kind in (("heap:system", "heap"), ("udmabuf", "udmabuf")):
        for case, family in (("ALLOC-001[4096]", "alloc"), ("CMO-002[TO_DEVICE]", "cmo"),
                             ("UDMABUF-001", "exporter_specific"), ("KMAP-001", "kmap"),
                             ("SYNC-002[RW+bit3]", "sync"), ("ZERO-001", "zero_fill")):
            s.plan(exporter, kind, case, SELECTED, CaseMeta(f"title of {case}", family, "MUST"))
    s.plan("heap:system", "heap", "LEAK-001", DESELECTED, CaseMeta("leak", "leak", "MUST"))
    s.plan("vgem", "vgem", "LEAK-001", DESELECTED, CaseMeta("leak", "leak", "MUST"))
    s.record("heap:system", "ALLOC-001[4096]", "passed")
    s.record("heap:system", "CMO-002[TO_DEVICE]", "failed", "diverged at step 3\n# Subtest: x\n"
             "console: Kernel panic - not syncing: VFS: no root\nnul \0 here")
    s.record("heap:system", "UDMABUF-001", "skipped", "not applicable: contract binds udmabuf")
    s.record("heap:system", "KMAP-001", "skipped", "not checked: no probe")
    s.record("heap:system", "SYNC-002[RW+bit3]", "error", "setup broke\nguest died")
    s.waive("heap:system", "ZERO-001", "erratum 42", 1)
    s.messages["heap:system"]["ZERO-001"] = "stale bytes at 0x40"
    s.record("udmabuf", "ALLOC-001[4096]", "passed")
    s.waive("udmabuf", "CMO-002[TO_DEVICE]", "SoC erratum 7", 2)
    s.record("udmabuf", "UDMABUF-001", "passed")
    return s


def _tests_by_path(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["path"]: t for t in data["tests"]}


# -- KCIDB paths ---------------------------------------------------------------------


@pytest.mark.parametrize("name, case_id, path", [
    ("heap:system", "CMO-001", "dmabuf_conformance.heap_system.CMO-001"),
    ("heap:default_cma_region", "ZERO-001",
     "dmabuf_conformance.heap_default__cma__region.ZERO-001"),
    ("udmabuf", "CMO-002[TO_DEVICE]", "dmabuf_conformance.udmabuf.CMO-002.TO__DEVICE"),
    ("vgem", "ALLOC-008[O_RDWR|O_CLOEXEC]",
     "dmabuf_conformance.vgem.ALLOC-008.O__RDWR_oO__CLOEXEC"),
    ("model:faulty-mmap-past-end", "SYNC-002[RW+bit3]",
     "dmabuf_conformance.model_faulty-mmap-past-end.SYNC-002.RW_pbit3"),
    ("ion:a.b", "X-1[a[b]]", "dmabuf_conformance.ion_a_db.X-1.a_bb_e"),
    ("weird_name", "A[]", "dmabuf_conformance._weird__name.A_b_e"),
    ("heap:ä", "Z-1[≥ 2]", "dmabuf_conformance.heap__xe4_.Z-1._x2265__s2"),
    ("heap:system@board-1", "CMO-001", "dmabuf_conformance.heap_system_aboard-1.CMO-001"),
])
def test_kcidb_paths_are_readable_and_map_back(name, case_id, path):
    assert kcidb_path(name, case_id) == path
    assert KCIDB_PATH.match(path)
    assert parse_kcidb_path(path) == (name, case_id)


@given(st.text(max_size=20), st.text(min_size=1, max_size=30))
def test_every_exporter_and_case_id_has_one_valid_path_that_maps_back(name, case_id):
    path = kcidb_path(name, case_id)
    assert KCIDB_PATH.match(path), path
    assert parse_kcidb_path(path) == (name, case_id)


@pytest.mark.parametrize("path", [
    "ltp.sem01", "dmabuf_conformance.heap_system", "dmabuf_conformance.a.b.c.d",
    "dmabuf_conformance.heap_system.A_q", "dmabuf_conformance.heap_system.A_x12",
])
def test_a_path_the_mapping_cannot_make_is_refused(path):
    with pytest.raises(PathError):
        parse_kcidb_path(path)


# -- KCIDB ---------------------------------------------------------------------------


def test_kcidb_validates_and_maps_each_outcome_to_its_status():
    from kcidb_io.schema import LATEST

    data = render_kcidb(_summary())
    LATEST.validate(data)
    tests = _tests_by_path(data)
    status = {p: t["status"] for p, t in tests.items()}
    assert status == {
        "dmabuf_conformance.heap_system.ALLOC-001.4096": "PASS",
        "dmabuf_conformance.heap_system.CMO-002.TO__DEVICE": "FAIL",
        "dmabuf_conformance.heap_system.UDMABUF-001": "SKIP",
        "dmabuf_conformance.heap_system.KMAP-001": "SKIP",
        "dmabuf_conformance.heap_system.SYNC-002.RW_pbit3": "ERROR",
        "dmabuf_conformance.heap_system.ZERO-001": "FAIL",
        "dmabuf_conformance.udmabuf.ALLOC-001.4096": "PASS",
        "dmabuf_conformance.udmabuf.CMO-002.TO__DEVICE": "FAIL",
        "dmabuf_conformance.udmabuf.UDMABUF-001": "PASS",
    }  # the deselected LEAK-001 ran nowhere, so it is no test (as in JUnit)
    assert tests["dmabuf_conformance.heap_system.UDMABUF-001"]["misc"]["skip"] == "not applicable"
    assert tests["dmabuf_conformance.heap_system.KMAP-001"]["misc"]["skip"] == "not checked"
    kmap = tests["dmabuf_conformance.heap_system.KMAP-001"]
    assert kmap["log_excerpt"] == "not checked: no probe"
    failed = tests["dmabuf_conformance.heap_system.CMO-002.TO__DEVICE"]
    assert "\0" not in failed["log_excerpt"] and "diverged at step 3" in failed["log_excerpt"]
    assert failed["misc"]["exporter"] == "heap:system"
    assert failed["misc"]["case"] == "CMO-002[TO_DEVICE]"
    assert failed["misc"]["verdict"] == "not conformant"
    assert "waived" not in failed["misc"]
    assert all(t["build_id"] == "dmabuf_conformance:r1" for t in data["tests"])


def test_kcidb_build_carries_the_kernel_build_and_config_hash():
    from kcidb_io.schema import LATEST

    data = render_kcidb(_summary())
    LATEST.validate(data)
    (checkout,), (build,) = data["checkouts"], data["builds"]
    assert build["checkout_id"] == checkout["id"] == "dmabuf_conformance:r1"
    assert build["config_name"] == build["misc"]["kernel_config_hash"] == "c0ffee"
    assert build["misc"]["kernel_build"] == "b1d"
    assert build["architecture"] == "arm64"
    assert checkout["misc"]["kernel"] == "6.1.0-test"


def test_kcidb_farm_run_has_a_build_per_board_with_its_kernel():
    from kcidb_io.schema import LATEST

    s = Summary(run=RunRecord(id="r3", complete=True), kernel="6.6.0-a")
    s.boards = {"rpi-1": {"kernel": "6.6.0-a", "kernel_config_hash": "aaa"},
                "imx-2": {"kernel": "6.1.0-b", "labgrid_coordinator": "ws://farm"}}
    for exporter in ("heap:system@rpi-1", "heap:system@imx-2", "udmabuf"):
        s.record(exporter, "ALLOC-001", "passed")
    data = render_kcidb(s)
    LATEST.validate(data)
    builds = {b["id"]: b for b in data["builds"]}
    on = {t["misc"]["exporter"]: t["build_id"] for t in data["tests"]}
    assert on == {"heap:system@rpi-1": "dmabuf_conformance:r3:rpi-1",
                  "heap:system@imx-2": "dmabuf_conformance:r3:imx-2",
                  "udmabuf": "dmabuf_conformance:r3"}
    assert builds["dmabuf_conformance:r3:rpi-1"]["config_name"] == "aaa"
    assert builds["dmabuf_conformance:r3:imx-2"]["misc"]["kernel"] == "6.1.0-b"
    assert set(_tests_by_path(data)) == {"dmabuf_conformance.heap_system_arpi-1.ALLOC-001",
                                         "dmabuf_conformance.heap_system_aimx-2.ALLOC-001",
                                         "dmabuf_conformance.udmabuf.ALLOC-001"}


def test_kcidb_waived_failure_is_a_fail_with_an_incident_of_its_waiver():
    from kcidb_io.schema import LATEST

    data = render_kcidb(_summary())
    LATEST.validate(data)
    tests = _tests_by_path(data)
    waived = {p: t for p, t in tests.items() if t["misc"].get("waived")}
    assert set(waived) == {"dmabuf_conformance.heap_system.ZERO-001",
                           "dmabuf_conformance.udmabuf.CMO-002.TO__DEVICE"}
    assert all(t["status"] == "FAIL" for t in waived.values())
    issues = {i["id"]: i for i in data["issues"]}
    assert [i["comment"] for i in data["issues"]] == ["waived (#1): erratum 42",
                                                     "waived (#2): SoC erratum 7"]
    linked = {i["test_id"]: issues[i["issue_id"]]["misc"]["reason"] for i in data["incidents"]}
    assert linked == {t["id"]: t["misc"]["waiver_reason"] for t in waived.values()}
    assert all(i["present"] for i in data["incidents"])


def test_kcidb_of_a_run_that_judged_no_exporter_is_one_error_saying_why():
    from kcidb_io.schema import LATEST

    s = Summary(run=RunRecord(id="r2", complete=False, why_incomplete="usage error: bad -m"))
    data = render_kcidb(s)
    LATEST.validate(data)
    (test,) = data["tests"]
    assert test["status"] == "ERROR" and test["path"] == "dmabuf_conformance"
    assert "usage error: bad -m" in test["log_excerpt"]


def test_kcidb_schema_rejects_what_the_renderer_must_not_write():
    # The validation the other tests rely on does catch a v4-style waived field.
    from kcidb_io.schema import LATEST

    data = render_kcidb(_summary())
    data["tests"][0]["waived"] = True
    assert not LATEST.is_valid(data)


# -- KTAP ----------------------------------------------------------------------------


def test_ktap_lines_for_each_outcome():
    text = render_ktap(_summary())
    lines = text.splitlines()
    assert lines[0] == "KTAP version 1"
    assert "1..2" in lines
    assert "    # Subtest: heap:system" in lines
    assert "    ok 1 ALLOC-001[4096]" in lines
    assert "    not ok 2 CMO-002[TO_DEVICE]" in lines
    assert "    ok 3 KMAP-001 # SKIP not checked: no probe" in lines
    assert "    not ok 4 SYNC-002[RW+bit3] # ERROR setup broke" in lines
    assert "    ok 5 UDMABUF-001 # SKIP not applicable: contract binds udmabuf" in lines
    assert "    not ok 6 ZERO-001 # TODO waived (#1): erratum 42" in lines
    assert "not ok 1 heap:system" in lines
    assert "    not ok 2 CMO-002[TO_DEVICE] # TODO waived (#2): SoC erratum 7" in lines
    assert "ok 2 udmabuf" in lines  # its one failure is waived
    assert "# vgem: no case ran (every one deselected)" in lines
    assert not any(re.match(r"\s*(not )?ok \d+ .*(LEAK-001|vgem)", line) for line in lines)


def test_ktap_parses_with_the_kernels_parser(kunit_parser):
    result = parse_ktap(kunit_parser, render_ktap(_summary()))
    assert statuses(kunit_parser, result) == {
        "heap:system": {
            "ALLOC-001[4096]": "SUCCESS", "CMO-002[TO_DEVICE]": "FAILURE",
            "KMAP-001": "SKIPPED", "SYNC-002[RW+bit3]": "FAILURE",
            "UDMABUF-001": "SKIPPED", "ZERO-001": "FAILURE",
        },
        # kunit_parser knows only the SKIP directive: a TODO (waived) line stays a failure
        "udmabuf": {"ALLOC-001[4096]": "SUCCESS", "CMO-002[TO_DEVICE]": "FAILURE",
                    "UDMABUF-001": "SUCCESS"},
    }
    heap = result.subtests[0]
    failed = next(t for t in heap.subtests if t.name == "CMO-002[TO_DEVICE]")
    # The message is that test's log, the console quote and "# Subtest:" in it kept harmless.
    assert any("diverged at step 3" in line for line in failed.log)
    assert any("not syncing" in line for line in failed.log)
    assert any("verdict: not conformant" in line for line in heap.log)
    assert (result.counts.passed, result.counts.failed, result.counts.skipped) == (3, 4, 2)


def test_ktap_of_a_run_that_judged_no_exporter_is_one_error(kunit_parser):
    s = Summary(run=RunRecord(id="r2", complete=False, why_incomplete="usage error: bad -m"))
    text = render_ktap(s)
    assert text.splitlines()[-1].startswith("not ok 1 run # ERROR run r2")
    result = parse_ktap(kunit_parser, text)
    assert result.counts.failed == 1 and result.counts.total() == 1


# -- a real run: the files agree with pytest -----------------------------------------


@pytest.fixture(scope="module")
def waived_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("reports")
    waivers = tmp / "waivers.json"
    waivers.write_text(json.dumps({"waivers": [
        {"case": "CMO-002", "reason": "erratum 42", "exporter": "model:faulty-first-map-*"},
    ]}))
    cmd = [
        sys.executable, "-m", "pytest", "cases", "--target=model",
        "--exporter=model:reference", "--exporter=model:faulty-first-map-no-clean",
        "-m", "attach_order_cmo or exporter_specific", f"--waivers={waivers}",
        f"--reports-dir={tmp}", "-p", "no:cacheprovider", "-q",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = pytest_counts(proc.stdout)
    # The run must have something of each kind, or the comparison proves little.
    assert all(counts.get(k) for k in ("passed", "failed", "skipped", "xfailed")), counts
    return tmp, counts


def test_run_writes_kcidb_that_validates_with_pytests_counts(waived_run):
    from kcidb_io.schema import LATEST

    tmp, counts = waived_run
    data = json.loads((tmp / KCIDB_JSON).read_text())
    LATEST.validate(data)
    tally = Counter(
        "WAIVED" if t["misc"].get("waived") else t["status"] for t in data["tests"]
    )
    assert tally["PASS"] == counts["passed"]
    assert tally["FAIL"] == counts["failed"]
    assert tally["WAIVED"] == counts["xfailed"] == len(data["incidents"])
    assert tally["SKIP"] == counts["skipped"]
    assert tally["ERROR"] == counts["errors"]
    summary = json.loads((tmp / SUMMARY_JSON).read_text())
    for exporter, per in summary["counts"].items():
        mine = Counter(t["status"] for t in data["tests"] if t["misc"]["exporter"] == exporter)
        assert (mine["PASS"], mine["FAIL"], mine["SKIP"], mine["ERROR"]) == (
            per["passed"], per["failed"], per["skipped"], per["error"])
    for test in data["tests"]:
        exporter, case = parse_kcidb_path(test["path"])
        assert summary["exporters"][exporter][case] == test["misc"]["outcome"]


def test_run_writes_ktap_the_kernels_parser_reads_with_pytests_counts(waived_run, kunit_parser):
    tmp, counts = waived_run
    text = (tmp / KTAP).read_text()
    result = parse_ktap(kunit_parser, text)
    todo = re.findall(r"^\s*not ok \d+ (\S+) # TODO waived \(#1\): erratum 42$", text, re.M)
    assert len(todo) == counts["xfailed"]
    assert result.counts.passed == counts["passed"]
    assert result.counts.skipped == counts["skipped"]
    # kunit_parser counts the waived (TODO) and the error lines as failed
    assert result.counts.failed == counts["failed"] + counts["xfailed"] + counts["errors"]
    summary = json.loads((tmp / SUMMARY_JSON).read_text())
    parsed = statuses(kunit_parser, result)
    assert set(parsed) == set(summary["exporters"])
    for exporter, cases in summary["exporters"].items():
        assert set(parsed[exporter]) == set(cases)
    assert sorted(todo) == sorted(summary["waived"]["model:faulty-first-map-no-clean"])


def test_summary_command_regenerates_both_and_clean_removes_them(waived_run, tmp_path, capsys):
    tmp, _ = waived_run
    shutil.copy(tmp / SUMMARY_JSON, tmp_path / SUMMARY_JSON)
    assert report_main(["summary", "--reports-dir", str(tmp_path)]) == 0
    for name in (KCIDB_JSON, KTAP):
        assert (tmp_path / name).read_text() == (tmp / name).read_text()
    assert report_main(["clean", "--reports-dir", str(tmp_path)]) == 0
    assert not (tmp_path / KCIDB_JSON).exists() and not (tmp_path / KTAP).exists()
