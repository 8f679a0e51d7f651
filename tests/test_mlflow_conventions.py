"""What an MLflow user expects of a run: metrics against epochs, one `lr`, source tags, clean params, a loadable Model."""
from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pytorch
import pandas as pd
import pytest
import torch
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from digits_bench.data import DatasetSpec, load_split
from digits_bench.training.run import train

from .conftest import TINY, client_for, compose

# 8 mini-batches an epoch, one Lightning step each: Lightning's own step would read 8, 16 where the epoch reads 0, 1
pytestmark = pytest.mark.fit

OVERRIDES = ["model=lenet", "optimizer=adamw", *TINY, "trainer.max_epochs=2", "data.chunk_batches=1", "tags=[baseline,team:vision]"]


def test_a_run_logs_as_mlflow_users_expect(isolated_store: Path):
    result = train(compose(*OVERRIDES))
    client = client_for(isolated_store)
    run = client.get_run(result.run_id)

    for key in ("train/loss", "val/acc", "val/loss", "lr", "time/train_s"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [0, 1], key
    assert [(m.step, m.value) for m in client.get_metric_history(result.run_id, "epoch")] == [(0, 0), (1, 1)]
    assert [m.step for m in client.get_metric_history(result.run_id, "test/acc")] == [1]  # the last trained epoch
    assert not [k for k in run.data.metrics if k.startswith("lr-")]
    assert client.get_metric_history(result.run_id, "lr")[0].value == pytest.approx(compose(*OVERRIDES).optimizer.lr)

    val = [m.value for m in sorted(client.get_metric_history(result.run_id, "val/acc"), key=lambda m: m.step)]
    assert run.data.metrics["val/acc_best"] == max(val) and run.data.metrics["best_epoch"] == val.index(max(val))
    assert result.best_checkpoint.endswith(f"best-epoch{val.index(max(val)):02d}.ckpt")  # the one tested
    assert all(float(f"{v:.7g}") == v for v in run.data.metrics.values()), run.data.metrics  # no float32 noise: 0.9719, not 0.97189998
    history = client.download_artifacts(result.run_id, "report/history.csv")
    assert list(pd.read_csv(history)["epoch"]) == [0, 1]  # one epoch numbering: MLflow's, the checkpoints'
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # its kind, as MLflow records it

    tags = run.data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.user"] and tags["mlflow.source.name"]
    assert tags["mlflow.source.git.commit"] == tags["git_commit"].removesuffix("-dirty")
    assert tags["overrides"] == " ".join(OVERRIDES)
    assert (tags["baseline"], tags["team"]) == ("", "vision")  # tags=[...] typed: MLflow tags, not params
    assert run.info.run_name.startswith("lenet optimizer=adamw data.subset=512")

    assert not [k for k in run.data.params if k.endswith("_target_") or ".md5." in k]
    params = run.data.params  # the choices as values, the hyperparameters; bookkeeping only in config.yaml
    assert (params["model"], params["optimizer"], params["aug"], params["schedule"]) == ("lenet", "adamw", "off", "constant")
    assert params["optimizer.lr"] and params["seed"] and params["trainer.accelerator"] == "auto" and params["n_params"]
    assert params["data.dataset.name"] == "mnist" and len(params) < 50
    assert not [k for k in params if k.startswith(("paths.", "tracking.", "data.dataset.files", "trainer.enable_", "tags"))], params
    config = Path(client.download_artifacts(result.run_id, "config.yaml")).read_text()
    assert "_target_" in config and "md5" in config  # the artifact keeps everything

    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.experiment_id == run.info.experiment_id  # filed with its run, its files in the store
    assert logged.name == "lenet"  # after the model (or the recipe), not "model" for every run
    used = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}  # MLflow's Dataset column
    assert sorted(used) == ["evaluation", "training"] and {d.name for d in used.values()} == {"mnist"}
    assert '"train": 512' in used["training"].profile and '"val": 256' in used["training"].profile
    assert used["evaluation"].profile == '{"split_sizes": {"test": 500}}' and len(used["training"].digest) == 12
    assert logged.artifact_location.startswith((isolated_store / "artifacts").as_uri())
    best = int(run.data.metrics["best_epoch"])  # the tested checkpoint's epoch: its val/acc, and the test's numbers
    linked = {m.key: (m.step, m.value) for m in logged.metrics}
    assert linked["val/acc"] == (best, val[best]) and linked["val/acc_best"][1] == val[best]
    assert linked["test/acc"] == (1, run.data.metrics["test/acc"]) and "train/loss" not in linked or linked["train/loss"][0] == best
    assert len(logged.metrics) == len(linked)  # one value a metric
    uri = f"sqlite:///{isolated_store / 'mlflow.db'}"
    with _use_tracking_uri(uri):
        version = mlflow.register_model(f"models:/{output.model_id}", "tiny_lenet").version
        net = mlflow.pytorch.load_model(f"models:/tiny_lenet/{version}", map_location="cpu")
        info = mlflow.models.get_model_info(f"models:/tiny_lenet/{version}")
    assert info.run_id == result.run_id and info.signature is not None
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 28, 28)
    cfg = compose(*OVERRIDES)
    images, labels = load_split(DatasetSpec.from_config(dict(cfg.data.dataset)), "test")
    with torch.no_grad():
        predicted = net(torch.as_tensor(images[: cfg.data.test_subset])).argmax(dim=1)
    accuracy = (predicted == torch.as_tensor(labels[: cfg.data.test_subset])).float().mean().item()
    assert accuracy == pytest.approx(result.metrics["test/acc"], abs=1.5e-3)  # the best-validation weights, as tested


def test_an_experiment_made_before_the_kind_tag_gets_it_on_first_use(isolated_store: Path):
    from digits_bench.tracking.store import experiment_id, make_client

    client = make_client(compose())
    old = client.create_experiment("from-last-year")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert experiment_id(client, "from-last-year", None) == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_logged_model_is_named_after_its_recipe_in_the_characters_mlflow_allows():
    from digits_bench.tracking.model import model_name

    assert model_name("seed004_vgg_bn") == "seed004_vgg_bn" and model_name("study:tiny#3") == "study-tiny#3"
    assert model_name("a.b/c'd") == "a-b-c-d"
