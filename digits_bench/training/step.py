"""The one training step, and when it runs as a CUDA graph.

`TrainStep` is one optimizer step on a uint8 mini-batch, written so that it can be captured:
preprocessing and augmentation (random draws on the device), forward, loss, backward, the optimizer
step, the learning rate (the schedule's tensor form, from a step-counter tensor) and the epoch's
metrics (sums in device tensors). Nothing in it reads a value back to the host. Wherever a graph
does not apply (CPU, DDP, torch.compile, ...) it runs as is; on one CUDA device `GraphedStep` runs
it for a few warm-up steps (cuDNN autotune, optimizer state), captures it once, then copies each
mini-batch into the graph's input buffers and replays it.

`choose_step_mode` decides per fit whether the graph applies, and says in one line why not. A graph that
fails to capture or replay, or whose first replay differs from the uncaptured step, is dropped: the run
goes on uncaptured (GraphedStep's canary and fallback).
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from digits_bench.optimizers import OptimizerFactory, capturable_options, optimizer_class
from digits_bench.schedules import Schedule

WARMUP_STEPS = 3  # eager steps before capture: cuDNN autotune, lazy inits, optimizer state (momentum buffers)
AUTOCAST = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16}


class StepMode(enum.Enum):
    """How the training step runs in one fit, chosen once when it is set up."""

    PLAIN = "plain"  # called as is
    GRAPHED = "graphed"  # captured once as a CUDA graph, then replayed


@dataclasses.dataclass(frozen=True)
class GradientClip:
    """Lightning's `trainer.gradient_clip_val` / `gradient_clip_algorithm`, applied by the step itself (Lightning
    clips only in automatic optimization). Both forms read nothing back to the host, so they run in a graph."""

    value: float
    algorithm: str = "norm"

    def __call__(self, parameters: Iterable[nn.Parameter]) -> None:
        if self.algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(parameters, self.value)
        else:
            torch.nn.utils.clip_grad_value_(parameters, self.value)


class TrainStep:
    """One optimizer step on a uint8 mini-batch, every operation capturable in a CUDA graph.

    The rate of step k is in force during step k; the next one is computed right after the optimizer
    step, as torch's schedulers set it. It lives in one device tensor per parameter group (float32 on
    CUDA, where fused optimizers read it; float64 elsewhere, the schedule's exact rate).

    `backward` is loss.backward() unless given: uncaptured under Lightning it is the strategy's
    (manual_backward: DDP's gradient all-reduce, loss scaling). With a GradScaler (precision
    16-mixed, never graphed) the optimizer step is the scaler's, skipped on overflow.
    """

    def __init__(
        self,
        net: nn.Module,
        preprocess: Callable[[torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        schedule: Schedule,
        first_step: int,
        autocast: torch.dtype | None,
        device: torch.device,
        backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
        scaler: torch.amp.GradScaler | None = None,
        clip: GradientClip | None = None,
    ) -> None:
        self.net, self.preprocess, self.optimizer, self.schedule = net, preprocess, optimizer, schedule
        self.device, self.autocast, self.backward, self.scaler, self.clip = device, autocast, backward, scaler, clip
        self.step = torch.tensor(first_step, dtype=torch.int64, device=device)
        lr_dtype = torch.float32 if device.type == "cuda" else torch.float64
        for group in optimizer.param_groups:  # torch's schedulers' convention: the configured rate, kept in the
            group.setdefault("initial_lr", group["lr"])  # optimizer's state (a resumed one holds the scheduled rate in lr)
        self.lrs = [torch.zeros((), dtype=lr_dtype, device=device) for _ in optimizer.param_groups]
        self.calls = 0  # steps taken by this object: the first WARMUP_STEPS on CUDA pay one-off costs
        self._schedule_rates()
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.publish_lrs()

    def _schedule_rates(self) -> None:
        for lr, group in zip(self.lrs, self.optimizer.param_groups):
            lr.copy_(self.schedule.lr(self.step, float(group["initial_lr"])))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast, cache_enabled=False)  # graphs need no cast cache

    def warming_up(self, size: int) -> bool:
        """Whether the next step pays a one-off cost (cuDNN autotune, lazy inits, optimizer state): the first few on CUDA."""
        return self.device.type == "cuda" and self.calls < WARMUP_STEPS

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.calls += 1
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            # the step reads the tensor on CUDA (no host read; a graph replays it); a CPU reads it for free, and
            # torch's optimizers would negate a tensor rate once per parameter. Between epochs: publish_lrs
            group["lr"] = lr if self.device.type == "cuda" else lr.item()
        with self._autocast():
            logits = self.net(self.preprocess(images))
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        if self.clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            self.clip(self.net.parameters())
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with torch.no_grad():
            self.step += 1
            self._schedule_rates()
            self.loss_sum.add_(loss.detach(), alpha=len(labels))  # summed in float64
            self.correct.add_(logits.detach().argmax(dim=1).eq(labels).sum())
            self.count += len(labels)

    def publish_lrs(self) -> None:
        """Plain floats in the optimizer for the LR monitor and checkpoints (one host read, per epoch)."""
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            group["lr"] = float(lr)

    def epoch_metrics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, accuracy) of the steps since the last call, as device tensors; the sums restart."""
        count = self.count.clamp(min=1)
        loss, acc = (self.loss_sum / count).float(), self.correct.double().div(count).float()
        for total in (self.loss_sum, self.correct, self.count):
            total.zero_()  # in place: the graph keeps adding into these very tensors
        return loss, acc


class GraphedStep:
    """A TrainStep captured once as a CUDA graph and replayed for every full-size mini-batch; never a run's end.

    The first WARMUP_STEPS mini-batches train eagerly on a side stream, as capture requires; a
    mini-batch of another size (an epoch's last) trains eagerly with the same tensors. Random draws
    (augmentation) come from the graph-registered CUDA generator, so every replay draws fresh ones.

    The graph is trusted only once its first replay matched the uncaptured step on the same batch from the
    same state (the canary: loss sums and every updated tensor, to a tolerance). A capture or replay that
    raises, or a canary that differs, falls back to the same step uncaptured for the rest of the run;
    `on_fallback` hears why, once.
    """

    RTOL, ATOL = 1e-3, 1e-5  # the canary's tolerance: kernels may differ in summation order, not in what they compute

    def __init__(self, step: TrainStep, batch_size: int, on_fallback: Callable[[str], None] | None = None) -> None:
        self.step, self.batch_size = step, batch_size
        self.graph: Any = None
        self.warmup_left = WARMUP_STEPS
        self.fallback: str | None = None  # why the step runs uncaptured after all
        self.on_fallback = on_fallback
        self._canary_pending = False
        self._images: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._eager_sizes: set[int] = set()

    def warming_up(self, size: int) -> bool:
        """Whether a mini-batch of this size pays a one-off cost: before capture, or a new odd size (cuDNN autotune)."""
        if self.fallback is not None:
            return False
        return self.graph is None or (size != self.batch_size and size not in self._eager_sizes)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.fallback is not None or len(labels) != self.batch_size:
            self._eager_sizes.add(len(labels))
            self.step(images, labels)
        elif self.graph is None:
            self._warm_up(images, labels)
        elif self._canary_pending:
            self._canary(images, labels)
        else:
            try:
                self._replay(images, labels)
            except Exception as err:  # noqa: BLE001 - whatever the driver says, the run goes on uncaptured
                self._fall_back(f"replay failed ({_first_line(err)})")  # a replay fails at launch, before it runs
                self.step(images, labels)

    def _warm_up(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        with self._side_stream():
            self.step(images, labels)
        self.warmup_left -= 1
        if self.warmup_left == 0:  # capture only records: the next batch is the first one the graph trains on
            self._images, self._labels = images.clone(), labels.clone()
            before = self._state()
            try:
                self.graph = self._capture()
                self._canary_pending = True
            except Exception as err:  # noqa: BLE001
                self.graph = None
                self._load(before)
                self._fall_back(f"capture failed ({_first_line(err)})")

    def _side_stream(self) -> contextlib.AbstractContextManager:
        """Warm-up steps run on a side stream, as capture requires."""
        return _side_stream()

    def _capture(self) -> Any:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.step(self._images, self._labels)  # type: ignore[arg-type]
        return graph

    def _replay(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._images.copy_(images, non_blocking=True)  # type: ignore[union-attr]
        self._labels.copy_(labels, non_blocking=True)  # type: ignore[union-attr]
        self.graph.replay()

    def _canary(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """The graph's first step against the uncaptured step on the same batch, from the same state and draws.
        Whatever goes wrong on the way, the run continues from the uncaptured step's result."""
        self._canary_pending = False
        uncaptured: list[torch.Tensor] | None = None
        try:
            before = self._state()
            self.step(images, labels)
            uncaptured = self._state()
            self._load(before)
            self._replay(images, labels)
            differs = sum(not _close(a, b, self.RTOL, self.ATOL) for a, b in zip(uncaptured, self._state()))
        except Exception as err:  # noqa: BLE001
            if uncaptured is None:
                self.step(images, labels)
            else:
                self._load(uncaptured)
            self._fall_back(f"its first replay failed ({_first_line(err)})")
            return
        if differs:
            self._load(uncaptured)
            self._fall_back(f"its first replay differs from the uncaptured step in {differs} of {len(uncaptured)} tensors")

    def _tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: weights, buffers, optimizer state, the step count, rates and metric sums."""
        step = self.step
        state = [t for s in step.optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        return [*step.net.parameters(), *step.net.buffers(), *state, step.step, *step.lrs, step.loss_sum, step.correct, step.count]

    def _state(self) -> list[torch.Tensor]:
        rng = torch.cuda.get_rng_state(self.step.device) if self.step.device.type == "cuda" else torch.get_rng_state()
        return [t.detach().clone() for t in self._tensors()] + [rng]

    def _load(self, saved: list[torch.Tensor]) -> None:
        """In place: the graph holds these very tensors."""
        *tensors, rng = saved
        with torch.no_grad():
            for tensor, value in zip(self._tensors(), tensors):
                tensor.copy_(value)
        if self.step.device.type == "cuda":
            torch.cuda.set_rng_state(rng, self.step.device)
        else:
            torch.set_rng_state(rng)

    def _fall_back(self, why: str) -> None:
        self.graph, self.fallback = None, why
        if self.on_fallback is not None:
            self.on_fallback(why)


def _side_stream() -> contextlib.AbstractContextManager:
    @contextlib.contextmanager
    def side() -> Iterator[None]:
        stream, main = torch.cuda.Stream(), torch.cuda.current_stream()
        stream.wait_stream(main)
        with torch.cuda.stream(stream):
            yield
        main.wait_stream(stream)

    return side()


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    if a.is_floating_point():
        return bool(torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol, equal_nan=True))
    return bool(torch.equal(a, b))


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:160]}"


def choose_step_mode(requested: bool | None, trainer: Any, net: nn.Module, optimizer: OptimizerFactory) -> tuple[StepMode, str | None]:
    """(the mode, why the graph does not apply or None); `requested` is cuda_graphs: None means wherever it applies."""
    if requested is False:
        return StepMode.PLAIN, None
    reasons = []
    if trainer.strategy.root_device.type != "cuda":
        if requested is None:
            return StepMode.PLAIN, None  # nothing to fall back from on a CPU
        reasons.append("they need a CUDA device")
    if trainer.world_size != 1 or type(trainer.strategy).__name__ != "SingleDeviceStrategy":
        reasons.append(f"strategy {type(trainer.strategy).__name__} (one device only)")
    if hasattr(net, "_orig_mod"):
        reasons.append("compile=true (torch.compile makes its own graphs)")
    if str(trainer.precision) not in AUTOCAST:
        reasons.append(f"precision {trainer.precision} (needs 32-true or bf16-mixed)")
    if capturable_options(optimizer) is None:
        name = getattr(optimizer_class(optimizer), "__qualname__", str(optimizer))
        reasons.append(f"optimizer {name} has no capturable form declared in digits_bench/optimizers/__init__.py")
    if reasons:
        return StepMode.PLAIN, "CUDA graphs off: " + "; ".join(reasons) + " — training without them"
    return StepMode.GRAPHED, None
