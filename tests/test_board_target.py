"""The remote target's pipe, without a board: ``sh`` on this machine stands in for one.

The agent is streamed into the board's own python3 exactly as over ssh; it
serves the reference model (``--board-agent-factory``), so what is tested here
is the transport: bootstrap, streaming, the wire, typed errors, a lost
connection, reconnecting, the clear errors of an unusable board.  The same
target against real kernel code over real ssh is tests/test_ssh_board.py.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from conformance.errors import GuestError, InvalidArgument, SetupError
from conformance.remote import bundle
from conformance.remote.board import BoardSpec, BoardTarget, ssh_argv
from conformance.remote.link import BoardUnusable, PipeLink
from conformance.targets.agent import FORWARDED, WRITTEN_OUT, AgentTarget
from conformance.targets.base import OPERATIONS, Target
from conformance.targets.qemu import QemuTarget

MODEL = ["--target-factory", "conformance.targets.model:ModelTarget"]
REPO = Path(__file__).resolve().parents[1]
PYENV = Path.home() / ".pyenv" / "versions"


def _python(version: str) -> Path | None:
    """A python of ``version`` (pyenv's), standing in for a board's old interpreter."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}")) if PYENV.is_dir() else []
    return found[-1] if found else None


def _board(tmp_path: Path, argv: list[str] | None = None, **kw: object) -> AgentTarget:
    link = PipeLink(argv or ["sh"], tmp_path / "console.log", agent_args=MODEL, **kw)  # type: ignore[arg-type]
    target = AgentTarget(link, op_timeout=20, ready_timeout=30)
    target.start()
    return target


@pytest.fixture
def board(tmp_path: Path):
    target = _board(tmp_path)
    yield target
    target.stop()


# -- one table of operations ----------------------------------------------------------


def test_every_target_operation_is_forwarded_and_none_is_left_abstract() -> None:
    abstract = {name for name in dir(Target)
                if getattr(getattr(Target, name), "__isabstractmethod__", False)}
    # the rest are written out (completed on this side, or asked only when they can change)
    assert abstract <= set(FORWARDED) | set(WRITTEN_OUT)
    assert all(op in AgentTarget.__dict__ for op in WRITTEN_OUT)
    assert set(OPERATIONS) <= set(FORWARDED)
    for cls in (AgentTarget, QemuTarget, BoardTarget):
        assert not cls.__abstractmethods__, cls
    # the forwarders keep Target's signatures and documentation
    assert AgentTarget.allocate.__doc__ == Target.allocate.__doc__


# -- the bundle ------------------------------------------------------------------------


def test_bootstrap_line_is_one_short_shell_safe_line() -> None:
    line = bundle.bootstrap_line(["--stdio"])
    assert "\n" not in line and len(line) < 4095  # a tty's canonical line limit
    code = line.split("b64decode('")[1].split("')")[0]
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    # the echo of the typed line must not read as the error marker
    assert bundle.ERROR not in line


def test_bundle_has_the_agent_and_no_host_only_code() -> None:
    names = zipfile.ZipFile(BytesIO(bundle.agent_zip())).namelist()
    assert "conformance/guest/agent.py" in names and "conformance/targets/local.py" in names
    assert not [n for n in names if n.split("/")[1] in bundle.HOST_ONLY]
    assert bundle.agent_zip() == bundle.agent_zip.__wrapped__()  # reproducible bytes


def test_everything_streamed_to_a_board_parses_as_python_3_7() -> None:
    """A board's vendor image may have 3.7: no walrus, no positional-only parameters."""
    bad = []
    with zipfile.ZipFile(BytesIO(bundle.agent_zip())) as zf:
        for name in zf.namelist():
            try:
                ast.parse(zf.read(name), name, feature_version=(3, 7))
            except SyntaxError as e:
                bad.append(f"{name}:{e.lineno}: {e.msg}")
    assert not bad, bad


# -- the pipe -----------------------------------------------------------------------------


def test_the_agent_serves_the_target_over_a_shell_pipe(board: AgentTarget) -> None:
    info = board.info()
    assert info.target == "agent" and info.extra["board_command"] == "sh"
    buf = board.allocate("model:reference", 8192)
    mapping = board.mmap(buf)
    board.cpu_write(mapping, 100, bytes(range(256)))
    assert board.cpu_read(mapping, 100, 256) == bytes(range(256))
    with pytest.raises(InvalidArgument) as err:  # the typed error crosses the pipe
        board.sync(buf, 0xDEAD)
    assert err.value.op == "DMA_BUF_IOCTL_SYNC"


def test_a_tty_that_echoes_is_a_usable_pipe(tmp_path: Path) -> None:
    """A serial console's shell: a tty that echoes what is typed and cooks lines."""
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` (to make a pty) is not installed")
    target = _board(tmp_path, ["script", "-qfec", "sh", "/dev/null"])
    try:
        buf = target.allocate("model:reference", 4096)
        data = bytes(range(256)) * 16  # every byte value, \x03 and \x04 included
        target.cpu_write(target.mmap(buf), 0, data)
        assert target.cpu_read(target.mmap(buf), 0, 4096) == data
    finally:
        target.stop()


def test_nothing_runs_on_the_board_after_the_session(tmp_path: Path) -> None:
    target = _board(tmp_path)
    pid = int(target.link.ready_info["pid"])  # type: ignore[attr-defined]
    target.stop()
    # the agent ended with its pipe (EOF), it was not left behind
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            subprocess.run(["sleep", "0.1"])


def test_a_lost_connection_fails_the_operation_then_the_run_reconnects(board: AgentTarget) -> None:
    board.allocate("model:reference", 4096)
    with pytest.raises(GuestError) as err:
        board.crash("exit")  # the agent dies, as with a board that drops the link
    assert "lost" in str(err.value) or "ended" in str(err.value)
    board.restart()
    assert board.link.connects == 2  # type: ignore[attr-defined]
    assert board.buffer_size(board.allocate("model:reference", 4096)) == 4096


def test_a_board_without_python3_is_named(tmp_path: Path) -> None:
    link = PipeLink(["sh"], tmp_path / "console.log", python="python3-not-on-this-board")
    with pytest.raises(BoardUnusable, match="no python3-not-on-this-board on its PATH"):
        AgentTarget(link, ready_timeout=20).start()
    assert not link.alive()


def test_a_board_python_too_old_is_named(tmp_path: Path) -> None:
    old = _python("3.6")
    if old is None:
        pytest.skip("no Python 3.6 here to stand in for an old board")
    link = PipeLink(["sh"], tmp_path / "console.log", python=str(old))
    with pytest.raises(BoardUnusable, match=r"Python 3\.6\.\d+ on the board is too old"):
        AgentTarget(link, ready_timeout=20).start()


def test_the_agent_runs_on_python_3_7(tmp_path: Path) -> None:
    py37 = _python("3.7")
    if py37 is None:
        pytest.skip("no Python 3.7 here to stand in for the oldest board python")
    target = _board(tmp_path, python=str(py37))
    try:
        assert target.link.ready_info["python"].startswith("3.7.")  # type: ignore[attr-defined]
        buf = target.allocate("model:reference", 4096)
        target.cpu_write(target.mmap(buf), 0, b"board")
        assert target.counters(buf)["attachments"] == 0
        # the real target class too, not only the model, imports and starts on 3.7
        assert target.call("exporters") is not None
    finally:
        target.stop()
    local = PipeLink(["sh"], tmp_path / "console2.log", python=str(py37))
    t = AgentTarget(local, ready_timeout=30)
    t.start()
    try:
        assert t.info().kernel == os.uname().release
    finally:
        t.stop()


def test_a_board_command_that_fails_is_a_clear_error(tmp_path: Path) -> None:
    link = PipeLink(["sh", "-c", "echo 'ssh: connect to host b port 22: Connection refused' >&2; "
                                 "exit 255"], tmp_path / "console.log")
    with pytest.raises(GuestError, match="did not start on the board") as err:
        AgentTarget(link, ready_timeout=10).start()
    assert "Connection refused" in err.value.console_log


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize("text, spec", [
    ("root@10.0.0.2", BoardSpec("root", "10.0.0.2")),
    ("root@127.0.0.1:2222", BoardSpec("root", "127.0.0.1", 2222)),
    ("me@[fe80::1]:22", BoardSpec("me", "fe80::1", 22)),
])
def test_board_spec(text: str, spec: BoardSpec) -> None:
    assert BoardSpec.parse(text) == spec and str(spec) == text


@pytest.mark.parametrize("text", ["board", "root@", "root@host:0", "root@host:99999", "a b@c"])
def test_bad_board_spec_is_named(text: str) -> None:
    with pytest.raises(SetupError, match="--board"):
        BoardSpec.parse(text)


def test_ssh_never_prompts_and_takes_the_identity(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    argv = ssh_argv(BoardSpec("root", "h", 2222), identity=key, options=["Compression=no"])
    assert argv[:2] == ["ssh", "-T"] and "BatchMode=yes" in argv
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == str(key)
    assert argv[-1] == "root@h" and "Compression=no" in argv
    with pytest.raises(SetupError, match="NAME=VALUE"):
        ssh_argv(BoardSpec("root", "h"), options=["Compression"])


def _run_cases(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider",
         f"--reports-dir={tmp_path}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


def test_the_ssh_target_runs_the_cases_over_the_pipe(tmp_path: Path) -> None:
    """The plugin end to end: cases run with --target=ssh, the model served on the "board"."""
    proc = _run_cases(tmp_path, "--target=ssh", "--board-cmd", "sh", "--exporter",
                      "model:reference", "--board-agent-factory",
                      "conformance.targets.model:ModelTarget", "-m", "sync or alloc", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "conformance-summary.json").read_text())
    assert summary["target"] == "ssh"
    results = summary["exporters"]["model:reference"]
    assert results["ALLOC-003"] == "passed"
    assert [k for k, v in results.items() if k.startswith("SYNC-") and v == "passed"]
    console = (tmp_path / "board" / "console-main.log").read_text()
    assert "[agent] ready on stdin/stdout" in console


LOSS_CASES = """
import pytest

@pytest.mark.case("LOSS-001")
def test_before(target, exporter):
    target.allocate(exporter.name, 4096)

@pytest.mark.case("LOSS-002")
def test_loses_the_board(target, exporter, conformance_run):
    conformance_run.target.crash("exit")

@pytest.mark.case("LOSS-003")
def test_after(target, exporter):
    assert target.buffer_size(target.allocate(exporter.name, 4096)) == 4096
"""


def _run_loss_cases(tmp_path: Path, board_cmd: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_loss.py").write_text(LOSS_CASES)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_loss.py"), "-p", "fixtures.plugin",
         "-p", "fixtures.reporting", "-p", "no:cacheprovider", f"--reports-dir={tmp_path / 'r'}",
         "--target=ssh", "--board-cmd", board_cmd, "--exporter", "model:reference",
         "--board-agent-factory", "conformance.targets.model:ModelTarget", "-rA", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_a_case_that_loses_the_board_fails_and_the_run_goes_on(tmp_path: Path) -> None:
    proc = _run_loss_cases(tmp_path, "sh")
    out = proc.stdout
    assert "FAILED" in out and "test_loses_the_board" in out.split("FAILED", 1)[1]
    assert "the connection to the board was lost during crash" in out
    assert "PASSED" in out and "test_after" in out.split("PASSED", 1)[1]
    assert "1 failed, 2 passed" in out


def test_a_board_that_does_not_come_back_fails_the_rest_at_once(tmp_path: Path) -> None:
    flag = tmp_path / "connected-once"
    proc = _run_loss_cases(tmp_path, f"sh -c 'test -e {flag} && exit 1; touch {flag}; exec sh'",
                           "--board-reconnect-timeout", "3")
    assert "did not come back" in proc.stdout
    assert "1 failed, 1 passed, 1 error" in proc.stdout


def test_ssh_target_needs_a_board(tmp_path: Path) -> None:
    proc = _run_cases(tmp_path, "--target=ssh", "-m", "alloc", "-q")
    assert proc.returncode != 0
    assert "--target=ssh needs exactly one of --board" in proc.stdout + proc.stderr


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("the agent's pipe is tested on Linux")


# -- building the probe for a board -------------------------------------------------------


def test_the_board_kernel_arch_comes_from_its_config(tmp_path: Path) -> None:
    from conformance.probe.build import kernel_arch

    (tmp_path / ".config").write_text("CONFIG_ARM64=y\n# CONFIG_X86_64 is not set\n")
    assert kernel_arch(tmp_path) == "arm64"
    (tmp_path / ".config").write_text("CONFIG_X86_64=y\n")
    assert kernel_arch(tmp_path) == "x86_64"


@pytest.mark.parametrize("setup, message", [
    ("", "not a kernel build directory"),
    ("Makefile", "no .config there"),
    ("Makefile+config", "no-such-prefix-gcc is not on PATH"),
])
def test_a_probe_build_that_cannot_work_says_why(tmp_path: Path, setup: str, message: str) -> None:
    from conformance.probe.build import ProbeBuildError, build_probe_module

    if "Makefile" in setup:
        (tmp_path / "Makefile").write_text("")
    if "config" in setup:
        (tmp_path / ".config").write_text("CONFIG_ARM64=y\n")
    with pytest.raises(ProbeBuildError, match=message):
        build_probe_module(tmp_path, cross_compile="no-such-prefix-", out=tmp_path / "out")
