"""Boot the test guest and drive real kernel code through QemuTarget (slow: ~1 min cold)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.errors import GuestError, InvalidArgument
from conformance.targets.qemu import QemuTarget
from fixtures.qemu import qemu_target  # noqa: F401 - the session fixture

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_guest_lists_every_upstream_exporter(qemu_target: QemuTarget) -> None:  # noqa: F811
    names = {e.name for e in qemu_target.exporters()}
    assert "heap:system" in names
    assert any(n.startswith("heap:") and n != "heap:system" for n in names), names  # CMA
    assert {"udmabuf", "vgem"} <= names
    info = qemu_target.info()
    assert info.target == "qemu" and info.kernel.startswith("6.")


def test_allocate_map_and_read_back(qemu_target: QemuTarget) -> None:  # noqa: F811
    buf = qemu_target.allocate("heap:system", 3 * 4096)
    assert qemu_target.buffer_size(buf) == 3 * 4096
    m = qemu_target.mmap(buf)
    assert qemu_target.cpu_read(m, 0, 64) == bytes(64)  # the heap hands out zeroed pages
    qemu_target.cpu_write(m, 100, b"\x01guest\xff")
    assert qemu_target.cpu_read(m, 100, 7) == b"\x01guest\xff"
    qemu_target.close_all()


def test_kernel_error_travels_back_typed(qemu_target: QemuTarget) -> None:  # noqa: F811
    buf = qemu_target.allocate("heap:system", 4096)
    with pytest.raises(InvalidArgument) as exc:
        qemu_target.sync(buf, 0x80)  # no such DMA_BUF_SYNC flag: the kernel says EINVAL
    assert exc.value.errno == 22 and "SYNC" in exc.value.op
    qemu_target.close_all()


def test_health_is_clean_after_normal_work(qemu_target: QemuTarget) -> None:  # noqa: F811
    qemu_target.health()  # drop whatever boot said
    buf = qemu_target.allocate("udmabuf", 4096)
    qemu_target.close(buf)
    health = qemu_target.health()
    assert health.warnings == 0 and health.dma_api_errors == 0, health.log_excerpt


def test_a_panicking_case_fails_with_the_panic_and_the_next_runs_on_a_fresh_guest(
    tmp_path: Path,
) -> None:
    """The plugin's recovery path, end to end, in an inner pytest run on a guest of its own."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        def test_1_panics(conformance_run, target):
            conformance_run.target.crash("panic")

        def test_2_after(conformance_run, target):
            assert conformance_run.target.guest.boots == 2
            buf = conformance_run.target.allocate("heap:system", 4096)
            assert conformance_run.target.buffer_size(buf) == 4096
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    env.pop("PYTEST_XDIST_WORKER", None)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-p", "fixtures.reporting",
         "--target=qemu",
         "--compare=off", "-rA", "-p", "no:cacheprovider", f"--reports-dir={tmp_path / 'r'}",
         "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    out = r.stdout + r.stderr
    assert "1 failed, 1 passed" in out, out[-4000:]
    assert "FAILED test_inner.py::test_1_panics" in out
    assert "PASSED test_inner.py::test_2_after" in out
    assert "guest console" in out, out[-4000:]
    assert "Kernel panic - not syncing: sysrq triggered crash" in out
    assert "GuestError" in out


def test_a_hung_guest_times_out_and_restarts(qemu_target: QemuTarget) -> None:  # noqa: F811
    with pytest.raises(GuestError, match="did not answer crash within"):
        qemu_target.crash("hang", timeout=3)
    qemu_target.restart()
    assert qemu_target.allocate("heap:system", 4096) > 0
    qemu_target.close_all()
