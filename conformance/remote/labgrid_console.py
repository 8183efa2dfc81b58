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
import select
import sys
from typing import Any, Optional, Sequence

from conformance.guest.protocol import QUIT_LINE

# labgrid's drivers are not thread-safe (their step log is one stack), so one
# thread polls both ways: stdin without waiting, then the console briefly.
READ_TIMEOUT_S = 0.02


def bridge(console: Any) -> None:
    stdin, out = sys.stdin.fileno(), sys.stdout.buffer
    while True:
        if select.select([stdin], [], [], 0)[0]:
            data = os.read(stdin, 65536)
            if not data:
                return
            console.write(data)
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
        console = target.get_driver("ConsoleProtocol")
        # An agent left by a link that died still owns the console: it leaves, and the
        # board's getty (or shell) is back for labgrid to log in.
        console.write(QUIT_LINE + b"\n")
        target.get_driver("ShellDriver")  # waits for the login prompt and logs in
        bridge(console)
    except BrokenPipeError:
        pass
    finally:
        env.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
