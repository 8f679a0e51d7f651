"""The command line of `python -m digits_bench.register`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from digits_bench.entry import command
from digits_bench.predict import add_model_source, check_model_source
from digits_bench.register import register


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.register",
                                     description="Register a run's logged model in MLflow's Model Registry.")
    parser.add_argument("name", metavar="NAME", help="the registered model's name; each registration adds a version")
    add_model_source(parser, ("--run", "--experiment"))  # a registered version comes from a run
    parser.add_argument("--alias", metavar="ALIAS", help="also point this alias at the new version (models:/NAME@ALIAS), e.g. champion")
    args = parser.parse_args(argv)
    check_model_source(parser, args)
    return args


@command(quiet={"mlflow": logging.ERROR, "alembic": logging.ERROR})
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from digits_bench.predict import loading
    from digits_bench.tracking import views

    client = loading.store_client(args.tracking_uri)
    run_id = args.run if args.run is not None else loading.best_run(client, args.experiment)
    version = register(client.tracking_uri, run_id, args.name, args.alias)
    uri = f"models:/{args.name}@{args.alias}" if args.alias else f"models:/{args.name}/{version}"
    page = views.link(views.ui_base(client.tracking_uri), model=(args.name, version))
    print(f"run {run_id}: its model is models:/{args.name}/{version}" + (f" (alias {args.alias})" if args.alias else "") + "\n"
          f"  in MLflow: {page}\n"
          f"  read digits with it: python -m digits_bench.predict --model {uri} IMAGE")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
