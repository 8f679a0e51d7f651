"""The command line of `python -m digits_bench.gpu_check`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import digits_bench.gpu_check as package
from digits_bench.entry import command
from digits_bench.console import print_table
from digits_bench.gpu_check import STEPS, Results, environment, require_cuda, verdicts


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.gpu_check", description=package.__doc__.splitlines()[0])
    parser.add_argument("--out", default="results", help="where gpu-check-<device>-<date>.{md,csv} go")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS), metavar="STEP",
                        help=f"a subset of: {', '.join(STEPS)}")
    args = parser.parse_args(argv)
    require_cuda()
    import torch

    results = Results(Path(args.out), environment())
    for title in args.steps:
        print(f"gpu-check: {title} ...", flush=True)
        numbers, detail = STEPS[title]()
        results.add(title, numbers, detail)
    results.add("memory", {}, f"peak GPU memory in this process: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    from rich.table import Table

    table = Table(title=f"gpu-check on {results.env['device']} ({results.md})", title_justify="left")
    for column in ("target", "limit", "measured", "verdict"):
        table.add_column(column)
    rows = verdicts(results.measured)
    for r in rows:
        table.add_row(r.target, r.limit, "—" if r.measured is None else f"{r.measured:.4g}", r.verdict)
    print_table(table)
    return 0 if all(r.verdict == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
