"""The bookkeeping after each case, and what it costs (issue 14: per-case overhead).

After a case the plugin releases what it left open, empties the DMA event log and
reads the kernel's health.  Across a link (a guest, a board) that is one request,
``end_case``; a ``close_all`` after it, with nothing sent in between, needs none;
the exporters and devices the fixture asks for every case are asked once per agent.
An in-process loopback link stands in for the channel here, so every request is
counted; the agent at its other end is the real one, serving the model.
``--timing-file`` (fixtures/timing.py) is how the overhead is measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.guest import protocol
from conformance.guest.agent import Agent
from conformance.qemu.console import ConsoleLog
from conformance.records import KernelHealth
from conformance.targets.agent import AgentTarget
from conformance.targets.model import ModelTarget
from tests.pytest_output import run_fake_cases


class WarnsAtRelease(ModelTarget):
    """A kernel whose exporter warns when a buffer is released."""

    def close_all(self) -> None:
        released = bool(self._fds)
        super().close_all()  # the model forgets its own warnings here; a kernel does not
        if released:
            self._warnings.append("release: frees DMA memory with different direction")


class LoopbackLink:
    """An agent in this process, reached through the wire format; it records each request."""

    name = "loopback"
    health_from_console = True

    def __init__(self, console: Path, target: ModelTarget) -> None:
        self.console = ConsoleLog(console)
        console.write_text("")
        self.agent = Agent(target, None)
        self.requests: list[str] = []

    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        return {}

    def restart(self, timeout: float) -> dict[str, Any]:
        self.agent = Agent(type(self.agent.target)(), None)  # a new agent holds nothing
        return {}

    def cleanup(self) -> None:
        pass

    def alive(self) -> bool:
        return True

    def call_raw(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float) -> dict[str, Any]:
        self.requests.append(op)
        line = protocol.request(len(self.requests), op, args, kwargs)
        return protocol.loads(self.agent.handle(protocol.loads(line)) or b"")

    def describe(self) -> dict[str, str]:
        return {}


def _target(tmp_path: Path, model: ModelTarget | None = None) -> tuple[AgentTarget, LoopbackLink]:
    link = LoopbackLink(tmp_path / "console.log", model or ModelTarget())
    target = AgentTarget(link)
    target.start()
    return target, link


def test_end_case_is_one_request_and_leaves_close_all_nothing_to_send(tmp_path: Path) -> None:
    target, link = _target(tmp_path)
    target.mmap(target.allocate("model:reference", 8192))
    link.requests.clear()

    health = target.end_case()

    assert link.requests == ["end_case"]
    assert isinstance(health, KernelHealth) and health.warnings == 0
    assert link.agent.target.live_buffers() == 0  # released what the case left open
    link.requests.clear()
    target.close_all()  # the fixture's teardown: nothing was sent since end_case
    assert link.requests == []
    target.allocate("model:reference", 4096)
    target.close_all()  # something was: the agent is asked
    assert link.requests == ["allocate", "close_all"]
    assert link.agent.target.live_buffers() == 0


def test_end_case_reports_what_the_release_and_the_console_said(tmp_path: Path) -> None:
    target, link = _target(tmp_path, WarnsAtRelease())
    target.allocate("model:reference", 4096)
    with link.console.path.open("a") as console:
        console.write("[    9.000000] DMA-API: probe dev0: device driver frees DMA memory\n")

    health = target.end_case()

    assert health.warnings == 1 and "different direction" in health.log_excerpt
    assert health.dma_api_errors == 1 and "DMA-API: probe dev0" in health.log_excerpt
    assert target.end_case() == KernelHealth(0, 0, "")  # said once, to the case it belongs to


def test_exporters_and_devices_are_asked_once_until_the_target_can_change(
    tmp_path: Path,
) -> None:
    target, link = _target(tmp_path)
    for _ in range(3):
        assert "model:reference" in {e.name for e in target.exporters()}
        assert target.devices()
    assert sorted(link.requests) == ["devices", "exporters"]

    link.requests.clear()
    target.call("exec", ["true"])  # a program in the guest (insmod, rmmod) may change them
    target.exporters()
    target.restart()  # a new agent: asked again too
    target.devices()
    assert link.requests == ["exec", "exporters", "devices"]


def test_after_a_restart_close_all_sends_nothing(tmp_path: Path) -> None:
    target, link = _target(tmp_path)
    target.allocate("model:reference", 4096)
    target.restart()
    link.requests.clear()
    target.close_all()
    assert link.requests == []


# -- through the plugin ---------------------------------------------------------------

CONFTEST = '''
import fixtures.plugin as plugin
from conformance.targets.model import ModelTarget

pytest_plugins = ["fixtures.plugin", "fixtures.reporting", "fixtures.timing"]


class Counting(ModelTarget):
    """A shared target (as a guest is) that counts the bookkeeping asked of it."""

    asked: list = []

    def end_case(self):
        self.asked.append("end_case")
        return super().end_case()

    def health(self):
        self.asked.append("health")
        return super().health()


_shared = Counting()
plugin.make_target = lambda config: _shared


def pytest_sessionfinish(session):
    path = session.config.rootpath / "asked.json"
    path.write_text(__import__("json").dumps(Counting.asked))
'''

CASES = '''
import time

import pytest

pytestmark = pytest.mark.alloc


@pytest.mark.case("T-WORKS")
def test_works(target, exporter):
    """Makes a buffer and takes its time."""
    target.allocate(exporter.name, 4096)
    time.sleep(0.05)


@pytest.mark.case("T-NOT-HERE")
@pytest.mark.applies_to("udmabuf")
def test_not_applicable(target, exporter):
    """Binds another kind of exporter."""
'''


def test_the_plugin_asks_end_case_once_per_case_and_times_every_item(tmp_path: Path) -> None:
    timing = tmp_path / "timing.jsonl"
    proc = run_fake_cases(tmp_path, CONFTEST, CASES, "--target=local",
                          "--exporter=model:reference", f"--timing-file={timing}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # health only through end_case: one per case whose body ran, none for the skipped one
    assert json.loads((tmp_path / "asked.json").read_text()) == ["end_case", "health"]

    lines = timing.read_text().splitlines()
    records = {r["nodeid"].split("::")[1].split("[")[0]: r for r in map(json.loads, lines)}
    works, skipped = records["test_works"], records["test_not_applicable"]
    assert works["outcome"] == "passed" and works["body_ran"]
    assert works["body_ms"] >= 50 and works["call_ms"] >= works["body_ms"]
    assert works["overhead_ms"] == pytest.approx(works["protocol_ms"] - works["body_ms"], abs=0.01)
    assert skipped["outcome"] == "skipped" and not skipped["body_ran"]
    assert skipped["body_ms"] == 0 and skipped["overhead_ms"] == skipped["protocol_ms"]
