"""`python -m digits_bench.models`: the registered models with their trainable parameter counts."""
from __future__ import annotations

import argparse
import sys

from rich.table import Table

from digits_bench.entry import command
from digits_bench.console import print_table
from digits_bench.models import count_parameters, create_model, list_models, model_entry


@command
def main(argv: list[str]) -> None:
    argparse.ArgumentParser(prog="python -m digits_bench.models", description=__doc__.split(": ", 1)[1]).parse_args(argv)
    table = Table(title="digits_bench models")
    for column in ("name", "params", "seed", "architecture"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in list_models():
        entry = model_entry(name)
        table.add_row(name, f"{count_parameters(create_model(name)):,}", entry.seed, entry.summary)
    print_table(table)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
