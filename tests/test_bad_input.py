"""Bad input at volume (BADIN-001): the generator, the model's answers, the tally, the case.

The generator must be reproducible and cover every category of each kind;
inputs must survive the guest channel unchanged; the reference model must
refuse every input built to break a rule, with the errno the 6.1 code gives
(spot checks below, each against the kernel line the model cites), and leave
nothing open; a faulty exporter that accepts invalid input must fail the case.
The slow test runs batches in a QEMU guest: the real kernel must agree with
the model except for the system heap's known finding.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conformance.bad_input import inputs as I  # noqa: N812
from conformance.bad_input.compare import Tally
from conformance.bad_input.generator import categories, generate
from conformance.bad_input.inputs import Input, decode
from conformance.targets.model import ModelTarget

REPO = Path(__file__).resolve().parents[1]
KINDS = {"heap": "model:reference", "udmabuf": "model:reference-udmabuf",
         "vgem": "model:reference-vgem"}  # fmt: skip
PAGE = 4096
RW = I.PROT_READ | I.PROT_WRITE


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_generator_is_deterministic_and_the_seed_matters(kind):
    first = [i.encode() for i in generate(kind, 600, seed=7)]
    assert first == [i.encode() for i in generate(kind, 600, seed=7)]
    assert first != [i.encode() for i in generate(kind, 600, seed=8)]
    assert first[:100] == [i.encode() for i in generate(kind, 100, seed=7)]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_category_gets_its_share_and_breaks_rules(kind):
    inputs = generate(kind, 10_000, seed=0)
    per = Counter(i.category for i in inputs)
    assert set(per) == set(categories(kind))
    assert max(per.values()) - min(per.values()) <= 1
    # overlapping items and unknown flag bits: udmabuf of 6.1 accepts both, so a
    # stricter exporter shows as a mismatch, not as an accepted invalid input
    accepted_by_6_1 = {"udmabuf-overlap", "udmabuf-flags"}
    for name in set(per) - accepted_by_6_1:
        assert any(i.must_fail for i in inputs if i.category == name), name


def test_unknown_kinds_have_no_categories():
    with pytest.raises(ValueError, match="ion"):
        categories("ion")


@pytest.mark.parametrize("kind", list(KINDS))
def test_inputs_cross_the_guest_channel_unchanged(kind):
    for inp in generate(kind, 2000, seed=3):
        raw = json.loads(json.dumps(inp.encode()))
        op, args = decode(raw)
        assert op == inp.op
        assert Input(inp.category, op, tuple(args), inp.must_fail).encode() == inp.encode()
        assert inp.describe().startswith(f"{op}(")


def test_malformed_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="unknown bad-input operation"):
        Input("x", "reboot", ())
    with pytest.raises(ValueError, match="sync takes"):
        Input("x", "sync", (1,))
    with pytest.raises(ValueError, match="not an encoded bad input"):
        decode(["reboot", 1])


def test_udmabuf_item_lists_cross_as_runs_of_equal_items():
    """1025 equal items are one run on the wire, not 7.5 KB that an emulated guest parses
    and packs item by item; the runner packs what the items say, in their order."""
    from conformance.bad_input.local import _UDMABUF_ITEM, _pack_items

    items = [[0, 0, PAGE]] * 1025 + [[1, PAGE, 2 * PAGE]] * 2 + [[0, 0, PAGE]]
    inp = Input("udmabuf-limits", "udmabuf_list",
                (0, 1028, [["memfd", 4 * PAGE, 2]] * 2, items, "ok"))  # fmt: skip
    wire = json.loads(json.dumps(inp.encode()))
    assert wire[4] == [[1025, 0, 0, PAGE], [2, 1, PAGE, 2 * PAGE], [1, 0, 0, PAGE]]
    assert len(json.dumps(wire)) < 200
    op, args = decode(wire)
    assert args[3] == items
    numbers = [7, 9]
    assert _pack_items(numbers, args[3]) == b"".join(
        _UDMABUF_ITEM.pack(numbers[i], 0, off, n) for i, off, n in items)
    for bad in ([[0, 0, 0, PAGE]], [[1, 0, 0]], "items", [["2", 0, 0, PAGE]]):
        with pytest.raises(ValueError, match="udmabuf"):
            decode(["udmabuf_list", 0, 1, [["memfd", PAGE, 2]], bad, "ok"])


def test_descriptions_stay_short_for_long_lists():
    inp = Input("udmabuf-limits", "udmabuf_list",
                (0, 1025, [["memfd", 4 * PAGE, 2]], [[0, 0, PAGE]] * 1025, "ok"))  # fmt: skip
    assert "[[0, 0, 4096]] * 1025" in inp.describe()
    assert len(inp.describe()) < 200
    mmap = Input("mmap-prot-flags", "mmap", ("rw", PAGE, 0, RW, I.MAP_SHARED_VALIDATE | 0x80))
    assert "PROT_READ|WRITE" in mmap.describe() and "MAP_SHARED_VALIDATE|0x80" in mmap.describe()


def test_generated_request_numbers_are_never_the_real_ones():
    for kind in ("heap", "udmabuf"):
        for inp in generate(kind, 3000, seed=1):
            if inp.op == "dmabuf_ioctl":
                assert tuple(inp.args) not in I.DMA_BUF_REQUESTS
            if inp.op == "udmabuf_ioctl":
                assert tuple(inp.args) not in I.UDMABUF_REQUESTS
    assert ("w", 0, 8) in I.DMA_BUF_REQUESTS  # DMA_BUF_IOCTL_SYNC, _IOW('b', 0, u64)


# -- the model's answers ----------------------------------------------------------------
def answers(kind: str, batch: list[Input]) -> list[int]:
    model = ModelTarget(list_profiles=True)
    out = model.bad_input_batch(KINDS[kind], [i.encode() for i in batch])
    # the batch leaves nothing open: fds, sync files, buffers
    assert not model._fds and not model._sync_files and not model._live
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_reference_refuses_every_input_built_to_be_invalid(kind):
    inputs = generate(kind, 10_000, seed=0)
    out = answers(kind, inputs)
    accepted = [i.describe() for i, e in zip(inputs, out) if i.must_fail and e == 0]
    assert not accepted, accepted[:5]
    # and accepts some: the valid neighbours are there to be accepted
    assert sum(e == 0 for e in out) > 100


def _one(kind: str, op: str, *args) -> int:
    return answers(kind, [Input("spot", op, tuple(args))])[0]


@pytest.mark.parametrize(
    "kind, op, args, want",
    [
        ("heap", "sync", (8, "ok"), errno.EINVAL),  # dma-buf.c:455-456
        ("heap", "sync", (4, "ok"), errno.EINVAL),  # END without READ/WRITE
        ("heap", "sync", (3, "guard"), errno.EFAULT),
        ("heap", "dmabuf_ioctl", ("w", 0, 16), errno.ENOTTY),  # SYNC with a 16 B struct
        ("heap", "set_name", ("A", 31, -1, "normal"), 0),
        ("heap", "set_name", ("B", 32, -1, "normal"), errno.EINVAL),
        ("heap", "set_name", ("B", 10, -1, "guard"), errno.EFAULT),  # no NUL before the hole
        ("heap", "set_name", ("B", 40, -1, "guard"), errno.EINVAL),
        ("heap", "set_name", ("legacy", 40, 5, "guard"), 0),
        ("heap", "export_sync_file", (3, 12345, "ok"), 0),  # the fd field is output only
        ("heap", "export_sync_file", (4, -1, "ok"), errno.EINVAL),
        ("heap", "import_sync_file", (1, "dmabuf", "ok"), errno.EINVAL),
        ("heap", "import_sync_file", (2, "syncfile", "ok"), 0),
        ("heap", "lseek", (0, os.SEEK_CUR), errno.EINVAL),
        ("heap", "lseek", (0, os.SEEK_END), 0),
        ("heap", "mmap", ("rw", PAGE, 100, RW, I.MAP_SHARED), errno.EINVAL),
        ("heap", "mmap", ("rw", 0, 0, RW, I.MAP_SHARED), errno.EINVAL),
        ("heap", "mmap", ("rw", 1 << 60, 0, RW, I.MAP_SHARED), errno.ENOMEM),
        ("heap", "mmap", ("rw", (1 << 64) - 1, 0, RW, I.MAP_SHARED), errno.ENOMEM),
        ("heap", "mmap", ("rw", PAGE, -PAGE, RW, I.MAP_SHARED), errno.EOVERFLOW),
        ("heap", "mmap", ("rw", PAGE, 4 * PAGE, RW, I.MAP_SHARED), errno.EINVAL),
        ("heap", "mmap", ("rw", PAGE, 0, RW, I.MAP_SHARED_VALIDATE | 0x80), errno.EOPNOTSUPP),
        ("heap", "mmap", ("rw", PAGE, 0, RW, I.MAP_SHARED | 0x80), 0),
        ("heap", "mmap", ("ro", PAGE, 0, RW, I.MAP_SHARED), errno.EACCES),
        ("heap", "mmap", ("ro", PAGE, 0, I.PROT_READ, I.MAP_SHARED), 0),
        ("heap", "mmap", ("rw", PAGE, 0, RW, I.MAP_PRIVATE), errno.EINVAL),
        ("heap", "mmap", ("rw", PAGE, 0, RW, 0), errno.EINVAL),
        ("heap", "mmap", ("rw", PAGE, 0, RW, I.MAP_SHARED | I.MAP_HUGETLB), errno.EINVAL),
        ("heap", "heap_alloc", ("rw", 1, 24, PAGE, 0, 2, 0, "ok"), errno.EINVAL),  # nr 1
        ("heap", "heap_alloc", ("w", 0, 8, PAGE, 0, 0x8000_0000, 0, "ok"), 0),  # flags cut off
        ("heap", "heap_alloc", ("r", 0, 24, PAGE, 0, 2, 0, "ok"), errno.EINVAL),  # nothing in
        ("heap", "heap_alloc", ("rw", 0, 24, PAGE, 0, 2, 0, "null"), errno.EFAULT),
        ("heap", "heap_alloc", ("rw", 0, 24, PAGE, 7, 2, 0, "ok"), errno.EINVAL),
        ("udmabuf", "udmabuf_ioctl", ("w", 0x42, 16), errno.ENOTTY),
        ("udmabuf", "udmabuf_create", (0, ["closed", PAGE, 2], 0, PAGE, "ok"), errno.EBADFD),
        ("udmabuf", "udmabuf_create", (0, ["pipe", PAGE, 2], 0, PAGE, "ok"), errno.EBADFD),
        ("udmabuf", "udmabuf_create", (0, ["memfd", PAGE, 0], 0, PAGE, "ok"), errno.EINVAL),
        ("udmabuf", "udmabuf_create", (0xF0, ["memfd", PAGE, 2], 0, PAGE, "ok"), 0),
        ("udmabuf", "udmabuf_create", (0, ["memfd", PAGE, 2], 1 << 63, PAGE, "ok"),
         errno.EFBIG),  # fmt: skip
        ("udmabuf", "udmabuf_create", (0, ["memfd", PAGE, 2], PAGE, PAGE, "ok"), errno.EINVAL),
        ("udmabuf", "udmabuf_list", (0, 3, [["memfd", PAGE, 2]], [[0, 0, PAGE]], "ok"),
         errno.EFAULT),  # fmt: skip
        ("udmabuf", "udmabuf_list",
         (0, 2, [["memfd", PAGE, 2], ["dmabuf", PAGE, 2]], [[0, 0, PAGE], [1, 0, PAGE]], "ok"),
         errno.EBADFD),  # fmt: skip
        ("udmabuf", "udmabuf_list", (0, 2, [["memfd", 2 * PAGE, 2]],
                                     [[0, 0, 2 * PAGE], [0, PAGE, PAGE]], "ok"), 0),  # overlap
        ("vgem", "prime_handle_to_fd", (1, 0x100), errno.EINVAL),
        ("vgem", "prime_handle_to_fd", (1, os.O_CLOEXEC), errno.ENOENT),
        ("vgem", "prime_fd_to_handle", ("closed",), errno.EBADF),
        ("vgem", "prime_fd_to_handle", ("memfd",), errno.EINVAL),
        ("vgem", "prime_fd_to_handle", ("dmabuf",), 0),
        ("vgem", "gem_close", (5, 0), errno.EINVAL),
        ("vgem", "create_dumb", (0, 16, 32, 0), errno.EINVAL),
        ("vgem", "create_dumb", (4, 16, 32, 0xFF), 0),
        ("vgem", "create_dumb", ((1 << 32) - 1, 1, 8, 0), errno.EINVAL),  # PAGE_ALIGN wraps
        ("vgem", "mmap", ("rw", PAGE, 0, I.PROT_READ, I.MAP_PRIVATE), errno.EINVAL),
    ],
)  # fmt: skip
def test_the_model_answers_with_the_kernels_errno(kind, op, args, want):
    got = _one(kind, op, *args)
    assert got == want, f"{op}{args}: model {errno.errorcode.get(got, got)}"


def test_a_kernel_before_6_0_has_no_sync_file_ioctls():
    from conformance.model import PROFILES

    old = [n for n, p in PROFILES.items() if p.kind == "heap" and not p.sync_file_ioctls]
    assert old, "no stand-in for a kernel before 6.0"
    model = ModelTarget(list_profiles=True)
    batch = [["export_sync_file", 3, -1, "null"], ["import_sync_file", 9, "pipe", "ok"]]
    assert model.bad_input_batch(old[0], batch) == [errno.ENOTTY, errno.ENOTTY]


# -- the tally and the case -----------------------------------------------------------------
def test_the_tally_counts_mismatches_and_accepted_invalid_inputs_per_category():
    good = Input("sync-flags", "sync", (8, "ok"))
    valid = Input("set-name", "set_name", ("A", 3, -1, "normal"), must_fail=False)
    tally = Tally("heap:x", "model:reference", 5)
    tally.add([good, good, valid], [0, errno.EINVAL, errno.EFAULT], [errno.EINVAL] * 2 + [0])
    assert (tally.inputs, tally.mismatch_count, tally.accepted_count) == (3, 2, 1)
    assert not tally.ok
    text = tally.failure()
    assert "sync(flags=0x8, argp=ok): target 0 (accepted), model EINVAL" in text
    assert "set-name: 1 of 1 disagree" in text
    record = json.loads(json.dumps(tally.record()))
    assert record["categories"]["sync-flags"] == {
        "inputs": 2, "mismatches": 1, "accepted_invalid": 1, "complaints": 0
    }  # fmt: skip
    tally.complained({"mmap-length"}, 1, 0, "WARNING: at mm/mmap.c")
    assert tally.categories["mmap-length"].complaints == 1
    assert "WARNING: at mm/mmap.c" in tally.failure()
    with pytest.raises(ValueError):
        tally.add([good], [0, 0], [0])


def _run_case(tmp_path: Path, *exporters: str) -> dict:
    args = [f"--exporter={e}" for e in exporters]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "cases/test_bad_input.py", "-q", "-p",
         "no:cacheprovider", "--target=model", "--compare=off", *args,
         f"--reports-dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / "conformance-summary.json").read_text())


def test_the_case_passes_on_the_reference_and_catches_the_faulty_exporters(tmp_path):
    summary = _run_case(tmp_path, "model:reference", "model:faulty-ioctl-nr-only",
                        "model:faulty-udmabuf-no-seal-check")  # fmt: skip
    results = summary["exporters"]
    assert results["model:reference"]["BADIN-001"] == "passed"
    assert results["model:faulty-ioctl-nr-only"]["BADIN-001"] == "failed"
    assert results["model:faulty-udmabuf-no-seal-check"]["BADIN-001"] == "failed"
    message = summary["messages"]["model:faulty-ioctl-nr-only"]["BADIN-001"]
    assert "dmabuf-request" in message and "model ENOTTY" in message
    # the summary keeps the counts per exporter
    counts = summary["bad_input"]["model:faulty-ioctl-nr-only"]
    assert counts["inputs"] >= 10_000
    assert counts["categories"]["dmabuf-request"]["mismatches"] > 0
    assert summary["bad_input"]["model:reference"]["mismatches"] == 0
    markdown = (tmp_path / "conformance-summary.md").read_text()
    assert "Bad input (BADIN-001" in markdown and "| dmabuf-request |" in markdown


@pytest.mark.slow
def test_the_kernel_agrees_with_the_model_but_for_known_findings(probe_guest):
    """A batch of every kind on the 6.1 guest: the runner's raw syscalls and the model agree.

    Known finding: the system heap maps a one-page MAP_PRIVATE mapping
    (system_heap_mmap has no VM_SHARED check; remap_pfn_range refuses a
    private mapping only when it covers part of the vma), so heap:system
    may disagree in mmap-prot-flags and nowhere else.
    """
    kinds = {e.name: e.kind for e in probe_guest.exporters()}
    live = probe_guest.live_buffers()
    for name, kind in sorted(kinds.items()):
        if kind not in KINDS:
            continue
        batch = generate(kind, 1500, seed=11)
        got = probe_guest.bad_input_batch(name, [i.encode() for i in batch])
        want = answers(kind, batch)
        tally = Tally(name, KINDS[kind], 11)
        tally.add(batch, got, want)
        wrong = [(i, g, w) for i, g, w in zip(batch, got, want) if g != w]
        if name == "heap:system":  # the finding: one-page MAP_PRIVATE mappings, nothing else
            wrong = [(i, g, w) for i, g, w in wrong if not (
                i.op == "mmap" and i.arg("flags") & I.MAP_TYPE == I.MAP_PRIVATE
                and i.arg("length") <= PAGE and g == 0 and w == errno.EINVAL)]  # fmt: skip
        assert not wrong, tally.failure()
        health = probe_guest.health()
        assert not (health.warnings or health.dma_api_errors), health.log_excerpt
    assert probe_guest.live_buffers() == live, "a batch left dma-bufs behind"
