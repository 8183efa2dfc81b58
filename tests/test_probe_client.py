"""ProbeClient's behaviour without the module: clear setup errors, never a traceback.

The kernel-side behaviour is tested in a guest (tests/test_probe_guest.py).
"""

from __future__ import annotations

import pytest

from conformance.errors import ProbeUnavailable
from conformance.probe import BUILD_HINT, ProbeClient


def test_missing_device_says_how_to_build(tmp_path) -> None:
    with pytest.raises(ProbeUnavailable) as e:
        ProbeClient(str(tmp_path / "dmabuf_probe"))
    assert "does not exist" in str(e.value)
    assert "make -C qemu/probe" in str(e.value)


def test_a_file_that_is_not_the_probe_is_refused() -> None:
    with pytest.raises(ProbeUnavailable) as e:
        ProbeClient("/dev/null")
    assert "is not the dmabuf probe" in str(e.value)


def test_build_hint_names_kdir_and_insmod() -> None:
    assert "KDIR=" in BUILD_HINT and "insmod" in BUILD_HINT
