from __future__ import annotations

import json

import pytest

from conformance.summary import CaseMeta, Summary


def test_worst_outcome_of_a_case_wins():
    s = Summary(target="model", kernel="model")
    s.record("heap:system", "ALLOC-001", "passed")
    s.record("heap:system", "ALLOC-001", "error")  # teardown failed after a pass
    s.record("heap:system", "ALLOC-001", "passed")
    assert s.exporters["heap:system"]["ALLOC-001"] == "error"


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="xpassed"):
        Summary().record("heap:system", "ALLOC-001", "xpassed")


def test_written_file_has_the_documented_schema(tmp_path):
    s = Summary(target="qemu", kernel="6.1.0")
    s.record("udmabuf", "MMAP-002", "failed")
    s.record("heap:system", "MMAP-002", "passed")
    s.cases["MMAP-002"] = CaseMeta("private mapping refused", "mmap", "MUST")
    path = s.write(tmp_path / "reports" / "conformance-summary.json")
    data = json.loads(path.read_text())
    assert data["target"] == "qemu" and data["kernel"] == "6.1.0"
    assert data["exporters"] == {
        "heap:system": {"MMAP-002": "passed"},
        "udmabuf": {"MMAP-002": "failed"},
    }
    assert data["cases"]["MMAP-002"]["level"] == "MUST"
    assert s.counts()["udmabuf"]["failed"] == 1
