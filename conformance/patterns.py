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


def describe_difference(left: bytes, right: bytes) -> list[str]:
    """Where two byte strings first differ, in a few lines (for assertion messages)."""
    lines = [f"got {len(left)} bytes, expected {len(right)} bytes"]
    for i, (a, b) in enumerate(zip(left, right)):
        if a != b:
            lo, hi = max(i - 4, 0), i + 12
            lines.append(f"first difference at byte {i} ({i // PAGE_SIZE} pages + {i % PAGE_SIZE})")
            lines.append(f"  got      [{lo}:{hi}]: {bytes(left[lo:hi]).hex(' ')}")
            lines.append(f"  expected [{lo}:{hi}]: {bytes(right[lo:hi]).hex(' ')}")
            differing = sum(x != y for x, y in zip(left, right))
            lines.append(f"{differing} of {min(len(left), len(right))} bytes differ")
            return lines
    lines.append("the shorter is a prefix of the longer")
    return lines


def assert_same_bytes(got: bytes, expected: bytes, what: str = "") -> None:
    """``assert got == expected`` for buffers, saying where they differ.

    Not a bare assert: pytest explains a failed ``==`` on bytes with a difflib
    diff, quadratic in the length, and with CI set it never truncates, so a
    failing megabyte comparison would take minutes.
    """
    __tracebackhide__ = True
    if bytes(got) != bytes(expected):
        lines = ([what] if what else []) + describe_difference(bytes(got), bytes(expected))
        raise AssertionError("\n".join(lines))
