"""The HTML report: Allure's own generator run offline on ``reports/allure-results``.

Allure 3 (npm ``allure``) writes one self-contained ``index.html`` (its
``singleFile`` option), which opens from disk with no web server; Allure 2
(allure-commandline on the machine's Java) is used when that is what is
installed.  Cases are grouped exporter > family > case id, like the summary.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from conformance.errors import SetupError

INSTALL_HINT = (
    "install the generator with `npm install -g allure` (Allure 3, needs Node.js: "
    "`apt-get install -y nodejs npm`) or put allure-commandline 2.x on PATH"
)


class ReportToolMissing(SetupError):
    """The Allure generator (or the results it needs) is not there."""


def allure_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReportToolMissing(f"cannot run {binary} --version: {exc}; {INSTALL_HINT}") from None
    return out.strip().splitlines()[-1].strip() if out.strip() else ""


def generate_html(results: Path, out: Path, name: str = "dma-buf conformance") -> Path:
    """Generate ``out/index.html`` from the raw results; returns its path."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ReportToolMissing(
            f"no Allure results in {results}: run the cases with --alluredir={results} first"
        )
    binary = shutil.which("allure")
    if binary is None:
        raise ReportToolMissing(f"the `allure` command is not on PATH; {INSTALL_HINT}")
    version = allure_version(binary)
    if out.exists():
        shutil.rmtree(out)
    if version.startswith("2."):
        cmd = [binary, "generate", str(results), "-o", str(out), "--clean", "--single-file",
               "--name", name]
        _run(cmd)
    else:
        config = {
            "name": name,
            "plugins": {
                "awesome": {
                    "options": {
                        "singleFile": True,
                        "reportName": name,
                        "groupBy": ["epic", "feature", "story"],
                    }
                }
            },
        }
        with tempfile.TemporaryDirectory(prefix="allure-config-") as tmp:
            rc = Path(tmp) / "allurerc.json"
            rc.write_text(json.dumps(config), encoding="utf-8")
            _run([binary, "generate", str(results), "-c", str(rc), "-o", str(out)])
    index = out / "index.html"
    if not index.is_file():
        raise ReportToolMissing(f"allure {version} ran but wrote no {index}")
    return index


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise ReportToolMissing(
            f"{' '.join(cmd)} failed with status {proc.returncode}:\n"
            f"{(proc.stderr or proc.stdout)[-2000:]}"
        )
