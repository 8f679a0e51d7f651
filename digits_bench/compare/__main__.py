"""The command line of `python -m digits_bench.compare`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import sys

import digits_bench.compare as package
from digits_bench.entry import command
from digits_bench.compare import Recipe, run_compare, study_recipe
from digits_bench.errors import ConfigError
from digits_bench.sweep import add_storage_argument


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.compare", description=package.__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=seed004_vgg_bn")
    parser.add_argument("--study", help="re-train the best trial of this Optuna study instead")
    add_storage_argument(parser, "the Optuna storage of --study")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_intermixed_args(argv)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {args.seeds})")
    if args.study:
        recipe = study_recipe(args.study, args.storage)
        recipe = Recipe(recipe.name, [*recipe.overrides, *args.overrides])
    else:
        from digits_bench.config import compose_config

        cfg = compose_config(args.overrides)
        name = cfg.recipe.name if cfg.recipe.name != "custom" else " ".join(args.overrides) or "default"
        recipe = Recipe(name, list(args.overrides))
    run_compare(recipe, list(range(args.first_seed, args.first_seed + args.seeds)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
