"""The command line of `python -m digits_bench.ensemble`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import sys

import digits_bench.ensemble as package
from digits_bench.entry import command
from digits_bench.ensemble import run_ensemble


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.ensemble", description=package.__doc__.splitlines()[0])
    parser.add_argument("recipe", help="the recipe whose runs to combine, e.g. best (train them with compare first)")
    parser.add_argument("--experiment", default=None, help="MLflow experiment holding the runs (default: the configured one)")
    args = parser.parse_args(argv)
    result = run_ensemble(args.recipe, args.experiment)
    vals = "  ".join(f"{k}={100 * v:.2f}%" for k, v in result["val_acc"].items())
    print(f"validation: {vals}\nchosen on validation: {result['chosen']} ({len(result['members'])} model(s), "
          f"tta={result['tta']})  test/acc={100 * result['test_acc']:.2f}%  run {result['run_id']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
