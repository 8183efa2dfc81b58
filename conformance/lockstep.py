"""Run a case on a target and on the reference model side by side, step by step.

A case only talks to the ``Target`` it is given.  On a real target (and for a
faulty model exporter) that target is a ``CheckedTarget``: every operation goes
to the target under test and to a *shadow*, the reference model standing in for
the same kind of exporter.  Each side's outcome is reduced to what the contract
fixes (errno, sizes, data read back, the DMA calls made; never handles, inode
numbers or addresses) and the two are compared.  At the first difference the
case stops with a ``Divergence`` whose message is a step table a vendor can
read: what was called, what their exporter did, what a correct one does.

One difference is not a divergence: the target running out of a resource
(ENOMEM, EIO from the DMA layer) where the model did not.  The model cannot
know a machine's CMA area or swiotlb size; the comparison stops there and the
error goes to the case, which decides whether that is a failure.
"""

from __future__ import annotations

import errno
import inspect
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from conformance.errors import KernelError, SetupError
from conformance.records import Direction, DmaEvent, KernelHealth, SgSegment
from conformance.steps import Step, StepsResult, resolve_earlier
from conformance.targets.base import OPERATIONS, Target

# Parameter names that carry handles, and the handle kind each names.
_HANDLE_PARAMS = {
    "buf": "buf",
    "mapping": "mapping",
    "attachment": "attachment",
    "vmap": "vmap",
    "kmap": "kmap",
    "sync_file": "sync_file",
}
# Operations that hand out a handle, and its kind.
_HANDLE_RESULTS = {
    "allocate": "buf",
    "udmabuf_create": "buf",
    "prime_import": "buf",
    "dup": "buf",
    "mmap": "mapping",
    "attach": "attachment",
    "vmap": "vmap",
    "kmap": "kmap",
    "export_sync_file": "sync_file",
}


FULLY, PARTIALLY, NOT_COMPARED = "fully", "partially", "not compared"


@dataclass(frozen=True)
class Comparison:
    """``compared`` of ``steps`` steps were checked against the model; ``why`` it stopped."""

    status: str  # FULLY, PARTIALLY or NOT_COMPARED
    compared: int
    steps: int
    why: str = ""

    def line(self) -> str:
        if self.status == FULLY:
            return f"compared with the reference model at every step ({self.steps})"
        return f"compared up to step {self.compared} of {self.steps}: {self.why}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Divergence(AssertionError):
    """The target did something the reference model does not."""

    def __init__(self, message: str, log: ObservationLog) -> None:
        super().__init__(message)
        self.log = log


@dataclass
class Outcome:
    """One side's result of one step, reduced to what the contract fixes."""

    status: str  # "ok", an errno name such as "EINVAL", or "n/a"
    value: Any = None  # the comparable projection; None when nothing is compared
    shown: str = ""  # how the step table prints it

    def __str__(self) -> str:
        if self.status != "ok":
            return self.status
        return self.shown or "ok"


@dataclass
class Observation:
    step: int
    call: str
    target: Outcome
    model: Outcome | None = None
    note: str = ""

    @property
    def diverged(self) -> bool:
        return bool(self.note)


@dataclass
class ObservationLog:
    """Every step of one case, for the failure message and the report."""

    exporter: str = ""
    model_exporter: str = ""
    steps: list[Observation] = field(default_factory=list)
    shadow_stopped: str = ""
    with_shadow: bool = False
    # Steps 1..compared_upto were compared; set when the shadow stops mid-case.
    compared_upto: int | None = None

    def comparison(self) -> Comparison:
        """How much of the case the reference model followed."""
        total = len(self.steps)
        if not self.with_shadow:
            return Comparison(NOT_COMPARED, 0, total, "no reference model for this case")
        if self.compared_upto is None:
            return Comparison(FULLY, total, total)
        status = PARTIALLY if self.compared_upto > 0 else NOT_COMPARED
        return Comparison(status, self.compared_upto, total, self.shadow_stopped)

    def render(self, limit: int = 40) -> str:
        if not self.steps:
            return "(no target operations)"
        with_model = any(s.model is not None for s in self.steps)
        rows = [("#", "operation", "target", "reference model" if with_model else "")]
        shown = self.steps if len(self.steps) <= limit else self.steps[-limit:]
        for s in shown:
            marker = ">" if s.diverged else " "
            rows.append(
                (
                    f"{marker}{s.step}",
                    s.call,
                    str(s.target),
                    "" if s.model is None else str(s.model),
                )
            )
        widths = [min(max(len(r[i]) for r in rows), 60) for i in range(3)]
        lines = []
        if len(shown) < len(self.steps):
            lines.append(f"  ({len(self.steps) - len(shown)} earlier steps not shown)")
        for r in rows:
            cells = [_clip(r[i], widths[i]).ljust(widths[i]) for i in range(3)] + [r[3]]
            lines.append("  ".join(cells).rstrip())
        for s in self.steps:
            if s.diverged:
                lines.append(f"  step {s.step}: {s.note}")
        if self.shadow_stopped:
            lines.append(f"  (model comparison stopped: {self.shadow_stopped})")
        return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- projections: what of each operation's result the contract fixes ---------


def _show_bytes(data: bytes) -> str:
    if len(data) <= 8:
        return data.hex(" ") or "(empty)"
    if data.count(data[0]) == len(data):
        return f"{len(data)} B of {data[0]:02x}"
    return f"{data[:8].hex(' ')} … ({len(data)} B)"


def _first_difference(a: bytes, b: bytes) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at byte {i}: target {x:#04x}, reference {y:#04x}"
    return f"lengths differ: target {len(a)} B, reference {len(b)} B"


def _project(op: str, result: Any) -> Outcome:
    if op in ("cpu_read", "device_read", "vmap_read"):
        return Outcome("ok", bytes(result), _show_bytes(bytes(result)))
    if op in ("buffer_size", "lseek", "poll"):
        return Outcome("ok", result, str(result))
    if op == "map_attachment":
        segs: list[SgSegment] = list(result)
        total = sum(s.length for s in segs)
        return Outcome("ok", total, f"{len(segs)} segment(s), {total} B")
    if op == "fdinfo":
        kept = {k: result[k] for k in ("size",) if k in result}
        return Outcome("ok", kept, " ".join(f"{k}={v}" for k, v in kept.items()))
    if op == "counters":
        return Outcome("ok", dict(result), " ".join(f"{k}={v}" for k, v in sorted(result.items())))
    if op == "dma_events":
        events: list[DmaEvent] = list(result)
        key = Counter((e.device, e.op, int(e.direction), e.skip_cpu_sync) for e in events)
        return Outcome("ok", key, ", ".join(str(e) for e in events) or "(none)")
    return Outcome("ok")


# A real kernel's kernel_mappings is read off /proc/vmallocinfo by size: it
# cannot see vm_map_ram mappings of 64 pages or fewer, and other mappings of
# the same size count in.  The cases that need it judge it with those limits
# in mind (KMAP-003/004, NEGKMAP-002); a step-by-step comparison would call
# every blind spot a divergence (seen: 5.10's vgem vmap of one page).
_COUNTERS_CASES_JUDGE = frozenset({"kernel_mappings"})


def _same(op: str, target: Outcome, model: Outcome) -> str:
    """Empty when the two agree, else a sentence saying how they differ."""
    if target.status != model.status:
        return f"the target returned {target.status}, the reference model returns {model.status}"
    if target.status != "ok" or target.value is None or model.value is None:
        return ""
    if op == "counters":
        common = (set(target.value) & set(model.value)) - _COUNTERS_CASES_JUDGE
        bad = [k for k in sorted(common) if target.value[k] != model.value[k]]
        if bad:
            return "counter " + ", ".join(
                f"{k}: target {target.value[k]}, reference {model.value[k]}" for k in bad
            )
        return ""
    if target.value == model.value:
        return ""
    if isinstance(target.value, bytes):
        return _first_difference(target.value, model.value)
    if op == "dma_events":
        missing = model.value - target.value
        extra = target.value - model.value
        parts = []
        if missing:
            parts.append("missing " + ", ".join(_event_key(k) for k in missing))
        if extra:
            parts.append("unexpected " + ", ".join(_event_key(k) for k in extra))
        return "DMA calls differ: " + "; ".join(parts)
    return f"target {target.shown}, reference {model.shown}"


# ENOMEM: memory, CMA area, vmalloc space; EIO: what dma_map_sgtable returns
# when the DMA layer (swiotlb, an IOMMU) cannot map the list for the device.
_RESOURCE_ERRNOS = {errno.ENOMEM, errno.EIO}


def _resource_limit(error: BaseException | None, model: Outcome) -> bool:
    return (
        isinstance(error, KernelError) and error.errno in _RESOURCE_ERRNOS and model.status == "ok"
    )


def _event_key(key: tuple[str, str, int, bool]) -> str:
    device, op, direction, skip = key
    return f"{op}({device}, {Direction(direction).name}{', SKIP_CPU_SYNC' if skip else ''})"


# -- the checked target ---------------------------------------------------------


def _render_call(op: str, bound: inspect.BoundArguments) -> str:
    parts = []
    for name, value in bound.arguments.items():
        if name in _HANDLE_PARAMS:
            parts.append(f"{name}#{value}")
        elif isinstance(value, (bytes, bytearray)):
            parts.append(_show_bytes(bytes(value)))
        elif name == "kwargs" or value is None:
            continue
        elif hasattr(value, "name") and hasattr(value, "value"):  # enums
            parts.append(value.name or str(int(value)))
        else:
            parts.append(repr(value))
    return f"{op}({', '.join(parts)})"


class CheckedTarget(Target):
    """A target whose every operation is recorded and, with a shadow, compared.

    ``model_exporter_for`` maps an exporter name of the target to the model
    exporter that stands in for it on the shadow.  ``on_step`` is told of
    every finished step (the report turns them into Allure steps).
    Operations outside ``OPERATIONS`` (info, exporters, health, ...) go to
    the target alone.
    """

    def __init__(
        self,
        target: Target,
        shadow: Target | None = None,
        model_exporter_for: Callable[[str], str] | None = None,
        on_step: Callable[[Observation], None] | None = None,
    ) -> None:
        self.inner = target
        self.name = target.name
        self.shadow = shadow
        self._model_exporter_for = model_exporter_for or (lambda name: name)
        self._on_step = on_step
        self.log = ObservationLog(with_shadow=shadow is not None)
        self._handles: dict[tuple[str, int], int] = {}

    # non-operations: straight through
    def info(self):  # type: ignore[override]
        return self.inner.info()

    def exporters(self):  # type: ignore[override]
        return self.inner.exporters()

    # process-level, not compared: the target alone (the base default would
    # allocate in this process, through the checked calls)
    def allocate_in_child(self, exporter: str, size: int) -> str:
        return self.inner.allocate_in_child(exporter, size)

    def set_fd_limit(self, soft: int) -> int:
        return self.inner.set_fd_limit(soft)

    def devices(self):  # type: ignore[override]
        return self.inner.devices()

    def health(self):  # type: ignore[override]
        return self.inner.health()

    def close_all(self) -> None:
        self.inner.close_all()
        if self.shadow is not None:
            self.shadow.close_all()

    def end_case(self) -> KernelHealth:
        # The target's health is the verdict; the shadow only needs its slate cleaned.
        health = self.inner.end_case()
        if self.shadow is not None:
            self.shadow.close_all()
        return health

    def _stop_shadow(self, why: str) -> None:
        # The step that stopped the shadow was not compared (or, out of a
        # resource, disagreed lawfully): everything before it was.
        self.log.shadow_stopped = why
        self.log.compared_upto = max(len(self.log.steps) - 1, 0)
        self.shadow = None

    def run_steps(self, steps: list[Step]) -> StepsResult:
        """The target runs the steps in one request; each is then compared with the
        shadow and recorded as if it had been called alone."""
        __tracebackhide__ = True
        ran = self.inner.run_steps(steps)  # which refuses a bad run before anything runs
        results: list[Any] = []
        for i, step in enumerate(steps[: len(ran.results) + (ran.error is not None)]):
            done = (None, ran.error) if i == len(ran.results) else (ran.results[i], None)
            args, kwargs = resolve_earlier(step, results)
            try:
                results.append(self._call_with(_replay(*done), step.op, args, kwargs))
            except KernelError as exc:
                return StepsResult(results, exc)
        return StepsResult(results)

    def _call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # the vendor needs the step table, not our frames
        return self._call_with(getattr(self.inner, op), op, args, kwargs)

    def _call_with(self, method: Callable[..., Any], op: str, args: Any,
                   kwargs: dict[str, Any]) -> Any:
        __tracebackhide__ = True
        bound = _SIGNATURES[op].bind(*args, **kwargs)
        bound.apply_defaults()
        step = Observation(len(self.log.steps) + 1, _render_call(op, bound), Outcome("n/a"))
        self.log.steps.append(step)

        shadow_args = self._shadow_arguments(op, bound) if self.shadow is not None else None

        try:
            return self._run_step(op, method, bound, shadow_args, step)
        finally:
            if self._on_step is not None:
                self._on_step(step)

    def _run_step(
        self,
        op: str,
        method: Callable[..., Any],
        bound: inspect.BoundArguments,
        shadow_args: inspect.BoundArguments | None,
        step: Observation,
    ) -> Any:
        __tracebackhide__ = True
        error: BaseException | None = None
        result: Any = None
        try:
            result = method(*bound.args, **bound.kwargs)
            step.target = _project(op, result)
        except KernelError as exc:
            error = exc
            step.target = Outcome(exc.errno_name)
        except SetupError:
            # The target cannot do this at all (no probe, ...): not a divergence.
            step.target = Outcome("n/a")
            raise

        if self.shadow is not None and shadow_args is not None:
            shadow_result: Any = None
            try:
                shadow_result = getattr(self.shadow, op)(*shadow_args.args, **shadow_args.kwargs)
                step.model = _project(op, shadow_result)
            except KernelError as exc:
                step.model = Outcome(exc.errno_name)
            except SetupError as exc:
                self._stop_shadow(f"{op}: {exc}")
            if step.model is not None and _resource_limit(error, step.model):
                # The model has memory, swiotlb slots and vmalloc space to spare; a real
                # machine may not. Running out is for the case to judge, not a divergence.
                self._stop_shadow(
                    f"step {step.step}: the target ran out of a resource ({step.target}) "
                    "where the model did not"
                )
            elif step.model is not None:
                step.note = _same(op, step.target, step.model)
                if not step.note and error is None and op in _HANDLE_RESULTS:
                    self._handles[(_HANDLE_RESULTS[op], result)] = shadow_result
                if step.note:
                    raise Divergence(self._divergence_message(step), self.log) from error
        if error is not None:
            raise error
        return result

    def _shadow_arguments(self, op: str, bound: inspect.BoundArguments):
        arguments = dict(bound.arguments)
        for name, kind in _HANDLE_PARAMS.items():
            if name in arguments:
                key = (kind, arguments[name])
                if key not in self._handles:
                    # The handle was made before the shadow could follow (or by
                    # a step the shadow refused): nothing sensible to compare.
                    self._stop_shadow(f"no model counterpart for {name}#{arguments[name]}")
                    return None
                arguments[name] = self._handles[key]
        if "exporter" in arguments:  # allocate, udmabuf_create, prime_import
            arguments["exporter"] = self._model_exporter_for(arguments["exporter"])
            if not self.log.exporter:
                self.log.model_exporter = arguments["exporter"]
                self.log.exporter = bound.arguments["exporter"]
        return _SIGNATURES[op].bind(**arguments)

    def _divergence_message(self, step: Observation) -> str:
        who = self.log.exporter or "the exporter"
        ref = self.log.model_exporter or "the reference model"
        return (
            f"{who} diverged from {ref} at step {step.step}, {step.call}: {step.note}.\n"
            f"{ref} returns: {step.model}.\n\n"
            f"Steps so far:\n{self.log.render()}"
        )


def _replay(result: Any, error: BaseException | None) -> Callable[..., Any]:
    """A stand-in for the target's method that answers what the target already did."""
    def method(*_args: Any, **_kwargs: Any) -> Any:
        if error is not None:
            raise error
        return result

    return method


def unchecked(target: Target) -> Target:
    """The target under a ``CheckedTarget`` (itself otherwise), for steps whose legal
    outcomes differ per exporter or machine and that a case judges by itself."""
    return target.inner if isinstance(target, CheckedTarget) else target


def _signature_without_self(op: str) -> inspect.Signature:
    sig = inspect.signature(getattr(Target, op))
    return sig.replace(parameters=list(sig.parameters.values())[1:])


# Bound against the interface, not an implementation, so that every target's
# arguments are named alike.
_SIGNATURES = {op: _signature_without_self(op) for op in OPERATIONS}


def _make_forwarder(op: str) -> Callable[..., Any]:
    base = getattr(Target, op)

    def forward(self: CheckedTarget, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return self._call(op, *args, **kwargs)

    forward.__name__ = op
    forward.__doc__ = base.__doc__
    forward.__signature__ = inspect.signature(base)  # type: ignore[attr-defined]
    return forward


for _op in OPERATIONS:
    setattr(CheckedTarget, _op, _make_forwarder(_op))
CheckedTarget.__abstractmethods__ = frozenset()
