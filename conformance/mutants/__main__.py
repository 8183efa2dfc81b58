"""``python -m conformance.mutants``: the kernel mutant sweep (what ``tox -e mutants`` runs).

::

    python -m conformance.mutants list                    # the catalogue
    python -m conformance.mutants build NAME              # build one mutant kernel, print its image
    python -m conformance.mutants sweep                   # every mutant: kill matrix in reports/
    python -m conformance.mutants sweep --ci              # the CI subset, each on its own family
    python -m conformance.mutants sweep NAME... -- -k KMAP  # some mutants, extra pytest args
    python -m conformance.mutants report                  # the last kill matrix again

Exit status of ``sweep``: 0 when every non-equivalent mutant is killed by a case
of its own family, 1 when one is not (the shortfalls are printed), 2 when the
sweep could not run (catalogue or clean kernel broken).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from conformance.errors import SetupError
from conformance.mutants.catalogue import load_catalogue, select
from conformance.mutants.matrix import KillMatrix, load_matrix, load_results
from conformance.mutants.sweep import Sweep
from conformance.mutants.workspace import Workspace
from conformance.qemu.kernel import DEFAULT_SOURCE_TARBALL, REPO_ROOT


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m conformance.mutants",
                                 description="mutation testing of the real exporters")
    ap.add_argument("--kernel-src", type=Path, default=DEFAULT_SOURCE_TARBALL,
                    help="the kernel source tarball the patches apply to (default: 6.1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the catalogue")
    r = sub.add_parser("report", help="write and print the last kill matrix again")
    r.add_argument("--reports-dir", type=Path, default=REPO_ROOT / "reports")
    b = sub.add_parser("build", help="build mutant kernels and print their images")
    b.add_argument("names", nargs="+")
    s = sub.add_parser("sweep", help="run the suite on mutant kernels; write the kill matrix")
    s.add_argument("names", nargs="*", help="mutants to run (default: all)")
    s.add_argument("--ci", action="store_true",
                   help="the CI subset (CI: yes), each run on its own family only")
    s.add_argument("--exporter", default=None, help="only mutants of this exporter")
    s.add_argument("--family", default=None, help="only mutants expected in this family")
    s.add_argument("--family-only", action="store_true",
                   help="run only each mutant's own family (implied by --ci)")
    s.add_argument("--update", action="store_true",
                   help="keep the other mutants' results of the last matrix in --reports-dir, "
                   "replace those of the mutants run now")
    s.add_argument("-n", "--workers", type=int, default=None,
                   help="guests per run (pytest -n); default 2, or 1 with --ci (a family's "
                   "few cases do not pay for a second boot)")
    s.add_argument("--reports-dir", type=Path, default=REPO_ROOT / "reports",
                   help="where mutants.json/.md and reports/mutants/<name>/ go")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, pytest_args = args_in[:cut], args_in[cut + 1:]
    args = _parser().parse_args(args_in)
    try:
        catalogue = load_catalogue()
        if args.cmd == "list":
            for m in catalogue:
                flags = (" [CI]" if m.ci else "") + (" [equivalent]" if m.equivalent else "")
                print(f"{m.name:48} {m.exporter:14} {m.callback:17} {m.family:18}{flags}")
                print(f"{'':48} {m.description}")
            print(f"{len(catalogue)} mutants, {sum(m.ci for m in catalogue)} in the CI subset")
            return 0
        if args.cmd == "report":
            matrix = load_matrix(args.reports_dir)
            _, md = matrix.write(args.reports_dir)
            print(md.read_text())
            return 0 if not matrix.shortfalls() else 1
        workspace = Workspace(args.kernel_src)
        if args.cmd == "build":
            for m in select(catalogue, args.names):
                built = workspace.build(m)
                print(f"{m.name}: {built.kernel.image} (kdir {built.kernel.kdir}, "
                      f"{'cached' if built.cached else f'{built.seconds:.0f} s'})")
            return 0
        chosen = select(catalogue, args.names or None, ci=args.ci, exporter=args.exporter,
                        family=args.family)
        if not chosen:
            print("mutants: no mutant matches the selection", file=sys.stderr)
            return 2
        started = time.monotonic()
        clean = workspace.clean()
        workers = args.workers if args.workers else (1 if args.ci else 2)
        sweep = Sweep(workspace, args.reports_dir / "mutants", workers=workers,
                      family_only=args.ci or args.family_only, pytest_args=tuple(pytest_args))
        sweep.plan(chosen)
        matrix = KillMatrix(kernel=clean.release, clean_image=clean.image_hash,
                            mode="ci" if args.ci else "full")
        if args.update:
            matrix.results = [r for r in load_results(args.reports_dir, clean.image_hash)
                              if r.name not in {m.name for m in chosen}]
        for i, m in enumerate(chosen, 1):
            r = sweep.run(m)
            matrix.results.append(r)
            matrix.seconds = round(time.monotonic() - started, 1)
            # Written after each mutant: a stopped sweep keeps what it measured.
            j, md = matrix.write(args.reports_dir)
            killers = ", ".join(r.killers[:4]) + (" …" if len(r.killers) > 4 else "")
            print(f"[{i}/{len(chosen)}] {m.name}: {r.status}"
                  + (f" by {killers}" if killers else "")
                  + ("" if r.status != "killed" else
                     (" (own family)" if r.by_own_family else f" (not by a {m.family} case)"))
                  + (f" — {r.error.splitlines()[0]}" if r.error else "")
                  + f" [build {r.build_seconds:.0f} s, run {r.run_seconds:.0f} s]", flush=True)
        print(md.read_text())
        print(f"kill matrix: {j} and {md}")
        return 0 if not matrix.shortfalls() else 1
    except SetupError as e:
        print(f"mutants: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
