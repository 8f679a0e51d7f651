"""A CUDA graph can never fail a run (training/step.py, GraphedStep), proven on a CPU: the graph is stood in for
by a fake that replays the step right, wrongly, or raises. Whatever it does, the weights end as the uncaptured
step leaves them, and the run hears why once."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import pytest
import torch

from digits_bench.training.run import build_module
from digits_bench.training.step import WARMUP_STEPS, GraphedStep, TrainStep

from .conftest import compose

BATCH = 16
STEPS = WARMUP_STEPS + 4  # warm-up, capture, the canary's step, then replays


class FakeGraph:
    def __init__(self, replay: Callable[[], None]) -> None:
        self.replay = replay


class OnCpu(GraphedStep):
    """GraphedStep with its CUDA parts stood in for: `graph(step)` makes what capture returns."""

    def __init__(self, step: TrainStep, graph: Callable[["OnCpu"], FakeGraph], heard: list[str]) -> None:
        super().__init__(step, BATCH, on_fallback=heard.append)
        self.make_graph = graph

    def _side_stream(self):
        return contextlib.nullcontext()

    def _capture(self) -> FakeGraph:
        return self.make_graph(self)


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (BATCH, 28, 28), dtype=torch.uint8, generator=generator),
             torch.randint(0, 10, (BATCH,), generator=generator)) for _ in range(STEPS)]


def trained(wrap: Callable[[TrainStep], Callable[[torch.Tensor, torch.Tensor], None]]) -> TrainStep:
    """lenet with augmentation (random draws: the canary must replay the same ones), trained STEPS mini-batches."""
    torch.manual_seed(0)
    module = build_module(compose("model=lenet", "aug=on", "optimizer=momentum"))
    optimizer = module.optimizer_factory(module.net.parameters())
    step = TrainStep(module.net, functools.partial(module.preprocess, train=True), optimizer,
                     module.schedule_factory(epochs=1, steps_per_epoch=STEPS), 0, None, torch.device("cpu"))
    run = wrap(step)
    torch.manual_seed(1)  # the augmentation's draws
    for images, labels in batches():
        run(images, labels)
    return step


def right(graphed: OnCpu) -> FakeGraph:
    return FakeGraph(lambda: graphed.step(graphed._images, graphed._labels))


def wrong(graphed: OnCpu) -> FakeGraph:
    def replay() -> None:
        graphed.step(graphed._images, graphed._labels)
        with torch.no_grad():
            next(graphed.step.net.parameters()).add_(0.1)  # a graph that computes something else

    return FakeGraph(replay)


def capture_fails(graphed: OnCpu) -> FakeGraph:
    raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


def fails_later(graphed: OnCpu) -> FakeGraph:
    replays = []

    def replay() -> None:
        replays.append(1)
        if len(replays) == 3:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        graphed.step(graphed._images, graphed._labels)

    return FakeGraph(replay)


@pytest.mark.parametrize(("graph", "heard"), [
    (right, []),
    (wrong, ["its first replay differs from the uncaptured step in 1 of"]),
    (capture_fails, ["capture failed (RuntimeError: CUDA error: operation not permitted when stream is capturing)"]),
    (fails_later, ["replay failed (RuntimeError: CUDA error: an illegal memory access was encountered)"]),
])
def test_whatever_the_graph_does_the_weights_are_the_uncaptured_steps(graph: Callable, heard: list[str]):
    uncaptured = trained(lambda step: step)
    said: list[str] = []
    graphed: list[OnCpu] = []
    result = trained(lambda step: graphed.append(OnCpu(step, graph, said)) or graphed[0])
    for mine, theirs in zip(result.net.state_dict().values(), uncaptured.net.state_dict().values()):
        assert torch.equal(mine, theirs)
    assert int(result.step) == STEPS and int(result.count) == STEPS * BATCH and torch.equal(result.loss_sum, uncaptured.loss_sum)
    assert [line[: len(h)] for line, h in zip(said, heard)] == heard and len(said) == len(heard)  # once each
    assert (graphed[0].fallback is None) == (not heard) and (graphed[0].graph is None) == bool(heard)
    assert not graphed[0].warming_up(BATCH)


@pytest.mark.fit
def test_a_dropped_graph_is_one_line_and_a_tag_and_the_run_finishes(monkeypatch: pytest.MonkeyPatch, isolated_store,
                                                                     caplog: pytest.LogCaptureFixture):
    """Through the one training path: the fit asks for a graph (as on one CUDA device), its capture fails."""
    from digits_bench.training import module as module_code
    from digits_bench.training.run import train
    from digits_bench.training.step import StepMode

    from .conftest import TINY, client_for

    monkeypatch.setattr(module_code, "choose_step_mode", lambda *args: (StepMode.GRAPHED, None))
    monkeypatch.setattr(GraphedStep, "_side_stream", lambda self: contextlib.nullcontext())
    monkeypatch.setattr(GraphedStep, "_capture", lambda self: capture_fails(self))
    result = train(compose(*TINY, "model=linear", "optimizer=adam", "data.chunk_batches=2"))
    run = client_for(isolated_store).get_run(result.run_id)
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    why = "capture failed (RuntimeError: CUDA error: operation not permitted when stream is capturing)"
    assert run.data.tags["cuda_graphs"] == f"dropped: {why}"
    assert [r.getMessage() for r in caplog.records if "CUDA graph" in r.getMessage()] == [
        f"CUDA graph dropped, training on without it: {why}"]
