"""The labgrid target end to end: a farm on 127.0.0.1 with two QEMU guests as its boards (slow).

A labgrid coordinator and exporter run here; the exporter publishes each
guest's sshd as a ``NetworkService``, and a place per guest is tagged
``board=dmabuf-test``.  pytest runs the cases with ``--target=labgrid
--lg-reserve board=dmabuf-test -n 2 --dist each``: each worker reserves and
locks a place of its own through the coordinator, labgrid's SSHDriver gives
the shell the agent is streamed over, every board runs every case, and the
run's one summary has a verdict per exporter per board.  Afterwards both
places are free again, also after a run that was refused or killed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from conformance.errors import SetupError
from conformance.probe.build import build_probe_module
from conformance.qemu.kernel import KernelBuild
from conformance.qemu.ssh_standin import SshStandin
from tests.labgrid_farm import Board, Farm

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("labgrid-coordinator") is None,
                       reason="no labgrid: pip install labgrid (in the test extra)"),
]
REPO = Path(__file__).resolve().parents[1]
TAGS = "board=dmabuf-test"


def _start_both(standins: list[SshStandin]) -> None:
    errors: list[BaseException] = []

    def start(s: SshStandin) -> None:
        try:
            s.start()
        except BaseException as e:  # noqa: BLE001 (re-raised below, in the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=start, args=(s,)) for s in standins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def farm(kernel_build: KernelBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    root = tmp_path_factory.mktemp("labgrid-farm")
    standins = [SshStandin(kernel_build, console_path=root / f"board{i}-console.log",
                           name=f"lg-board{i}") for i in (1, 2)]
    farm = Farm(root, [])
    try:
        try:
            _start_both(standins)
        except SetupError as exc:
            pytest.skip(f"no ssh stand-in: {exc}")
        # One key for the environment's SSHDriver: the second board accepts the first's too.
        pub = standins[0].identity.with_suffix(".pub").read_text().strip()
        standins[1].run(f"echo '{pub}' >> \"$HOME/.ssh/authorized_keys\"")
        farm.boards = [Board(f"dmabuf-board{i}", s.port) for i, s in enumerate(standins, 1)]
        farm.start()
        farm.keyfile = standins[0].identity
        yield farm
    finally:
        farm.stop()
        for s in standins:
            s.stop()


@pytest.fixture(scope="module")
def env_yaml(farm: Farm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("labgrid-env") / "board.yaml"
    env.write_text(
        "targets:\n"
        "  main:\n"
        "    resources:\n"
        "      RemotePlace:\n"
        "        name: !template $LG_PLACE\n"
        "    drivers:\n"
        "      SSHDriver:\n"
        f"        keyfile: {farm.keyfile}\n"
    )
    return env


@pytest.fixture(scope="module")
def probe_ko(kernel_build: KernelBuild) -> Path:
    return build_probe_module(kernel_build.kdir)


def _pytest(farm: Farm, env: Path, reports: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "cases", "--target=labgrid", "--lg-env", str(env),
            "--lg-coordinator", farm.coordinator, "--lg-reserve", TAGS,
            "--lg-reserve-timeout", "120", f"--reports-dir={reports}", "-p", "no:cacheprovider",
            "-q", *extra]


def _assert_released(farm: Farm) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        held = {b.name: farm.acquired_by(b.name) for b in farm.boards}
        if all(v in ("", "None") for v in held.values()) and "Reservation" not in \
                farm.reservations():
            return
        time.sleep(0.5)
    raise AssertionError(f"places still held: {held}\n{farm.reservations()}")


def test_two_boards_each_run_every_case_with_a_verdict_per_board(
    farm: Farm, env_yaml: Path, probe_ko: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    cmd = _pytest(farm, env_yaml, reports, "-n", "2", "--dist", "each", "-m", "attach_order_cmo",
                  "--exporter", "heap:system", "--probe-ko", str(probe_ko),
                  f"--alluredir={tmp_path / 'allure'}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500)
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode in (0, 1), out
    for b in farm.boards:  # (a worker's last words, at its exit, do not reach the controller)
        assert f"holding place {b.name}" in proc.stderr, out
    summary = json.loads((reports / "conformance-summary.json").read_text())
    keys = {f"heap:system@{b.name}" for b in farm.boards}
    assert set(summary["exporters"]) == keys, summary["exporters"].keys()
    first, second = (summary["exporters"][k] for k in sorted(keys))
    assert first.keys() == second.keys() and len(first) >= 5
    # one family of cases: each board's verdict is its own, and incomplete (-m)
    assert summary["verdicts"] == dict.fromkeys(keys, "incomplete"), summary["verdicts"]
    assert summary["target"] == "labgrid"
    boards = summary.get("boards", {})
    for b in farm.boards:
        info = boards[b.name]
        assert info["labgrid_place"] == b.name and "NetworkService" in info["labgrid_resources"]
        assert info["kernel"] == summary["kernel"]
    md = (reports / "conformance-summary.md").read_text()
    assert all(k in md for k in keys)
    junit = (reports / "junit-conformance.xml").read_text()
    env = (tmp_path / "allure" / "environment.properties").read_text()
    for b in farm.boards:
        assert f'name="board.labgrid_place" value="{b.name}"' in junit
        assert f"board.{b.name}=kernel {summary['kernel']}" in env, env
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    by_board = {p["value"].strip("'") for r in results for p in r.get("parameters", [])
                if p["name"] == "board"}
    assert by_board == {b.name for b in farm.boards}
    assert len({r["historyId"] for r in results}) == len(results)  # no board a retry of another
    _assert_released(farm)


def test_a_refused_run_releases_its_place(farm: Farm, env_yaml: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_pytest(farm, env_yaml, tmp_path, "--exporter", "no-such-exporter"),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no-such-exporter" in proc.stdout + proc.stderr
    assert "released place" in proc.stderr
    _assert_released(farm)


def test_a_killed_run_releases_its_place(farm: Farm, env_yaml: Path, tmp_path: Path) -> None:
    # every case: a run that finished within the 3 s below would not test a kill mid-run
    proc = subprocess.Popen(_pytest(farm, env_yaml, tmp_path), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    console = tmp_path / "board" / "console-main.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if console.is_file() and "[agent] ready" in console.read_text(errors="replace"):
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    place = next(b.name for b in farm.boards if farm.acquired_by(b.name) not in ("", "None"))
    time.sleep(3)  # into the cases
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert f"released place {place}" in err, out[-2000:] + err[-2000:]
    _assert_released(farm)


def test_a_place_that_never_frees_is_a_clear_error(farm: Farm, env_yaml: Path,
                                                   tmp_path: Path) -> None:
    tokens = []
    try:
        for _ in farm.boards:  # somebody else holds every board
            out = farm.client("reserve", "--wait", "--shell", TAGS)
            token = out.split("LG_TOKEN=")[1].split()[0]
            farm.client("-p", "+", "lock", token=token)
            tokens.append(token)
        cmd = _pytest(farm, env_yaml, tmp_path)
        cmd[cmd.index("--lg-reserve-timeout") + 1] = "5"
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"no place matching {TAGS} became free within 5 s" in proc.stdout + proc.stderr
    finally:
        for token in tokens:
            farm.client("-p", "+", "unlock", token=token, check=False)
            farm.client("cancel-reservation", token=token, check=False)
    _assert_released(farm)

