"""Run one LAVA job with ``lava-run`` (no server) and read back the results it recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.errors import SetupError
from conformance.lava.dut import prepare_dut
from conformance.lava.install import LavaInstall
from conformance.lava.job import DEVICE_DICTIONARY, JobParams, render_job

LAVA_VENV_SCRIPT = Path(__file__).with_name("lava_venv.py")
# Inside the DUT's root: lava/dut/init mounts the device's `reports` share here.
DUT_REPORTS_DIR = "/run/reports"


class LavaJobError(SetupError):
    """lava-run could not run the job (the message has the log's tail)."""


@dataclass(frozen=True)
class Recorded:
    """One result LAVA recorded (a `lvl: results` line of lava-run's log)."""

    definition: str
    case: str
    result: str
    set: str = ""

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> Recorded:
        return cls(str(msg.get("definition", "")), str(msg.get("case", "")),
                   str(msg.get("result", "")), str(msg.get("set", "")))


@dataclass
class JobRun:
    job_dir: Path
    log: Path  # lava-run's stderr: one YAML record per line
    reports_dir: Path  # the DUT's reports share on the host
    returncode: int
    seconds: float
    results: list[Recorded]

    def cases(self, definition_suffix: str = "dmabuf-conformance") -> list[Recorded]:
        """The results of the test definition (LAVA names it ``<index>_<name>``)."""
        return [r for r in self.results if r.definition.endswith(f"_{definition_suffix}")]

    def lava_results(self) -> dict[str, str]:
        """LAVA's own results (definition ``lava``): job, boot, test stages."""
        return {r.case: r.result for r in self.results if r.definition == "lava"}


def _lava_venv(install: LavaInstall, *args: str) -> str:
    r = subprocess.run([str(install.python), str(LAVA_VENV_SCRIPT), *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise LavaJobError(f"{LAVA_VENV_SCRIPT.name} {args[0]} failed: {r.stderr.strip()}")
    return r.stdout


def recorded_results(install: LavaInstall, log: Path) -> list[Recorded]:
    return [Recorded.from_msg(m) for m in json.loads(_lava_venv(install, "results", str(log)))]


def run_job(install: LavaInstall, params: JobParams, job_dir: Path,
            timeout: float = 1800.0) -> JobRun:
    """Prepare the DUT, render the device and the job into ``job_dir``, run lava-run there."""
    job_dir.mkdir(parents=True, exist_ok=True)
    reports = job_dir / "reports"
    reports.mkdir(exist_ok=True)
    dut = prepare_dut(install, install.home / "dut")
    device = job_dir / "device.yaml"
    device.write_text(_lava_venv(install, "device", str(install.device_types),
                                 str(DEVICE_DICTIONARY), f"reports_dir={reports}"))
    params.extra.setdefault("REPORTS_DIR", DUT_REPORTS_DIR)
    job = job_dir / "job.yaml"
    job.write_text(render_job(dut, params))
    log = job_dir / "lava-run.log"
    argv = [str(install.lava_run), "--job-id", job_dir.name, "--output-dir",
            str(job_dir / "output"), "--device", str(device), str(job)]
    started = time.monotonic()
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # lava-run and the QEMU it started
            proc.wait()
            raise LavaJobError(
                f"lava-run did not finish within {timeout:g} s (log: {log})") from None
    return JobRun(job_dir, log, reports, returncode, time.monotonic() - started,
                  recorded_results(install, log))
