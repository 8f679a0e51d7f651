"""`python -m digits_bench.ensemble RECIPE`: average the recipe's trained runs, with optional test-time shifts.

Candidates are the best single run, the plain ensemble and the ensemble with
test-time augmentation (each image and its four one-pixel shifts). The choice
between them is made on the validation split; only the chosen one is scored on
the test set, once, and recorded as its own MLflow run (`<recipe>+ensemble`),
which `make report` lists beside the single runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from digits_bench.errors import ConfigError
from digits_bench.names import Metric, Param, Tag
from digits_bench.predict.inference import probabilities

SPLIT_KEYS = ("data.dataset.name", "data.val_size", "data.split_seed")  # members must share one validation split


@dataclass(frozen=True)
class Member:
    run_id: str
    module: torch.nn.Module
    cfg: DictConfig
    train_s: float
    n_params: int


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probs.argmax(dim=1) == labels).float().mean())


def _scored_runs(client, experiment: str) -> list:
    """FINISHED, test-scored single runs (not ensembles) of the experiment, oldest first."""
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id], filter_string="attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"], max_results=10_000)
    return [r for r in runs if Tag.ENSEMBLE_MEMBERS not in r.data.tags and Metric.TEST_ACC in r.data.metrics]


def recipe_runs(client, experiment: str, recipe: str) -> list[str]:
    """FINISHED, test-scored single runs of ONE configuration of `recipe` on one kind of device, oldest first.

    A recipe name alone is not a configuration: the members are the runs that share the most recent
    run's config fingerprint and device kind, so a `data.subset`, `compile=true` or other-device run
    of the same name never joins the ensemble.
    """
    from digits_bench.report.identity import device_kind
    from digits_bench.report.runs import recipe_of

    runs = [r for r in _scored_runs(client, experiment) if recipe_of(r.data.tags) == recipe]
    if not runs:
        return []

    def configuration(run) -> tuple[str | None, str]:
        return run.data.tags.get(Tag.FINGERPRINT), device_kind(run.data.tags.get(Tag.DEVICE, ""))

    latest = configuration(runs[-1])
    return [r.info.run_id for r in runs if configuration(r) == latest]


def too_few(client, experiment: str, recipe: str, members: list[str]) -> str:
    """Why there is nothing to ensemble, in two lines: the runs of that name left out, or the names there are."""
    from collections import Counter

    from digits_bench.report.runs import recipe_of

    names = Counter(recipe_of(r.data.tags) for r in _scored_runs(client, experiment))
    if not names[recipe]:
        there = ", ".join(f"{name} ×{count}" for name, count in names.most_common(8)) or "none"
        return (f"no finished, test-scored run is named {recipe!r} in experiment {experiment!r} (a run without a preset "
                f"goes by its model's):\n  there are: {there}")
    return (f"recipe {recipe!r} has {len(members)} finished run(s) of its latest configuration in {experiment!r} "
            f"({names[recipe] - len(members)} more differ: data.subset, device, overrides)\n"
            f"  train more of it first: python -m digits_bench.compare experiment={recipe} --seeds 5")


def load_members(client, run_ids: list[str], device: torch.device) -> list[Member]:
    from digits_bench.predict.loading import from_run

    members = []
    for run_id in run_ids:
        loaded = from_run(client, run_id)
        run = client.get_run(run_id)
        members.append(Member(run_id, loaded.module.to(device).eval(), loaded.cfg,
                              run.data.metrics.get(Metric.TRAIN_S, float("nan")), int(run.data.params.get(Param.N_PARAMS, 0))))
    splits = {tuple(OmegaConf.select(m.cfg, k) for k in SPLIT_KEYS) for m in members}
    if len(splits) > 1:
        raise ConfigError(f"the runs were validated on different splits {sorted(splits)}; ensemble runs of one recipe only")
    return members


def evaluate(members: list[Member], val: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Pick the candidate with the best validation accuracy; score only that one on the test set."""
    val_probs = {tta: [probabilities(m.module, val[0], tta) for m in members] for tta in (False, True)}
    singles = [accuracy(p, val[1]) for p in val_probs[False]]
    best_single = max(range(len(members)), key=singles.__getitem__)
    candidates = {
        "single": (singles[best_single], [members[best_single]], False),
        "ensemble": (accuracy(torch.stack(val_probs[False]).mean(0), val[1]), members, False),
        "ensemble_tta": (accuracy(torch.stack(val_probs[True]).mean(0), val[1]), members, True),
    }
    chosen = max(candidates, key=lambda name: candidates[name][0])  # ties keep the simpler candidate
    val_acc, chosen_members, tta = candidates[chosen]
    test_probs = torch.stack([probabilities(m.module, test[0], tta) for m in chosen_members]).mean(0)
    return {"chosen": chosen, "val_acc": {k: v[0] for k, v in candidates.items()}, "test_acc": accuracy(test_probs, test[1]),
            "members": [m.run_id for m in chosen_members], "tta": tta}


def run_ensemble(recipe: str, experiment: str | None = None, min_members: int = 2) -> dict:
    from digits_bench.config import compose_config
    from digits_bench.data import DigitsDataModule
    from digits_bench.tracking import runs
    from digits_bench.tracking.store import environment_tags, make_client
    from hydra.utils import instantiate

    base = compose_config([])
    experiment = experiment or base.tracking.experiment
    client = make_client(base)
    run_ids = recipe_runs(client, experiment, recipe)
    if len(run_ids) < min_members:
        raise ConfigError(too_few(client, experiment, recipe, run_ids))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    members = load_members(client, run_ids, device)
    data: DigitsDataModule = instantiate(members[0].cfg.data)
    data.prepare_data()
    data.setup("test")
    result = evaluate(members, data.tensors["val"], data.tensors["test"])

    first = client.get_run(members[0].run_id)
    tags = environment_tags(device.type) | {k: v for k, v in first.data.tags.items() if k.startswith(Tag.CHOICE_PREFIX)}
    tags |= {Tag.COMPARE_RECIPE: f"{recipe}+ensemble", Tag.RUN_NAME: f"{recipe}+ensemble",
             Tag.ENSEMBLE_MEMBERS: " ".join(result["members"]), Tag.ENSEMBLE_CHOSEN: result["chosen"]}
    with runs.run(base, tags, experiment=experiment) as (client, run_id):
        params = {Param.MODEL: f"{members[0].cfg.model.name}×{len(result['members'])}", "ensemble.tta": result["tta"],
                  Param.EPOCHS: members[0].cfg.trainer.max_epochs, Param.BATCH_SIZE: members[0].cfg.data.batch_size,
                  Param.SEED: -1, Param.N_PARAMS: sum(m.n_params for m in members if m.run_id in result["members"]),
                  Param.CLAIMED_TEST_ACC: OmegaConf.select(members[0].cfg, "recipe.ensemble_claimed_test_acc"),
                  Param.CLAIM_KIND: "target",
                  Param.TUTORIAL: f"{recipe}: the validation-chosen of best single run / ensemble / ensemble+shift TTA "
                                  f"over {len(members)} runs"}
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for name, value in result["val_acc"].items():
            client.log_metric(run_id, f"{Metric.VAL_ACC}_{name}", value)
        client.log_metric(run_id, Metric.VAL_ACC, result["val_acc"][result["chosen"]])
        client.log_metric(run_id, Metric.TEST_ACC, result["test_acc"])
        client.log_metric(run_id, Metric.TRAIN_S, sum(m.train_s for m in members if m.run_id in result["members"]))
        result["run_id"] = run_id
    return result

