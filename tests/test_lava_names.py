"""LAVA names of case ids and exporters: accepted by LAVA, readable, and reversible."""

from __future__ import annotations

import re

import pytest

from conformance.report.lava import (
    LavaNameError,
    case_id_of,
    case_name,
    exporter_of,
    set_name,
)

# What LAVA's server takes in a result URL (lava_results_app/urls.py, 2023.01);
# the dispatcher also refuses white space, '=' and '>' in a signal.
LAVA_CASE = re.compile(r"[-_a-zA-Z0-9.+]+")
LAVA_SET = re.compile(r"[-_a-zA-Z0-9.]+")


@pytest.mark.parametrize("case_id, name", [
    ("ALLOC-001", "ALLOC-001"),
    ("CMO-002[TO_DEVICE]", "CMO-002.TO_DEVICE"),
    ("ALLOC-002[3-pages+17B]", "ALLOC-002.3-pages+17B"),
    ("ALLOC-002[1B]", "ALLOC-002.1B"),
    ("GEN-001[sync-direction]", "GEN-001.sync-direction"),
    ("TWOIMP-001[coherent-BIDIRECTIONAL+noncoherent-TO_DEVICE-A-first]",
     "TWOIMP-001.coherent-BIDIRECTIONAL+noncoherent-TO_DEVICE-A-first"),
    ("X-1[a.b]", "X-1.a.2Eb"),
    ("X-1[a b/c=d>e]", "X-1.a.20b.2Fc.3Dd.3Ee"),
    ("X-1[[nested]]", "X-1..5Bnested.5D"),
    ("X-1[]", "X-1."),
    ("X-1[µ]", "X-1..C2.B5"),
])
def test_case_names_are_readable_lava_names_and_map_back(case_id, name):
    assert case_name(case_id) == name
    assert LAVA_CASE.fullmatch(name)
    assert case_id_of(name) == case_id


@pytest.mark.parametrize("exporter_name, name", [
    ("heap:system", "heap.system"),
    ("heap:reserved", "heap.reserved"),
    ("udmabuf", "udmabuf"),
    ("vgem", "vgem"),
    ("ion:system_contig", "ion.system_contig"),
    ("model:faulty-no-clean", "model.faulty-no-clean"),
    ("heap:vendor+x:y", "heap.vendor.2Bx.3Ay"),
])
def test_exporter_sets_are_lava_set_names_and_map_back(exporter_name, name):
    assert set_name(exporter_name) == name
    assert set_name(exporter_name, waived=True) == name + "-waived"
    for waived in (False, True):
        got = set_name(exporter_name, waived)
        assert LAVA_SET.fullmatch(got)
        assert exporter_of(got) == (exporter_name, waived)


@pytest.mark.parametrize("bad, words", [
    ("CMO 002", "head 'CMO 002'"),
    ("CMO.002[x]", "head 'CMO.002'"),
    ("[x]", "non-empty"),
    ("", "non-empty"),
])
def test_case_ids_without_a_lava_name_say_why(bad, words):
    with pytest.raises(LavaNameError, match=re.escape(words)):
        case_name(bad)


@pytest.mark.parametrize("bad, words", [
    ("X-1.a.2", "two upper-case hex digits"),
    ("X-1.a.zz", "two upper-case hex digits"),
    ("X-1.a[b", "'[' is not allowed"),
    ("X-1..FF", "not UTF-8"),
    ("X 1", "head 'X 1'"),
])
def test_names_that_are_not_ours_are_refused(bad, words):
    with pytest.raises(LavaNameError, match=re.escape(words)):
        case_id_of(bad)


def test_an_exporter_named_like_a_waived_set_is_refused():
    with pytest.raises(LavaNameError, match="-waived"):
        set_name("heap:x-waived")
    with pytest.raises(LavaNameError, match="head 'a b'"):
        set_name("a b:c")
