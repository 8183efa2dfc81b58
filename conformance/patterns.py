"""Data patterns that make a stale or misplaced byte visible.

Nothing here assumes a page size: a target kernel's is 4, 16 or 64 KiB
(``TargetInfo.page_size``; the cases get it from the ``page_size`` fixture).
Helpers that speak in pages take it as an argument.
"""

from __future__ import annotations

import functools
from typing import Optional

MiB = 1 << 20


def page_align(n: int, page_size: int) -> int:
    """``n`` rounded up to a whole number of pages of ``page_size`` bytes."""
    return (n + page_size - 1) // page_size * page_size


def page_count_id(n: int) -> str:
    """A readable test id for a size of ``n`` pages: ``1-page``, ``16-pages``."""
    return f"{n}-page" if n == 1 else f"{n}-pages"


def pattern(length: int, seed: int = 0xA5) -> bytes:
    """Bytes that differ from their neighbours and from zero, so shifts and holes show."""
    # (7 * i) mod 256 has period 256, so one block repeated is the whole pattern.
    return (_block(seed & 0xFF) * (length // 256 + 1))[:length]


# Made once per seed: a page pattern (targets.base.page_pattern) asks for one block per
# page, and 515 pages of blocks made afresh were 26 ms natively, many times that in an
# emulated guest filling a buffer.
@functools.cache
def _block(seed: int) -> bytes:
    return bytes(((i * 7 + seed) & 0xFF) or 0x5A for i in range(256))


def describe_difference(
    left: bytes, right: bytes, page_size: Optional[int] = None
) -> list[str]:
    """Where two byte strings first differ, in a few lines (for assertion messages).

    With ``page_size`` the first difference is also given in pages of it,
    which is how an exporter's page-granular bugs (a wrong page, a missing
    clean of one page) are recognised.
    """
    lines = [f"got {len(left)} bytes, expected {len(right)} bytes"]
    for i, (a, b) in enumerate(zip(left, right)):
        if a != b:
            lo, hi = max(i - 4, 0), i + 12
            where = f"byte {i}"
            if page_size:
                where += f" ({i // page_size} pages + {i % page_size})"
            lines.append(f"first difference at {where}")
            lines.append(f"  got      [{lo}:{hi}]: {bytes(left[lo:hi]).hex(' ')}")
            lines.append(f"  expected [{lo}:{hi}]: {bytes(right[lo:hi]).hex(' ')}")
            differing = sum(x != y for x, y in zip(left, right))
            lines.append(f"{differing} of {min(len(left), len(right))} bytes differ")
            return lines
    lines.append("the shorter is a prefix of the longer")
    return lines


def assert_same_bytes(
    got: bytes, expected: bytes, what: str = "", page_size: Optional[int] = None
) -> None:
    """``assert got == expected`` for buffers, saying where they differ.

    Not a bare assert: pytest explains a failed ``==`` on bytes with a difflib
    diff, quadratic in the length, and with CI set it never truncates, so a
    failing megabyte comparison would take minutes.  ``page_size``, when
    given, also places the first difference in pages.
    """
    __tracebackhide__ = True
    if bytes(got) != bytes(expected):
        lines = [what] if what else []
        lines += describe_difference(bytes(got), bytes(expected), page_size)
        raise AssertionError("\n".join(lines))
