"""The labgrid target's pieces without a farm: filters, environments, usage errors, release.

The farm itself (coordinator, exporter, two guests as boards) is
``tests/test_labgrid_farm.py``; a serial console, ``tests/test_labgrid_console.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.errors import SetupError
from conformance.remote.labgrid_place import HeldPlace, hold_place, parse_filter

pytestmark = pytest.mark.skipif(shutil.which("labgrid-client") is None,
                                reason="no labgrid: pip install labgrid (in the test extra)")
REPO = Path(__file__).resolve().parents[1]


def test_a_reservation_filter_is_labgrid_clients_key_value_tags() -> None:
    assert parse_filter("board=imx8mp soc=mp") == {"board": "imx8mp", "soc": "mp"}
    assert parse_filter("name=rack3-slot2") == {"name": "rack3-slot2"}
    for bad in ("", "board", "board=", "=x", "board=a ="):
        with pytest.raises(SetupError, match="KEY=VALUE"):
            parse_filter(bad)


def test_no_coordinator_is_a_clear_error_and_leaves_nothing() -> None:
    with pytest.raises(SetupError, match="labgrid-client -x 127.0.0.1:9 reserve"):
        hold_place("127.0.0.1:9", {"board": "x"}, timeout=5)


def test_release_reports_what_failed_and_never_raises() -> None:
    held = HeldPlace("127.0.0.1:9", "p", "TOKEN", {})
    problems = held.release()
    assert len(problems) == 2 and all("127.0.0.1:9" in p for p in problems)
    assert held.release() == []  # once only


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider",
                           "-q", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_usage_errors_name_what_is_missing(tmp_path: Path) -> None:
    proc = _run("--target=labgrid", f"--reports-dir={tmp_path}")
    assert proc.returncode == 4 and "needs --lg-env ENV.yaml" in proc.stdout + proc.stderr
    proc = _run("--target=labgrid", "--lg-env", str(tmp_path / "nope.yaml"),
                f"--reports-dir={tmp_path}")
    assert "nope.yaml: no such file" in proc.stdout + proc.stderr
    env = tmp_path / "env.yaml"
    env.write_text("targets:\n  main:\n    resources:\n      RemotePlace:\n"
                   "        name: !template $LG_PLACE\n    drivers:\n      SSHDriver: {}\n")
    proc = _run("--target=labgrid", "--lg-env", str(env), f"--reports-dir={tmp_path}")
    assert "uses $LG_PLACE, which only --lg-reserve sets" in proc.stdout + proc.stderr
    proc = _run("--target=labgrid", "--lg-env", str(env), "--lg-reserve", "board",
                f"--reports-dir={tmp_path}")
    assert "expected KEY=VALUE tags" in proc.stdout + proc.stderr
    proc = _run("--target=labgrid", "--lg-env", str(env), "--lg-reserve", "board=x", "-n", "2",
                f"--reports-dir={tmp_path}")
    assert "add --dist each" in proc.stdout + proc.stderr


def test_an_environment_without_a_shell_driver_is_refused(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("targets:\n  main:\n    resources:\n      RawSerialPort:\n"
                   "        port: /dev/null\n    drivers:\n      SerialDriver: {}\n")
    proc = _run("--target=labgrid", "--lg-env", str(env), f"--reports-dir={tmp_path}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "has no SSHDriver or ShellDriver" in out and "SerialDriver" in out
