"""``python -m conformance.remote.labgrid_console --lg-env ENV``: a board's console on stdin/stdout.

labgrid logs in on the board's console (its ``ShellDriver``: login prompt,
user, password, shell prompt), then this process copies stdin to the console
and the console to stdout until either side closes.  It is the pipe command of
a labgrid board without ssh, for ``PipeLink``; on its own it is a plain
console for a person, too.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Optional, Sequence

READ_TIMEOUT_S = 0.2


def _to_console(console: Any, done: threading.Event) -> None:
    try:
        while True:
            data = os.read(sys.stdin.fileno(), 4096)
            if not data:
                break
            console.write(data)
    except OSError:
        pass
    finally:
        done.set()


def bridge(console: Any) -> None:
    done = threading.Event()
    threading.Thread(target=_to_console, args=(console, done), daemon=True).start()
    out = sys.stdout.buffer
    while not done.is_set():
        try:
            data = console.read(size=1, timeout=READ_TIMEOUT_S, max_size=65536)
        except Exception as e:  # labgrid's TIMEOUT: nothing within READ_TIMEOUT_S
            if type(e).__name__ != "TIMEOUT":
                raise
            continue
        out.write(data)
        out.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.remote.labgrid_console",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lg-env", required=True, help="the labgrid environment YAML")
    parser.add_argument("--lg-target", default="main", help="its target (default main)")
    args = parser.parse_args(argv)
    try:
        from labgrid import Environment
    except ImportError:
        print("error: labgrid is not installed: pip install labgrid", file=sys.stderr)
        return 2
    env = Environment(config_file=args.lg_env)
    target = env.get_target(args.lg_target)
    if target is None:
        print(f"error: no target {args.lg_target!r} in {args.lg_env}", file=sys.stderr)
        return 2
    try:
        target.get_driver("ShellDriver")  # waits for the login prompt and logs in
        bridge(target.get_driver("ConsoleProtocol"))
    except BrokenPipeError:
        pass
    finally:
        env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
