"""`python -m digits_bench.report.add_runs RUNS.csv --out results [--recipe NAME] OVERRIDES...`: bring runs made
on another machine (its report's runs.csv) into results/runs.csv, with the configuration they ran.

That machine's MLflow store stays there; its runs.csv rows say what they scored but, when written
before fingerprints, not their full config. OVERRIDES are the command line those runs were made with
(`experiment=speedrun trainer=gpu compile=true`): composed here, they give the rows their
fingerprint and deviation, after checking that each row's recorded model, epochs and batch size
are that config's. The next `make report` keeps them as carried rows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from digits_bench.entry import command
from digits_bench.config import compose_config, group_choices
from digits_bench.errors import ConfigError
from digits_bench.config.fingerprint import fingerprint, training_keys
from digits_bench.report.identity import (composed, config_text, deviation, device_kind, is_partial, model_default, preset,
                                          reference_trainer)
from digits_bench.report.runs import RUN_COLUMNS, TEXT_COLUMNS


def identified(rows: pd.DataFrame, overrides: list[str]) -> pd.DataFrame:
    """`rows` with fingerprint, device kind, deviation and partial of the config `overrides` compose to."""
    cfg = compose_config(overrides)
    keys, choices = training_keys(cfg), group_choices()
    recorded = {"model": cfg.model.name, "epochs": int(cfg.trainer.max_epochs), "batch_size": int(cfg.data.batch_size)}
    for column, value in recorded.items():
        wrong = rows[rows[column].astype(type(value)) != value]
        if not wrong.empty:
            raise ConfigError(f"run {wrong['run_id'].iloc[0]} recorded {column}={wrong[column].iloc[0]}, "
                              f"but {' '.join(overrides)} gives {value}; pick its rows with --recipe or fix the overrides")
    out = rows.copy().astype({"device_kind": object, "fingerprint": object, "deviation": object, "partial": object, "config": object})
    for index, row in rows.iterrows():
        kind = device_kind(row["device"])
        run_choices, trainer = reference_trainer(choices, kind)
        name = cfg.recipe.name
        reference = preset(name, trainer) if name != "custom" else model_default(cfg.model.name, trainer)
        if reference is None or composed(reference) is None:
            raise ConfigError(f"{' '.join(overrides)}: recipe {name!r} is no preset in conf/experiment")
        out.loc[index, ["device_kind", "fingerprint", "deviation"]] = [kind, fingerprint(keys), ", ".join(deviation(keys, run_choices, reference))]
        out.loc[index, "partial"] = is_partial(keys, reference)
        out.loc[index, "config"] = config_text(keys, choices)
        if name == "custom":
            out.loc[index, "recipe"] = cfg.model.name
    return out


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.report.add_runs", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a runs.csv written by `python -m digits_bench.report` on another machine")
    parser.add_argument("overrides", nargs="*", help="the Hydra overrides those runs were made with (none: rows without a "
                                                     "config, such as ensembles, are carried as recorded)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="the results folder whose runs.csv gets the rows")
    parser.add_argument("--recipe", help="only the rows of this recipe (a runs.csv often mixes several commands)")
    args = parser.parse_intermixed_args(argv)
    if not args.source.is_file():
        raise ConfigError(f"no file {args.source}")
    rows = pd.read_csv(args.source, dtype=dict.fromkeys(TEXT_COLUMNS, str)).reindex(columns=RUN_COLUMNS)
    if args.recipe:
        rows = rows[rows["recipe"] == args.recipe]
    if rows.empty:
        raise ConfigError(f"{args.source} has no rows{f' of recipe {args.recipe!r}' if args.recipe else ''}")
    if args.overrides:  # else carried as recorded: fingerprinted from their columns by the next report
        rows = identified(rows, args.overrides)
    target = args.out / "runs.csv"
    existing = pd.read_csv(target, dtype=dict.fromkeys(TEXT_COLUMNS, str)).reindex(columns=RUN_COLUMNS) if target.is_file() else None
    if existing is not None:
        rows = rows[~rows["run_id"].isin(existing["run_id"])]
    merged = pd.concat([f for f in (existing, rows) if f is not None and not f.empty], ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    merged.to_csv(target, index=False)
    print(f"carried {len(rows)} runs from {args.source} into {target} ({'fingerprint ' + rows['fingerprint'].iloc[0] if args.overrides and len(rows) else 'as recorded'})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
