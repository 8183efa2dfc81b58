"""The LAVA job of ``lava/qemu-job.yaml``, filled in for one DUT and one selection of cases."""

from __future__ import annotations

import json
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import SetupError
from conformance.lava.dut import Dut
from conformance.qemu.kernel import REPO_ROOT

JOB_TEMPLATE = REPO_ROOT / "lava" / "qemu-job.yaml"
DEFINITION = REPO_ROOT / "lava" / "conformance.yaml"
DEVICE_DICTIONARY = REPO_ROOT / "lava" / "devices" / "qemu-dmabuf.jinja2"


@dataclass
class JobParams:
    """The test definition's parameters a job sets (lava/conformance.yaml documents them)."""

    marker: str = "mmap or vmap_aliasing"
    pytest_args: str = ""
    waivers: str = ""
    python: str = sys.executable  # the host's interpreter with pytest, seen over 9p
    repo: Path = REPO_ROOT
    root: str = "/host"
    test_minutes: int = 20
    extra: dict[str, str] = field(default_factory=dict)

    def definition_parameters(self) -> dict[str, str]:
        params = {"ROOT": self.root, "REPO": str(self.repo), "PYTHON": self.python,
                  "MARKER": self.marker, "PYTEST_ARGS": self.pytest_args,
                  "WAIVERS": self.waivers, **self.extra}
        for name, value in params.items():
            # LAVA writes each as NAME='value' into the DUT's run.sh.
            if "'" in value or "\n" in value:
                raise SetupError(f"test definition parameter {name}={value!r}: LAVA quotes "
                                 "parameters with ' and cannot carry a quote or a newline")
        return params


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def render_job(dut: Dut, params: JobParams, definition: Path = DEFINITION) -> str:
    """The job YAML: JSON scalars where a value is free text (JSON is YAML)."""
    if '"' in dut.cmdline:
        raise SetupError(f"kernel command line {dut.cmdline!r} has a double quote, which "
                         "the job's image_arg -append \"...\" cannot carry")
    parameters = "\n".join(f"        {name}: {json.dumps(value)}"
                           for name, value in params.definition_parameters().items())
    return string.Template(JOB_TEMPLATE.read_text()).substitute(
        selection=json.dumps(params.marker or "every case")[1:-1],
        job_minutes=params.test_minutes + 10,
        test_minutes=params.test_minutes,
        kernel=dut.kernel,
        ramdisk=dut.ramdisk,
        cmdline=dut.cmdline,
        parameters=parameters,
        definition=_indent(definition.read_text(), 8),
    )
