"""The two kinds of skip a conformance case can end with, told apart by the verdict.

* ``not_applicable``: the contract does not bind this exporter here (another
  exporter kind, an optional capability the exporter may lawfully lack, a
  kernel version range the contract does not cover).  Nothing was left
  unchecked.
* ``not_checked``: the contract binds, but this run could not check it (an
  instrument is missing, the machine lacks a resource, the probe is not
  loaded).  The exporter's verdict is then ``incomplete``, never
  ``conformant``.

The reason is the skip message, so every report (terminal, JUnit, Allure, the
summary) carries the kind.  A skip without either prefix counts as not checked:
an unexplained skip must not make a verdict look complete.
"""

from __future__ import annotations

from typing import NoReturn

NOT_APPLICABLE = "not applicable: "
NOT_CHECKED = "not checked: "


def not_applicable(reason: str) -> NoReturn:
    """End the case: the contract does not bind here (``reason`` says why)."""
    import pytest  # the package is stdlib-only; only the runner side calls this

    pytest.skip(NOT_APPLICABLE + reason)


def not_checked(reason: str) -> NoReturn:
    """End the case: the contract binds but this run cannot check it."""
    import pytest

    pytest.skip(NOT_CHECKED + reason)


def is_not_applicable(skip_message: str) -> bool:
    return skip_message.startswith(NOT_APPLICABLE)
