"""The DUT's initramfs, kernel arguments and the job rendered from lava/qemu-job.yaml (no boot)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.errors import SetupError
from conformance.lava import cpio
from conformance.lava.dut import Dut, initramfs, kernel_cmdline
from conformance.lava.job import DEFINITION, JobParams, render_job
from conformance.qemu.boot import GuestConfig
from conformance.qemu.kernel import KernelBuild


def test_initramfs_is_a_newc_archive_with_console_busybox_and_init(tmp_path):
    if shutil.which("cpio") is None:
        pytest.skip("cpio is not installed (qemu/setup-host.sh installs it)")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF not really")
    archive = tmp_path / "initramfs.cpio"
    archive.write_bytes(initramfs(busybox))
    listing = subprocess.run(["cpio", "-itv", "--quiet"], stdin=archive.open("rb"),
                             capture_output=True, text=True, check=True).stdout
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line
             for line in listing.splitlines()}
    assert lines["dev/console"].startswith("crw-------")
    assert "5,   1" in lines["dev/console"]
    assert lines["init"].startswith("-rwxr-xr-x")
    assert lines["bin/sh"].startswith("lrwxrwxrwx") and lines["bin/sh"].endswith("-> busybox")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "init", "bin/busybox"], cwd=out,
                   stdin=archive.open("rb"), check=True)
    assert (out / "bin" / "busybox").read_bytes() == busybox.read_bytes()
    assert (out / "init").read_text().startswith("#!/bin/busybox sh")


def test_cpio_pads_names_and_data_to_four_bytes():
    data = cpio.archive([cpio.file("a", b"xyz")])
    assert data.startswith(b"070701")
    assert len(data) % 4 == 0
    assert b"TRAILER!!!\0" in data


def test_missing_busybox_names_the_setup_command(tmp_path):
    with pytest.raises(SetupError, match="setup-host.sh --with-lava"):
        initramfs(tmp_path / "none")


def _config() -> GuestConfig:
    build = KernelBuild(image=Path("/k/bzImage"), kdir=Path("/k"), release="6.1.192",
                        config_hash="x")
    return GuestConfig(kernel=build, probe_modules=(Path("/k.probe/dmabuf_probe.ko"),),
                       extra_cmdline=("swiotlb=force",))


def test_kernel_arguments_are_the_suite_guests_without_what_lava_cannot_take():
    line = kernel_cmdline(_config()).split()
    assert {"console=ttyS0", "cma=32M", "swiotlb=force", "rdinit=/init",
            "dmabuf_conformance.probe=/k.probe/dmabuf_probe.ko"} <= set(line)
    # LAVA waits for the "Linux version" banner, a KERN_NOTICE; lava/dut/init sets 5 later.
    assert "quiet" not in line and not any(a.startswith("loglevel=") for a in line)
    assert not any(a.startswith("root=") for a in line)


def test_job_embeds_the_definition_and_its_parameters():
    dut = Dut(Path("/k/bzImage"), Path("/c/i.cpio"), "console=ttyS0 rdinit=/init", "6.1.192",
              ())
    job = render_job(dut, JobParams(waivers="/w.json", python="/py", repo=Path("/repo")))
    assert "url: file:///k/bzImage" in job and "url: file:///c/i.cpio" in job
    assert '-append "console=ttyS0 rdinit=/init"' in job
    assert '        WAIVERS: "/w.json"' in job and '        ROOT: "/host"' in job
    assert '        MARKER: "mmap or vmap_aliasing"' in job
    for line in DEFINITION.read_text().splitlines():
        assert ("        " + line if line.strip() else line) in job
    assert "$" not in job.replace("${ROOT%/}${REPO}", "")


def test_parameters_lava_cannot_quote_are_refused():
    with pytest.raises(SetupError, match="cannot carry a quote"):
        JobParams(pytest_args="-k 'a or b'").definition_parameters()
