"""Data patterns that make a stale or misplaced byte visible."""

from __future__ import annotations

PAGE_SIZE = 4096
MiB = 1 << 20


def page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def pattern(length: int, seed: int = 0xA5) -> bytes:
    """Bytes that differ from their neighbours and from zero, so shifts and holes show."""
    # (7 * i) mod 256 has period 256, so one block repeated is the whole pattern.
    block = bytes(((i * 7 + seed) & 0xFF) or 0x5A for i in range(256))
    return (block * (length // 256 + 1))[:length]
