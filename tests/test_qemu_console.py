"""The console parser on canned kernel output (no guest needed)."""

from __future__ import annotations

from pathlib import Path

from conformance.qemu.console import ConsoleLog, parse_console

BOOT = """\
[    0.000000] Linux version 6.1.0-dmabuf (root@host) #1 SMP
[    0.412345] Memory: 985432K/1048056K available
[    3.101000] Run /work/main/qemu/guest/init as init process
[init] starting the agent: /usr/bin/python3 -m conformance.guest.agent
[agent] ready on /dev/virtio-ports/conformance (0.120 s to create the target)
"""

DMA_API_WARN = """\
[    5.123456] ------------[ cut here ]------------
[    5.123789] DMA-API: dmabuf_probe noncoherent: device driver tries to free DMA memory it has \
not allocated [device address=0x0000000012340000] [size=4096 bytes]
[    5.124000] WARNING: CPU: 1 PID: 1 at kernel/dma/debug.c:973 check_unmap+0x1a0/0x7e0
[    5.124100] Modules linked in: dmabuf_probe
[    5.124200] CPU: 1 PID: 1 Comm: python3 Not tainted 6.1.0 #1
[    5.124300] RIP: 0010:check_unmap+0x1a0/0x7e0
[    5.124400] Call Trace:
[    5.124500]  <TASK>
[    5.124600]  debug_dma_unmap_sg+0x10/0x20
[    5.124700]  </TASK>
[    5.124800] ---[ end trace 0000000000000000 ]---
"""

PLAIN_WARN = """\
[    7.000000] ------------[ cut here ]------------
[    7.000100] WARNING: CPU: 0 PID: 88 at drivers/dma-buf/heaps/system_heap.c:120 \
system_heap_dma_buf_end_cpu_access+0x2c/0x40
[    7.000200] ---[ end trace 0000000000000000 ]---
"""

PANIC = """\
[   10.000000] sysrq: Trigger a crash
[   10.000100] Kernel panic - not syncing: sysrq triggered crash
[   10.000200] CPU: 0 PID: 1 Comm: python3 Not tainted 6.1.0 #1
[   10.000300] Call Trace:
[   10.000400] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---
"""

OOPS = """\
[   12.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.000100] #PF: supervisor read access in kernel mode
[   12.000200] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   12.000300] RIP: 0010:dma_buf_vmap+0x10/0x80
[   12.000400] ---[ end trace 0000000000000000 ]---
"""


def test_clean_boot_has_no_complaints() -> None:
    report = parse_console(BOOT)
    assert report.clean
    assert report.excerpt == ""


def test_dma_api_warning_counts_once_with_its_error() -> None:
    report = parse_console(BOOT + DMA_API_WARN)
    assert report.warnings == 1  # "cut here" and "WARNING:" belong to one report
    assert report.dma_api_errors == 1
    assert report.panic is None
    assert "device driver tries to free DMA memory" in report.excerpt
    assert report.excerpt.splitlines()[0].endswith("[ cut here ]------------")


def test_two_reports_count_twice() -> None:
    report = parse_console(DMA_API_WARN + PLAIN_WARN)
    assert report.warnings == 2
    assert report.dma_api_errors == 1


def test_report_without_end_marker_does_not_swallow_the_next() -> None:
    truncated = "\n".join(PLAIN_WARN.splitlines()[:2]) + "\n"
    assert parse_console(truncated + PLAIN_WARN).warnings == 2


def test_panic_reason_and_excerpt() -> None:
    report = parse_console(BOOT + PANIC)
    assert report.panic == "sysrq triggered crash"
    assert not report.clean
    assert "Kernel panic - not syncing" in report.excerpt


def test_oops_is_one_complaint() -> None:
    report = parse_console(OOPS)
    assert report.warnings == 1
    assert "dma_buf_vmap" in report.excerpt


def test_lines_without_timestamps_are_parsed() -> None:
    report = parse_console("WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:5534 f+0x1/0x2\n")
    assert report.warnings == 1


def test_agent_and_init_lines_are_not_complaints() -> None:
    text = "[agent] cannot create the target: BUG: not really\n[init] loaded x.ko\n"
    assert parse_console(text).clean


def test_console_log_reads_from_a_mark(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    log = ConsoleLog(path)
    assert log.mark() == 0 and log.since(0) == ""
    path.write_text(BOOT)
    mark = log.mark()
    with path.open("a") as f:
        f.write(PLAIN_WARN)
    assert log.since(mark) == PLAIN_WARN
    assert parse_console(log.since(mark)).warnings == 1
    assert parse_console(log.since(log.mark())).clean
