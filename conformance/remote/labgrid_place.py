"""A labgrid place held for a run: reserved, locked, and released after, through the coordinator.

The farm's own client does the work (``labgrid-client reserve``, ``wait``,
``lock``, ``unlock``, ``cancel-reservation``), so a lab sees our runs in
``labgrid-client reservations`` and ``who`` like any other user's.  A place
is chosen by a reservation filter: tags (``board=imx8mp``), or ``name=PLACE``
for one named place.  Each pytest worker holds a place of its own: that is
how eight boards become eight workers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from conformance.errors import SetupError

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
CLIENT_TIMEOUT = 60.0  # one labgrid-client call (not the wait for a free place)
_TOKEN = re.compile(r"^export LG_TOKEN=(\S+)$", re.M)
_PLACE = re.compile(r"^Place '([^']+)':", re.M)
_FILTER = re.compile(r"^[A-Za-z0-9_-]+=\S+$")


class PlaceUnavailable(SetupError):
    """No place matching the filter was free in time, or the coordinator refused."""


def parse_filter(text: str) -> dict[str, str]:
    """``"board=imx8 soc=mp"`` (as ``labgrid-client reserve`` takes it) as a dict."""
    words = text.split()
    bad = [w for w in words if not _FILTER.match(w)]
    if not words or bad:
        raise SetupError(f"--lg-reserve {text!r}: expected KEY=VALUE tags as labgrid-client "
                         "reserve takes them (e.g. board=dmabuf, or name=PLACE)")
    return dict(w.split("=", 1) for w in words)


@dataclass
class HeldPlace:
    """A place this process reserved and locked; ``release()`` gives it back."""

    coordinator: str
    place: str
    token: str
    filters: dict[str, str]
    waited_s: float = 0.0
    released: bool = False

    def release(self) -> list[str]:
        """Unlock and cancel the reservation; what could not be done (never raises)."""
        if self.released:
            return []
        self.released = True
        problems = []
        # "+" is the place allocated to the token, for a lock whose place was not yet named.
        for args in (["-p", self.place or "+", "unlock"], ["cancel-reservation"]):
            try:
                _client(self.coordinator, args, token=self.token)
            except SetupError as e:
                problems.append(str(e))
        return problems

    def guard(self, pid: int) -> subprocess.Popen[bytes]:
        """A process that releases the place once ``pid`` is gone, however it ended.

        pytest-xdist kills a worker that has not exited 10 s after the run, and a
        job can be SIGKILLed: the place must not stay locked to a dead process.
        """
        return subprocess.Popen(
            [sys.executable, "-m", "conformance.remote.labgrid_place", "--release-after",
             str(pid), "--coordinator", self.coordinator, "--place", self.place,
             "--token", self.token],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def resources(self) -> str:
        """The place's acquired resources, as labgrid-client shows them (for the report)."""
        try:
            text = _client(self.coordinator, ["-p", self.place, "show"], token=self.token)
        except SetupError as e:
            return str(e)
        names = re.findall(r"^\s+(\S+/\S+/\S+/\S+)\s*$", text, re.M)
        return ", ".join(dict.fromkeys(names))


def _client(coordinator: str, args: list[str], *, token: str = "",
            timeout: Optional[float] = CLIENT_TIMEOUT) -> str:
    exe = shutil.which("labgrid-client")
    if exe is None:
        raise SetupError("labgrid-client is not installed: pip install labgrid")
    env = {k: v for k, v in os.environ.items() if k not in ("LG_PLACE", "LG_TOKEN")}
    if token:
        env["LG_TOKEN"] = token
    cmd = [exe, "-x", coordinator, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PlaceUnavailable(f"labgrid-client {' '.join(args)}: no answer from the "
                               f"coordinator {coordinator} within {timeout:g} s") from None
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise PlaceUnavailable(f"labgrid-client -x {coordinator} {' '.join(args)} failed: "
                               f"{why[-1] if why else f'exit status {proc.returncode}'}")
    return proc.stdout


def hold_place(coordinator: str, filters: Mapping[str, str], *, timeout: float) -> HeldPlace:
    """Reserve a place matching ``filters``, wait for it up to ``timeout``, and lock it."""
    started = time.monotonic()
    words = [f"{k}={v}" for k, v in filters.items()]
    out = _client(coordinator, ["reserve", "--shell", *words])
    m = _TOKEN.search(out)
    if not m:
        raise PlaceUnavailable(f"labgrid-client reserve printed no token: {out.strip()!r}")
    held = HeldPlace(coordinator, "", m.group(1), dict(filters))
    try:
        try:
            _client(coordinator, ["wait"], token=held.token, timeout=timeout)
        except PlaceUnavailable as e:
            raise PlaceUnavailable(f"no place matching {' '.join(words)} became free within "
                                   f"{timeout:g} s ({e})") from None
        _client(coordinator, ["-p", "+", "lock"], token=held.token)
        shown = _client(coordinator, ["-p", "+", "show"], token=held.token)
        place = _PLACE.search(shown)
        if not place:
            raise PlaceUnavailable(f"labgrid-client show named no place: {shown[:200]!r}")
        held.place = place.group(1)
    except BaseException:
        # A reservation left behind would hold a board for nobody until it times out.
        held.release()
        raise
    held.waited_s = time.monotonic() - started
    return held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``--release-after PID``: wait for PID to end, then release its place (the guard)."""
    ap = argparse.ArgumentParser(prog="python -m conformance.remote.labgrid_place")
    ap.add_argument("--release-after", type=int, required=True, metavar="PID")
    ap.add_argument("--coordinator", required=True)
    ap.add_argument("--place", required=True)
    ap.add_argument("--token", required=True)
    args = ap.parse_args(argv)
    while _alive(args.release_after):
        time.sleep(0.5)
    held = HeldPlace(args.coordinator, args.place, args.token, {})
    try:
        # Already released by the run itself: the reservation is gone, nothing to do.
        if args.token not in _client(args.coordinator, ["reservations"]):
            return 0
    except SetupError:
        pass
    return 1 if held.release() else 0


if __name__ == "__main__":
    sys.exit(main())
