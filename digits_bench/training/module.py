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

from digits_bench.errors import TrainingDiverged
from digits_bench.training.step import AUTOCAST, WARMUP_STEPS, GraphedStep, TrainStep, choose_step_mode
from digits_bench.schedules import SchedulerConfig, tensor_schedule

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
ScheduleFactory = Callable[..., SchedulerConfig]


class DigitsClassifier(pl.LightningModule):
    """Cross-entropy classification with on-device preprocessing.

    Batches arrive as uint8 images; `on_after_batch_transfer` scales,
    augments (training batches only) and normalises them on the device.
    A training batch may hold several mini-batches (`data.chunk_batches`):
    the training step takes one optimizer step per mini-batch of
    `batch_size`, so Lightning's per-step overhead is paid once per chunk.
    Metrics are torchmetrics objects that accumulate on the device and are
    read once per epoch, so no step forces a host synchronisation.

    On one CUDA device the whole optimizer step, preprocessing and learning-rate
    schedule included, is replayed as a CUDA graph (graph_step.py; `cuda_graphs`:
    None = wherever it applies, False = never). `step_mode` says which step runs:
    "eager" (the loop below), "graphed", or "graph_safe" (the graphed step's code run
    eagerly: what the CPU tests compare with "eager"). The first steps on a GPU
    (cuDNN autotune, capture) are timed into `warmup_seconds`, which TrainingClock
    keeps out of the training time.
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
        batch_size: int = 100,
        cuda_graphs: bool | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # the training step walks its chunk of mini-batches itself
        self.batch_size = batch_size
        self.net, self.augment = net, augment
        self.optimizer_factory, self.schedule_factory = optimizer, schedule
        self.mean, self.std, self.num_classes = mean, std, num_classes
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        self.step_mode: str | None = None  # chosen in setup("fit") unless set before
        self._fast: TrainStep | GraphedStep | None = None
        self.warmup_seconds = 0.0
        self._warmup_left = 0
        self._base_lrs: list[float] = []
        # one image through the net lets Lightning's model summary count real FLOPs (per image);
        # not for a compiled net, which would compile for it
        self.example_input_array = None if hasattr(net, "_orig_mod") else torch.zeros(1, 1, 28, 28)
        # validate_args / nan checks would read values back to the host on every step
        accuracy = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.train_acc, self.val_acc, self.test_acc = accuracy.clone(), accuracy.clone(), accuracy.clone()
        mean = MeanMetric(nan_strategy="disable")
        self.train_loss, self.val_loss, self.test_loss = mean.clone(), mean.clone(), mean.clone()
        self.test_report = MetricCollection(
            {
                "confusion": MulticlassConfusionMatrix(num_classes, validate_args=False),
                "precision": MulticlassPrecision(num_classes, average=None, validate_args=False),
                "recall": MulticlassRecall(num_classes, average=None, validate_args=False),
                "f1": MulticlassF1Score(num_classes, average=None, validate_args=False),
            }
        )
        self.test_outputs: dict[str, torch.Tensor] = {}
        self._test_preds: list[torch.Tensor] = []
        self._test_probs: list[torch.Tensor] = []

    def preprocess(self, images: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 (N, 28, 28) -> normalised float (N, 1, 28, 28); the exact input the net was trained on.

        Normalising is one in-place multiply-add; it commutes with the affine warp (bilinear
        interpolation with border padding is linear), so augmentation can follow it.
        """
        x = images.unsqueeze(1).float().mul_(1.0 / (255.0 * self.std)).sub_(self.mean / self.std)
        if train and getattr(self.augment, "enabled", True):
            x = self.augment(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the model summary's example_input_array: already normalised images
            return batch
        images, labels = batch
        if self.trainer.training and self.step_mode in ("graphed", "graph_safe"):
            return images, labels  # the graph-safe step preprocesses each mini-batch itself
        return self.preprocess(images, train=self.trainer.training), labels

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
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True)
        self.log(f"{split}/acc", acc, on_step=False, on_epoch=True, prog_bar=split == "val")

    def _scheduler(self, interval: str) -> Any:
        configs = self.trainer.lr_scheduler_configs
        return configs[0].scheduler if configs and configs[0].interval == interval else None

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.step_mode is None:
            self.step_mode, why = choose_step_mode(self.cuda_graphs, self.trainer, self.net, self.optimizer_factory, self.schedule_factory)
            if why and self.trainer.is_global_zero:  # one line per run, not one per DDP process
                log.warning(why)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["step_mode"] = self.step_mode

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A run checkpointed by the graph step has no Python scheduler state: resume it with the same step, eagerly."""
        if checkpoint.get("step_mode") in ("graphed", "graph_safe") and self.step_mode == "eager":
            log.warning("resuming a run trained with CUDA graphs without them: its schedule continues from the step count")
            self.step_mode = "graph_safe"

    def on_train_start(self) -> None:
        """Build the graph-safe step now: after a resumed run's optimizer state and step count are restored."""
        self._warmup_left = WARMUP_STEPS if self.device.type == "cuda" else 0
        if self.step_mode == "eager":
            return
        schedule = tensor_schedule(self.schedule_factory, epochs=self.trainer.max_epochs,
                                   steps_per_epoch=max(1, self.trainer.datamodule.train_steps_per_epoch()))
        step = TrainStep(self.net, functools.partial(self.preprocess, train=True), self.optimizers(use_pl_optimizer=False),
                         self._base_lrs, schedule, self.trainer.global_step, AUTOCAST.get(str(self.trainer.precision)), self.device)
        self._fast = GraphedStep(step, self.batch_size) if self.step_mode == "graphed" else step

    def _warming_up(self, size: int) -> bool:
        if isinstance(self._fast, GraphedStep):
            return self._fast.warming_up(size)
        return self._warmup_left > 0

    def _now(self) -> float:
        torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _fast_training_step(self, images: torch.Tensor, labels: torch.Tensor, last: bool) -> None:
        optimizer = self.optimizers()
        for x, y in zip(images.split(self.batch_size), labels.split(self.batch_size)):
            start = self._now() if self.device.type == "cuda" and self._warming_up(len(y)) else None
            self._fast(x, y)  # type: ignore[misc]
            if start is not None:
                self.warmup_seconds += self._now() - start
                self._warmup_left -= 1
            optimizer._on_before_step()  # Lightning's step count (global_step), as optimizer.step() would keep it
            optimizer._on_after_step()
        if last:  # before any epoch-end reader (LR monitor, checkpoint): plain floats, the next step's rates
            (self._fast.step if isinstance(self._fast, GraphedStep) else self._fast).publish_lrs()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """One optimizer step per mini-batch of the chunk; losses and predictions are kept on the device."""
        images, labels = batch
        if self._fast is not None:
            return self._fast_training_step(images, labels, last=batch_idx == self.trainer.num_training_batches - 1)
        optimizer, scheduler = self.optimizers(), self._scheduler("step")
        losses, preds = [], []
        for x, y in zip(images.split(self.batch_size), labels.split(self.batch_size)):
            start = self._now() if self._warmup_left else None
            logits = self(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if start is not None:  # the first steps on a GPU: cuDNN autotune, lazy initialisation
                self.warmup_seconds += self._now() - start
                self._warmup_left -= 1
            losses.append(loss.detach() * len(y))
            preds.append(logits.detach().argmax(dim=1))
        self.train_loss.update(torch.stack(losses).sum() / len(labels), weight=len(labels))
        self.train_acc.update(torch.cat(preds), labels)

    def on_train_epoch_end(self) -> None:
        scheduler = self._scheduler("epoch")
        if scheduler is not None:
            scheduler.step()
        if self._fast is None:
            loss = self.train_loss.compute()  # cached: the logging below reuses it
            self._log_epoch("train", self.train_loss, self.train_acc)
        else:
            step = self._fast.step if isinstance(self._fast, GraphedStep) else self._fast
            loss, acc = step.epoch_metrics()
            self.log("train/loss", loss, on_step=False, on_epoch=True)
            self.log("train/acc", acc, on_step=False, on_epoch=True)
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

    def configure_optimizers(self) -> dict[str, Any]:
        if self.step_mode in ("graphed", "graph_safe"):  # the schedule runs inside the step, from its step counter
            fused = {"fused": True} if self.step_mode == "graphed" else {}
            optimizer = self.optimizer_factory(self.net.parameters(), **fused)
            self._base_lrs = [group["lr"] for group in optimizer.param_groups]
            return {"optimizer": optimizer}
        optimizer = self.optimizer_factory(self.net.parameters())
        steps_per_epoch = max(1, self.trainer.datamodule.train_steps_per_epoch())
        scheduler = self.schedule_factory(optimizer, epochs=self.trainer.max_epochs, steps_per_epoch=steps_per_epoch)
        return {"optimizer": optimizer} if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
