"""`python -m digits_bench.register NAME (--run RUN_ID | --experiment EXP --best) [--alias ALIAS]`: a run's model
into MLflow's Model Registry, as the next version of NAME, described by its recipe, test accuracy and run, so people
load it as `models:/NAME/VERSION` or `models:/NAME@ALIAS` (predict --model).

Exit status: 0 registered; 2 no such run, no model in it, no store, or a name MLflow refuses.
"""
from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

from digits_bench.errors import ModelLoadError

if TYPE_CHECKING:
    from mlflow.entities import Run


def description(run: "Run") -> str:
    """What a version is, in the registry's words: the recipe and model, its test accuracy, and the run it came from."""
    from digits_bench.names import Metric, Param, Tag

    test = run.data.metrics.get(Metric.TEST_ACC)
    accuracy = f"test accuracy {100 * test:.2f}%" if test is not None else "no test accuracy"
    model, recipe = run.data.params.get(Param.MODEL, "?"), run.data.tags.get(Tag.RECIPE, "custom")
    what = model if recipe == "custom" else f"{recipe} ({model})"
    return (f"{what}, {run.data.params.get(Param.EPOCHS, '?')} epochs, seed {run.data.params.get(Param.SEED, '?')}: "
            f"{accuracy} on the test set; from run {run.info.run_id} ({run.info.run_name})")


def register(uri: str, run_id: str, name: str, alias: str | None = None) -> int:
    """Register the LoggedModel that `run_id` logged as the next version of `name`, described (`description`) and
    with `alias` pointing at it; returns the version."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ModelLoadError(f"no run {run_id!r} in the MLflow store {uri}") from None
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise ModelLoadError(f"run {run_id} logged no model (a sweep trial, or a run that did not finish); "
                             "register a run that tested its model")
    try:  # MLflow prints "Successfully registered ..." and "Created version ..." itself; our line says both
        with _use_tracking_uri(uri), contextlib.redirect_stderr(io.StringIO()):
            version = mlflow.register_model(f"models:/{outputs[-1].model_id}", name).version
        client.update_model_version(name, version, description(run))
        if alias:
            client.set_registered_model_alias(name, alias, version)
        return int(version)
    except MlflowException as err:
        raise ModelLoadError(f"cannot register {name!r}: {str(err).splitlines()[0]}") from None
