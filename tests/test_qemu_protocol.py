"""Wire protocol, agent dispatch and the host channel, in-process (no guest).

The agent here serves the reference model as its stand-in target; in the guest
it serves LocalTarget through the same code.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from conformance import errors
from conformance.guest import protocol
from conformance.guest.agent import Agent
from conformance.qemu.arch import UnknownArch, get_arch
from conformance.qemu.channel import Channel, ChannelTimeout
from conformance.qemu.kernel import (
    KernelBuildError,
    build_key,
    ensure_kernel,
    missing_options,
    parse_config,
)
from conformance.records import (
    DeviceSpec,
    Direction,
    DmaEvent,
    ExporterInfo,
    KernelHealth,
    SgSegment,
    TargetInfo,
)
from conformance.targets.model import ModelTarget


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\xffbytes",
        [1, "two", None, True, {"k": b"v"}],
        SgSegment(0x1000, 4096),
        DeviceSpec("smallseg", coherent=False, max_segment=65536),
        DmaEvent("coherent", "map_sg", Direction.TO_DEVICE, 4096, skip_cpu_sync=True),
        ExporterInfo("heap:system", "heap", "/dev/dma_heap/system"),
        TargetInfo("qemu", "6.1.0", "x86_64", True, {"a": "b"}),
        KernelHealth(1, 2, "WARNING: x"),
        {"fdinfo": {"exp_name": "system"}},
    ],
)
def test_values_round_trip(value: object) -> None:
    msg = protocol.loads(protocol.reply(3, value))
    assert protocol.decode_value(msg["result"]) == value


def test_direction_travels_as_int() -> None:
    assert protocol.encode_value(Direction.FROM_DEVICE) == 2


def test_unencodable_value_is_a_clear_error() -> None:
    with pytest.raises(protocol.ProtocolError, match="cannot send a object"):
        protocol.encode_value(object())


def test_kernel_error_keeps_class_and_fields() -> None:
    sent = errors.kernel_error(22, "DMA_BUF_IOCTL_SYNC", 0x7)
    got = protocol.decode_error(protocol.loads(protocol.error_reply(1, sent))["error"])
    assert type(got) is errors.InvalidArgument
    assert (got.errno, got.op, got.arg) == (22, "DMA_BUF_IOCTL_SYNC", 7)


def test_setup_error_keeps_class_or_names_it() -> None:
    got = protocol.decode_error(protocol.encode_error(errors.UnknownExporter("no heap:foo")))
    assert type(got) is errors.UnknownExporter and str(got) == "no heap:foo"

    class Private(errors.SetupError):
        pass

    got = protocol.decode_error(protocol.encode_error(Private("why")))
    assert type(got) is errors.SetupError and str(got) == "Private: why"


def test_other_exceptions_carry_the_remote_traceback() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError as e:
        got = protocol.decode_error(protocol.encode_error(e))
    assert isinstance(got, protocol.RemoteError)
    assert "ZeroDivisionError" in str(got) and "boom" in got.remote_traceback


def _call(agent: Agent, op: str, *args: object, **kwargs: object) -> object:
    msg = protocol.loads(agent.handle(protocol.loads(protocol.request(9, op, args, kwargs))))
    if "error" in msg:
        raise protocol.decode_error(msg["error"])
    return protocol.decode_value(msg["result"])


def test_agent_dispatches_to_its_target() -> None:
    agent = Agent(ModelTarget(), None)
    names = [e.name for e in _call(agent, "exporters")]
    assert "model:reference" in names
    buf = _call(agent, "allocate", "model:reference", 8192)
    assert _call(agent, "buffer_size", buf) == 8192
    m = _call(agent, "mmap", buf)
    _call(agent, "cpu_write", m, 0, b"abc")
    assert _call(agent, "cpu_read", m, 0, 3) == b"abc"
    with pytest.raises(errors.InvalidArgument):
        _call(agent, "sync", buf, 0x80)


def test_agent_serves_the_process_level_operations_and_events_dropped() -> None:
    agent = Agent(ModelTarget(), None)
    # the model allocates in-process: an oversize request is ENOMEM, reported as such
    assert _call(agent, "allocate_in_child", "model:reference", 1 << 40) == "errno:ENOMEM"
    assert _call(agent, "allocate_in_child", "model:reference", 8192) == "ok:8192"
    with pytest.raises(errors.NotAvailableOnTarget, match="fd limit"):
        _call(agent, "set_fd_limit", 64)
    # a full event log crosses the channel as itself: the plugin makes it "not checked"
    dropped = errors.EventsDropped.of(7, "DMA event log")
    got = protocol.decode_error(protocol.encode_error(dropped))
    assert isinstance(got, errors.EventsDropped) and "dropped 7 event(s)" in str(got)


def test_agent_turns_direction_ints_back_into_the_enum() -> None:
    seen: list[object] = []

    class Spy(ModelTarget):
        def begin_cpu_access(self, buf: int, direction: Direction) -> None:
            seen.append(direction)

    _call(Agent(Spy(), None), "begin_cpu_access", 1, Direction.FROM_DEVICE)
    assert seen == [Direction.FROM_DEVICE] and isinstance(seen[0], Direction)


def test_agent_rejects_unknown_ops_and_reports_its_setup_error() -> None:
    with pytest.raises(errors.SetupError, match="no operation 'format_disk'"):
        _call(Agent(ModelTarget(), None), "format_disk")
    broken = Agent(None, errors.NoExporterFound("no /dev/dma_heap"))
    with pytest.raises(errors.NoExporterFound, match="no /dev/dma_heap"):
        _call(broken, "exporters")


def test_channel_talks_to_an_agent_and_times_out(tmp_path: Path) -> None:
    chan = Channel(tmp_path / "a.sock")
    agent = Agent(ModelTarget(), None)
    stop = threading.Event()

    def fake_qemu() -> None:  # connects like QEMU's chardev client, answers like the agent
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(tmp_path / "a.sock"))
        s.sendall(protocol.dumps({"id": 0, "ready": {}}))
        f = s.makefile("rb")
        for line in f:
            msg = protocol.loads(line)
            if msg["op"] == "ping" and msg["args"] == ["silent"]:
                continue  # never answers: the host must time out
            s.sendall(agent.handle(msg) or b"")
            if stop.is_set():
                break
        s.close()

    t = threading.Thread(target=fake_qemu, daemon=True)
    t.start()
    chan.accept(time.monotonic() + 5, lambda: True)
    assert "ready" in chan.read_message(time.monotonic() + 5, lambda: True)
    reply = chan.call("allocate", ("model:reference", 4096), {}, 5, lambda: True)
    assert isinstance(protocol.decode_value(reply["result"]), int)
    with pytest.raises(ChannelTimeout):
        chan.call("ping", ("silent",), {}, 0.3, lambda: True)
    stop.set()
    # The late request is skipped by id; the next call gets its own reply.
    reply = chan.call("live_buffers", (), {}, 5, lambda: True)
    assert protocol.decode_value(reply["result"]) == 1
    chan.close()


def test_config_parsing_and_survival_check() -> None:
    frag = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n# comment\n")
    assert frag == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"'}
    final = parse_config("CONFIG_A=y\nCONFIG_C=\"y\"\n")
    assert missing_options(frag, final) == ['CONFIG_C="x" (got "y")']
    assert missing_options({"CONFIG_Z": "y"}, final) == ["CONFIG_Z=y (got n)"]


def test_build_key_changes_with_fragment_and_arch(tmp_path: Path) -> None:
    src = tmp_path / "linux.tar.xz"
    src.write_bytes(b"x")
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_A=y\n")
    k1 = build_key(src, [frag], get_arch("x86_64"))
    assert k1 == build_key(src, [frag], get_arch("x86_64"))
    assert k1 != build_key(src, [frag], get_arch("aarch64"))
    frag.write_text("CONFIG_A=y\nCONFIG_B=y\n")
    assert k1 != build_key(src, [frag], get_arch("x86_64"))


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownArch, match="unknown QEMU guest architecture 'sparc'"):
        get_arch("sparc")
    with pytest.raises(KernelBuildError, match="kernel source .*nope.* not found"):
        ensure_kernel(tmp_path / "nope")
    with pytest.raises(KernelBuildError, match="not a kernel source tree"):
        ensure_kernel(tmp_path)
    with pytest.raises(KernelBuildError, match="--kernel .*: no such file"):
        ensure_kernel(kernel=tmp_path / "bzImage")
