"""The guest's PID 1 (conformance/guest/pid1.py): what it reads from the kernel command line.

Its mounts, probe loading and agent start run only as PID 1 of a guest; every test
that boots one (tests/test_qemu_*.py) goes through them.
"""

from __future__ import annotations

import subprocess
import sys

from conformance.guest import pid1
from conformance.qemu.boot import INIT_SCRIPT


def test_settings_are_the_dotted_parameters_and_the_console() -> None:
    line = ("console=ttyS0 loglevel=5 ro init=/usr/bin/python3 dmabuf_conformance.mode=agent "
            "dmabuf_conformance.probe=/a.ko,/b.ko swiotlb=force -- -S -u -B /r/qemu/guest/init")
    assert pid1.settings(line) == {"console": "ttyS0", "mode": "agent",
                                   "probe": "/a.ko,/b.ko"}


def test_the_init_script_is_python_that_imports_without_site() -> None:
    # The kernel runs `python -S -u -B qemu/guest/init`; only compile it here (running it
    # would mount file systems).
    r = subprocess.run([sys.executable, "-S", "-B", "-c",
                        f"compile(open({str(INIT_SCRIPT)!r}).read(), 'init', 'exec')"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-S", "-B", "-c",
                        "import sys; sys.path.insert(0, sys.argv[1]); "
                        "import conformance.guest.pid1, conformance.guest.agent",
                        str(INIT_SCRIPT.parents[2])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# Modules the guest agent's start must not import (issue 14): each is executed by an
# emulated CPU at every boot, and none is needed to serve.  typing: the annotations are
# strings (`from __future__ import annotations`); ctypes.util: its find_library pulls in
# subprocess, shutil and tempfile (0.4 s of a TCG boot); traceback, signal, platform:
# wanted only on error paths or replaced by os.uname(); conformance.steps: three
# dataclasses, loaded when the host first sends a run of steps.
NOT_ON_THE_START_PATH = ("typing", "ctypes.util", "subprocess", "shutil", "tempfile",
                         "traceback", "signal", "platform", "argparse", "conformance.steps")


def test_the_agent_starts_without_the_heavy_modules() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from conformance.guest import pid1, agent; agent.start_agent(); "
            "print(' '.join(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-S", "-B", "-c", code, str(INIT_SCRIPT.parents[2])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert "conformance.targets.local" in loaded  # the agent made its target
    assert not loaded & set(NOT_ON_THE_START_PATH), sorted(loaded & set(NOT_ON_THE_START_PATH))
