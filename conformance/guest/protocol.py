"""The host/guest wire protocol: JSON lines over a virtio-serial port.

Request:  ``{"id": 7, "op": "allocate", "args": [...], "kwargs": {...}}``
Reply:    ``{"id": 7, "result": <value>}`` or ``{"id": 7, "error": {...}}``
Ready:    the agent's first line is ``{"id": 0, "ready": {...}}`` once it can serve.

Values are JSON with tagged forms: ``{"__bytes__": "<base64>"}`` for
bytes, ``{"__record__": "<Class>", "v": {...}}`` for the shared records,
``__step__``, ``__earlier__`` and ``__steps__`` for ``Target.run_steps``, and
plain ints for ``Direction`` (the agent turns them back by the method's
annotation).  Errors keep their type across the wire: a ``KernelError`` travels
as errno/op/arg and is rebuilt with ``kernel_error()`` (same class, same
fields); a ``SetupError`` by class name and message.
"""

from __future__ import annotations

import base64
import enum
import json
import sys

from conformance import errors
from conformance.records import (
    DeviceSpec,
    DmaEvent,
    ExporterInfo,
    KernelHealth,
    SgSegment,
    TargetInfo,
)

TYPE_CHECKING = False  # typing is not imported: this module is on the guest agent's start path
if TYPE_CHECKING:
    from typing import Any, Callable

PORT_NAME = "conformance"  # virtserialport name=; the guest sees /dev/virtio-ports/<name>
READY_ID = 0
# A serial console has no hangup: an agent whose host went away keeps the console.
# This line makes it leave (restoring the tty); in a shell it is a comment.
QUIT_LINE = b"#@@dmabuf-conformance:quit"

_RECORDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "DeviceSpec": DeviceSpec.from_json,
    "DmaEvent": DmaEvent.from_json,
    "SgSegment": lambda d: SgSegment(**d),
    "ExporterInfo": lambda d: ExporterInfo(**d),
    "TargetInfo": TargetInfo.from_json,
    "KernelHealth": lambda d: KernelHealth(**d),
}


class ProtocolError(errors.SetupError):
    """A line from the other side that is not valid protocol."""


class RemoteError(Exception):
    """An exception in the agent that is neither a KernelError nor a SetupError (a bug)."""

    def __init__(self, cls: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"{cls} in the guest agent: {message}\n{remote_traceback}")
        self.cls = cls
        self.remote_traceback = remote_traceback


# -- values ----------------------------------------------------------------------


def encode_value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"__bytes__": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, enum.Enum):
        return int(v.value)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if type(v).__name__ in _RECORDS and hasattr(v, "to_json"):
        return {"__record__": type(v).__name__, "v": v.to_json()}
    if isinstance(v, dict):
        return {str(k): encode_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [encode_value(x) for x in v]
    # Target.run_steps: its steps, their references to earlier results, and its outcome.
    # Without conformance.steps loaded there is none of them (the agent's start skips it).
    steps = sys.modules.get("conformance.steps")
    if steps is not None:
        if isinstance(v, steps.Earlier):
            return {"__earlier__": v.index}
        if isinstance(v, steps.Step):
            return {"__step__": [v.op, encode_value(list(v.args)), encode_value(v.kwargs)]}
        if isinstance(v, steps.StepsResult):
            error = None if v.error is None else encode_error(v.error)
            return {"__steps__": {"results": encode_value(v.results), "error": error}}
    raise ProtocolError(f"cannot send a {type(v).__name__} over the guest channel: {v!r}")


def decode_value(v: Any) -> Any:
    if isinstance(v, list):
        return [decode_value(x) for x in v]
    if isinstance(v, dict):
        if "__bytes__" in v:
            return base64.b64decode(v["__bytes__"])
        if "__earlier__" in v or "__step__" in v or "__steps__" in v:
            return _decode_steps(v)
        if "__record__" in v:
            try:
                return _RECORDS[v["__record__"]](v["v"])
            except (KeyError, TypeError) as e:
                raise ProtocolError(f"bad record on the guest channel: {v!r}") from e
        return {k: decode_value(x) for k, x in v.items()}
    return v


def _decode_steps(v: dict[str, Any]) -> Any:
    from conformance import steps

    if "__earlier__" in v:
        return steps.Earlier(int(v["__earlier__"]))
    if "__step__" in v:
        op, args, kwargs = v["__step__"]
        return steps.Step(str(op), tuple(decode_value(args)), decode_value(kwargs))
    error = v["__steps__"]["error"]
    return steps.StepsResult(decode_value(v["__steps__"]["results"]),
                             None if error is None else decode_error(error))


# -- messages --------------------------------------------------------------------


def dumps(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def loads(line: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"not a JSON line on the guest channel: {line[:200]!r}") from e
    if not isinstance(msg, dict) or "id" not in msg:
        raise ProtocolError(f"not a protocol message: {line[:200]!r}")
    return msg


def request(req_id: int, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return dumps({"id": req_id, "op": op, "args": encode_value(list(args)),
                  "kwargs": encode_value(kwargs)})


def reply(req_id: int, result: Any) -> bytes:
    return dumps({"id": req_id, "result": encode_value(result)})


def error_reply(req_id: int, exc: BaseException) -> bytes:
    return dumps({"id": req_id, "error": encode_error(exc)})


def encode_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, errors.KernelError):
        arg = exc.arg
        try:
            arg = encode_value(arg)
        except errors.SetupError:
            arg = repr(arg)
        return {"kind": "kernel", "errno": exc.errno, "op": exc.op, "arg": arg}
    if isinstance(exc, errors.SetupError):
        return {"kind": "setup", "class": type(exc).__name__, "message": str(exc)}
    import traceback  # only for an agent's own bug: not worth its import at every start

    return {"kind": "internal", "class": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}


def decode_error(err: dict[str, Any]) -> BaseException:
    kind = err.get("kind")
    if kind == "kernel":
        return errors.kernel_error(int(err["errno"]), str(err["op"]), decode_value(err.get("arg")))
    if kind == "setup":
        cls = getattr(errors, str(err.get("class")), None)
        usable = isinstance(cls, type) and issubclass(cls, errors.SetupError)
        if usable and cls is not errors.GuestError:  # GuestError wants a console log
            return cls(err.get("message", ""))
        return errors.SetupError(f"{err.get('class')}: {err.get('message', '')}")
    return RemoteError(str(err.get("class")), str(err.get("message")),
                       str(err.get("traceback", "")))
