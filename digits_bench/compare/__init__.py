"""`python -m digits_bench.compare`: re-train one recipe over K seeds, each scored once on the test set.

A recipe is either Hydra overrides (`experiment=seed004_vgg_bn`, `model=lenet optimizer=adamw …`)
or `--study NAME`: the best trial of an Optuna sweep, rebuilt from the sweep's base overrides
and the trial's parameters. Runs are tagged `compare.recipe` so `make report` can group them.
"""
from __future__ import annotations

from dataclasses import dataclass

from digits_bench.errors import ConfigError
from digits_bench.names import Metric, Param, Tag


@dataclass(frozen=True)
class Recipe:
    name: str
    overrides: list[str]


def study_recipe(study_name: str, storage_url: str | None) -> Recipe:
    """The best completed trial of a study as Hydra overrides."""
    import optuna

    from digits_bench.config import compose_config
    from digits_bench.config.stored import check_stored_overrides
    from digits_bench.sweep.runner import BASE_ATTR, default_storage
    from digits_bench.sweep.spec import SweepSpec

    url = storage_url or default_storage(compose_config([]))
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
        best = study.best_trial
    except KeyError:
        raise ConfigError(f"no study named {study_name!r} in {url}; run `make sweep SWEEP={study_name}` first") from None
    except ValueError:
        raise ConfigError(f"study {study_name!r} has no completed trial yet; let the sweep finish first") from None
    base = [o for o in study.user_attrs.get(BASE_ATTR, []) if not o.startswith("data.subset=")]
    overrides = check_stored_overrides(SweepSpec(study_name, tuple(base), (), 1).overrides(best.params), f"study {study_name!r}")
    return Recipe(f"study:{study_name}#{best.number}", overrides)


def run_compare(recipe: Recipe, seeds: list[int]) -> list[str]:
    """Train the recipe once per seed, each nested under one parent run that ends with the seeds' test accuracy
    (`test/acc_mean`, `test/acc_std`; no `test/acc` of its own, so reports and ensembles count the seeds only);
    returns the seeds' MLflow run ids."""
    from digits_bench.config import compose_config
    from digits_bench.tracking import runs, views
    from digits_bench.tracking.store import make_client
    from digits_bench.training.run import train

    base = compose_config([*recipe.overrides, "evaluate_test=true"])
    client = make_client(base)
    tags = {Tag.COMPARE_RECIPE: recipe.name, "compare.seeds": " ".join(map(str, seeds))}
    run_ids, accs = [], []
    with runs.parent(client, base, f"compare:{recipe.name}", tags, hand_down=True) as group:
        for seed in seeds:
            cfg = compose_config([*recipe.overrides, f"seed={seed}", "evaluate_test=true"])
            result = train(cfg, tags={Tag.COMPARE_RECIPE: recipe.name, Tag.COMPARE_SEED: str(seed)})
            assert result is not None
            accs.append(result.metrics.get(Metric.TEST_ACC, float("nan")))
            print(f"{recipe.name} seed {seed}: {Metric.TEST_ACC}={accs[-1]:.4f}  run {result.run_id}")
            run_ids.append(result.run_id)
        summary = runs.summarise_children(client, group.run_id, (Metric.TEST_ACC, Metric.VAL_ACC_BEST))
        mean, std = summary[Metric.TEST_ACC_MEAN], summary[Metric.TEST_ACC_STD]
        print(f"{recipe.name}: {Metric.TEST_ACC} {100 * mean:.2f} ± {100 * std:.2f} % over {len(accs)} seed(s)  parent run {group.run_id}")
        print(f"  its seeds in MLflow: {views.show_children(client, group.run_id, (Metric.TEST_ACC, Metric.VAL_ACC_BEST), (Param.SEED,))}")
    return run_ids

