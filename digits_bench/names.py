"""Every name the harness writes into MLflow and reads back: metrics, tags, params.

Writers (training, sweeps, compare, ensembles) and readers (report, ensemble, predict, sweeps)
both take their names from here, so renaming one cannot silently empty a leaderboard column.
A name built from a value (a split, a threshold, a config group) is built by one function here.
A tag written only for people to read in MLflow's UI (`sweep.storage`, `torch_version`) stays with its writer.
"""
from __future__ import annotations

from typing import Final


def loss(split: str) -> str:
    """`train/loss`, `val/loss`, `test/loss`: the mean cross-entropy of a split."""
    return f"{split}/loss"


def acc(split: str) -> str:
    """`train/acc`, `val/acc`, `test/acc`: the accuracy of a split."""
    return f"{split}/acc"


def time_to_val_acc(threshold: float) -> str:
    """The training seconds at which validation accuracy first reached `threshold`: `time/to_val_acc_0.99_s`."""
    return f"time/to_val_acc_{threshold:g}_s"


class Metric:
    """Logged per epoch (at step = epoch), or once at the end (the test set, the wall time)."""

    TRAIN_LOSS: Final = loss("train")
    TRAIN_ACC: Final = acc("train")
    VAL_LOSS: Final = loss("val")
    VAL_ACC: Final = acc("val")  # what checkpoints, early stopping, sweeps and `predict --best` choose by
    VAL_ACC_BEST: Final = "val/acc_best"  # once a fit ends: the best epoch's val/acc, whose checkpoint is tested
    BEST_EPOCH: Final = "best_epoch"
    TEST_LOSS: Final = loss("test")
    TEST_ACC: Final = acc("test")
    TEST_ACC_MEAN: Final = "test/acc_mean"  # on a compare's parent run: over its seeds (sample std)
    TEST_ACC_STD: Final = "test/acc_std"
    EPOCH: Final = "epoch"
    LR: Final = "lr"
    EPOCH_S: Final = "time/epoch_s"
    TRAIN_S: Final = "time/train_s"  # cumulative training time, evaluation and warm-up excluded
    IMAGES_PER_S: Final = "time/images_per_s"
    WARMUP_S: Final = "time/warmup_s"
    WALL_S: Final = "time/wall_s"


# The validation accuracies whose time the leaderboard reports (its time_to_val_99_s and
# time_to_val_995_s columns): the training clock always logs them, whatever `time_to_val_acc` adds.
LEADERBOARD_VAL_ACC: Final = (0.99, 0.995)


class Tag:
    """Set once, when a run is created or closed."""

    RUN_NAME: Final = "mlflow.runName"
    PARENT_RUN_ID: Final = "mlflow.parentRunId"  # nests a run under its sweep or multirun in MLflow's UI
    CHOICE_PREFIX: Final = "choice."
    RECIPE: Final = "recipe"  # the experiment preset's recipe.name, `custom` without one
    OVERRIDES: Final = "overrides"
    FINGERPRINT: Final = "config.fingerprint"
    DEVICE: Final = "device"
    GIT_COMMIT: Final = "git_commit"
    COMPARE_RECIPE: Final = "compare.recipe"  # the recipe name `make report` groups compare's and ensembles' runs by
    COMPARE_SEED: Final = "compare.seed"
    ENSEMBLE_MEMBERS: Final = "ensemble.members"
    ENSEMBLE_CHOSEN: Final = "ensemble.chosen"
    SWEEP_STUDY: Final = "sweep.study"
    SWEEP_ROLE: Final = "sweep.role"  # parent or trial
    SWEEP_TRIAL: Final = "sweep.trial"
    SWEEP_STATE: Final = "sweep.state"  # the trial's Optuna state: COMPLETE, PRUNED, FAIL
    SWEEP_BEST: Final = "sweep.best"
    BEST_TRIAL: Final = "best_trial"  # on a sweep's parent: its best trial's number and MLflow run
    BEST_RUN_ID: Final = "best_run_id"
    MULTIRUN_ROLE: Final = "multirun.role"  # parent or job
    MULTIRUN_JOB: Final = "multirun.job"
    CUDA_GRAPHS: Final = "cuda_graphs"  # set when a run's CUDA graph was dropped (capture, replay or canary): why


# Overrides that change how a job is run or recorded, not what it trains (a compare's test, a quiet console, where the
# store is, the run's tags: shown as tags): never in a run's name (its `overrides` tag keeps every one)
INTERNAL_OVERRIDES: Final = ("evaluate_test=", "trainer.enable_progress_bar=", "trainer.enable_model_summary=",
                             "progress_refresh=", "tracking.", "paths.", "tags=", "hydra.")


def _readable(override: str) -> str:
    """`optimizer.lr=0.016791248331372594` -> `optimizer.lr=0.01679`: a float to 4 significant digits."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}{sep}{number:.4g}" if sep and ("." in value or "e" in value.lower()) else override


def run_name(base: str, overrides: list[str]) -> str:
    """A run's name in MLflow's UI: what it is (`lenet #1`, `mlp #3`), then what was typed or searched on top,
    floats to 4 significant digits, the harness's own flags left out (the overrides tag keeps them all)."""
    shown = [_readable(o) for o in overrides if not o.startswith(INTERNAL_OVERRIDES)]
    return " ".join([base, *shown])[:250]


def choice(group: str) -> str:
    """The tag naming which option of a config group a run used: `choice.model` = `lenet`."""
    return f"{Tag.CHOICE_PREFIX}{group}"


# On every experiment: what kind it is, as MLflow records it. MLflow 3.17's UI does not open on it (its mode
# switch is the browser's, upstream issue 24498): the links the harness prints carry the mode (tracking/views.py).
EXPERIMENT_KIND: Final = ("mlflow.experimentKind", "custom_model_development")


class Param:
    """Every resolved config key is a param (`tracking.runs.log_config`); these are the ones code reads back."""

    N_PARAMS: Final = "n_params"
    MODEL: Final = "model.name"
    EPOCHS: Final = "trainer.max_epochs"
    BATCH_SIZE: Final = "data.batch_size"
    SEED: Final = "seed"
    CLAIMED_TEST_ACC: Final = "recipe.claimed_test_acc"
    CLAIM_KIND: Final = "recipe.claim_kind"
    TUTORIAL: Final = "recipe.tutorial"


TRIAL_RUN_ATTR: Final = "mlflow_run_id"  # the Optuna user attribute holding a trial's MLflow run id


# A run's checkpoint that `resume=` continues from (<checkpoints>/<run id>/last.ckpt): written by training, read by
# resume and by the hints that name it
LAST_CHECKPOINT: Final = "last.ckpt"
