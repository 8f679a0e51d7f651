"""The one LightningModule every model trains through."""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from digits_bench.data import DeviceBatches, normalise
from digits_bench import names
from digits_bench.errors import TrainingDiverged
from digits_bench.optimizers import OptimizerFactory, capturable_options
from digits_bench.schedules import Schedule
from digits_bench.training.step import AUTOCAST, GradientClip, GraphedStep, StepMode, TrainStep, choose_step_mode

log = logging.getLogger(__name__)

RNG_KEY = "digits_bench_rng_states"
METRICS_KEY = "digits_bench_epoch_metrics"
ScheduleFactory = Callable[..., Schedule]  # a conf/schedule partial: complete it with epochs and steps_per_epoch


class DigitsClassifier(pl.LightningModule):
    """Cross-entropy classification with on-device preprocessing.

    Batches arrive as uint8 images. A training batch is one item of the data's DeviceBatches, which
    may hold several mini-batches (`data.chunk_batches`): the loader splits it, and `TrainStep`
    (training/step.py) takes one optimizer step per mini-batch, preprocessing, augmentation and the
    learning-rate schedule included, so Lightning's per-step overhead is paid once per chunk. On one
    CUDA device that step is replayed as a CUDA graph (`cuda_graphs`: None = wherever it applies,
    False = never); elsewhere it runs as is. Evaluation batches are preprocessed in
    `on_after_batch_transfer`. Metrics accumulate on the device and are read once per epoch, so no
    step forces a host synchronisation. The first steps on a GPU (cuDNN autotune, capture) are timed
    into `warmup_seconds`, which TrainingClock keeps out of the training time.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        schedule: ScheduleFactory,
        augment: nn.Module,
        mean: float,
        std: float,
        num_classes: int = 10,
        channels_last: bool = False,
        cuda_graphs: bool | None = None,
        gradient_clip: GradientClip | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # the training step walks its chunk of mini-batches itself
        self.net, self.augment = net, augment
        self.optimizer_factory, self.schedule_factory = optimizer, schedule
        self.mean, self.std, self.num_classes = mean, std, num_classes
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        self.gradient_clip = gradient_clip
        self.step_mode: StepMode | None = None  # chosen in setup("fit")
        self._train_step: TrainStep | None = None
        self._graphed: GraphedStep | None = None
        self.warmup_seconds = 0.0
        # one image through the net lets Lightning's model summary count real FLOPs (per image);
        # not for a compiled net, which would compile for it
        self.example_input_array = None if hasattr(net, "_orig_mod") else torch.zeros(1, 1, 28, 28)
        # validate_args / nan checks would read values back to the host on every step
        accuracy = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc, self.test_acc = accuracy.clone(), accuracy.clone()
        mean_metric = MeanMetric(nan_strategy="disable")
        self.val_loss, self.test_loss = mean_metric.clone(), mean_metric.clone()
        self.test_report = MetricCollection(
            {
                "confusion": MulticlassConfusionMatrix(num_classes, validate_args=False),
                "precision": MulticlassPrecision(num_classes, average=None, validate_args=False),
                "recall": MulticlassRecall(num_classes, average=None, validate_args=False),
                "f1": MulticlassF1Score(num_classes, average=None, validate_args=False),
            }
        )
        self.test_outputs: dict[str, torch.Tensor] = {}
        self._saved_metrics: dict[str, Any] | None = None  # from the checkpoint a resumed fit starts at
        self._test_preds: list[torch.Tensor] = []
        self._test_probs: list[torch.Tensor] = []

    def preprocess(self, images: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 (N, 28, 28) -> normalised float (N, 1, 28, 28); the exact input the net was trained on.

        Augmentation follows normalising: normalising is affine per pixel, so it commutes with the
        affine warp (bilinear interpolation with border padding is linear).
        """
        x = normalise(images, self.mean, self.std)
        if train and getattr(self.augment, "enabled", True):
            x = self.augment(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the model summary's example_input_array: already normalised images
            return batch
        if self.trainer.training:
            return batch  # the training step preprocesses each mini-batch itself
        images, labels = batch
        return self.preprocess(images), labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], loss_metric: MeanMetric, acc_metric: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        loss_metric.update(loss.detach(), weight=y.numel())
        acc_metric.update(logits.detach(), y)
        return loss, logits

    def _log_epoch(self, split: str, loss: MeanMetric, acc: MulticlassAccuracy) -> None:
        """Logged once per epoch: Lightning computes (and syncs across ranks) and resets the metrics here."""
        self.log(names.loss(split), loss, on_step=False, on_epoch=True)
        self.log(names.acc(split), acc, on_step=False, on_epoch=True, prog_bar=split == "val")

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.step_mode, why = choose_step_mode(self.cuda_graphs, self.trainer, self.net, self.optimizer_factory)
            if why and self.trainer.is_global_zero:  # one line per run, not one per DDP process
                log.warning(why)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Only the optimizer: the schedule runs inside the training step, from its step counter."""
        options = capturable_options(self.optimizer_factory) if self.step_mode is StepMode.GRAPHED else None
        return self.optimizer_factory(self.net.parameters(), **(options or {}))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The random states dropout and augmentation draw from, so a resumed run draws what the uninterrupted one
        would (the data order comes from (seed, epoch) already). Tensors only: loadable with weights_only=True."""
        checkpoint[RNG_KEY] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint[RNG_KEY]["cuda"] = torch.cuda.get_rng_state_all()
        # the epoch's metrics as they stand when it is saved (after the epoch's own hooks): the logger writes them a
        # moment later, and a run killed in between would lack them; a resumed run writes whichever are missing
        checkpoint[METRICS_KEY] = {"epoch": self.current_epoch,
                                   "metrics": {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._saved_metrics = checkpoint.get(METRICS_KEY)
        configured = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        for state in checkpoint.get("optimizer_states", []) if configured is not None else []:
            for group in state.get("param_groups", []):  # saved before the step kept torch's `initial_lr`
                group.setdefault("initial_lr", configured)
        states = checkpoint.get(RNG_KEY)  # absent from checkpoints written before it was kept
        if states is None:
            return
        torch.set_rng_state(states["cpu"])
        if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])

    def on_train_start(self) -> None:
        """Build the step now: after a resumed run's optimizer state and step count are restored, so its
        schedule continues from the step count. A resumed run first records what its checkpoint's epoch
        logged, where the kill came before the logger wrote it (the logger skips what is there)."""
        if self._saved_metrics and self.logger is not None:
            self.logger.log_metrics({**self._saved_metrics["metrics"], "epoch": self._saved_metrics["epoch"]})
            self._saved_metrics = None
        loader: DeviceBatches = self.trainer.train_dataloader
        schedule = self.schedule_factory(epochs=self.trainer.max_epochs, steps_per_epoch=max(1, loader.batches))
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # precision 16-mixed
        # Lightning's backward where it does something: DDP's gradient all-reduce, 16-mixed loss scaling;
        # elsewhere loss.backward() spares each step its hook calls
        lightning_backward = self.trainer.world_size > 1 or scaler is not None
        self._train_step = TrainStep(
            self.net, functools.partial(self.preprocess, train=True), self.optimizers(use_pl_optimizer=False), schedule,
            self.trainer.global_step, AUTOCAST.get(str(self.trainer.precision)), self.device, clip=self.gradient_clip,
            **({"backward": self.manual_backward, "scaler": scaler} if lightning_backward else {}),
        )
        self._graphed = (GraphedStep(self._train_step, loader.batch_size, on_fallback=self._graph_dropped)
                         if self.step_mode is StepMode.GRAPHED else None)

    def _graph_dropped(self, why: str) -> None:
        """The CUDA graph failed or differed (GraphedStep): one line, and the run says so in MLflow (tag `cuda_graphs`)."""
        log.warning("CUDA graph dropped, training on without it: %s", why)
        if self.logger is not None and hasattr(self.logger, "run_id"):
            self.logger.experiment.set_tag(self.logger.run_id, names.Tag.CUDA_GRAPHS, f"dropped: {why}"[:5000])

    def _now(self) -> float:
        torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """One optimizer step per mini-batch of the chunk; losses and predictions stay on the device."""
        step = self._graphed or self._train_step
        optimizer = self.optimizers()
        cuda = self.device.type == "cuda"
        for x, y in self.trainer.train_dataloader.split(*batch):
            start = self._now() if cuda and step.warming_up(len(y)) else None  # type: ignore[union-attr]
            step(x, y)  # type: ignore[misc]
            if start is not None:
                self.warmup_seconds += self._now() - start
            optimizer._on_before_step()  # Lightning's step count (global_step), as optimizer.step() would keep it
            optimizer._on_after_step()
        if batch_idx == self.trainer.num_training_batches - 1:  # before any epoch-end reader (LR monitor, checkpoint)
            self._train_step.publish_lrs()  # type: ignore[union-attr]

    def on_train_epoch_end(self) -> None:
        """The epoch's training metrics from the step's device sums; under DDP the mean over ranks (equal shards)."""
        loss, acc = self._train_step.epoch_metrics()  # type: ignore[union-attr]
        self.log(names.Metric.TRAIN_LOSS, loss, on_step=False, on_epoch=True, sync_dist=True)
        self.log(names.Metric.TRAIN_ACC, acc, on_step=False, on_epoch=True, sync_dist=True)
        if not torch.isfinite(loss):  # one check per epoch: a diverged run stops now, recorded as FAILED
            raise TrainingDiverged(
                f"train/loss became {float(loss)} in epoch {self.current_epoch}; lower optimizer.lr or add a schedule warm-up"
            )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_loss, self.val_acc)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        _, logits = self._step(batch, self.test_loss, self.test_acc)
        self.test_report.update(logits, batch[1])
        probs, preds = logits.float().softmax(dim=1).max(dim=1)
        self._test_preds.append(preds)
        self._test_probs.append(probs)

    def on_test_epoch_start(self) -> None:
        self._test_preds, self._test_probs = [], []

    def on_test_epoch_end(self) -> None:
        """Keep what the report needs: per-class numbers and every test prediction, in test-set order."""
        self._log_epoch("test", self.test_loss, self.test_acc)
        report = {name: value.cpu() for name, value in self.test_report.compute().items()}
        self.test_report.reset()
        self.test_outputs = {
            **report,
            "preds": torch.cat(self._test_preds).cpu(),
            "probs": torch.cat(self._test_probs).cpu(),
        }
