"""Learning-rate schedules (conf/schedule) produce the rates their recipes promise."""
from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from .conftest import compose


def rates(schedule_name: str, epochs: int, steps_per_epoch: int, lr: float, *overrides: str) -> list[float]:
    """The learning rate in force at each optimizer step of a run."""
    factory = instantiate(compose(f"schedule={schedule_name}", *overrides).schedule)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    config = factory(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch)
    seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if config and config["interval"] == "step":
                config["scheduler"].step()
        if config and config["interval"] == "epoch":
            config["scheduler"].step()
    return seen


def test_constant():
    assert set(rates("constant", 3, 2, 0.1)) == {0.1}


def test_steps_is_seed_004():
    per_epoch = rates("steps", 16, 1, 0.1)
    expected = [0.01] + [0.1] * 5 + [0.01] * 5 + [0.001] * 5
    assert per_epoch == pytest.approx(expected)


def test_cosine_decays_to_min_with_warmup():
    seen = rates("cosine", 4, 10, 1.0, "schedule.warmup_epochs=1", "schedule.min_factor=0.1")
    assert seen[0] == pytest.approx(0.1) and max(seen) == pytest.approx(1.0)
    assert seen[-1] == pytest.approx(0.1, abs=0.01)


def test_onecycle_peaks_at_lr():
    seen = rates("onecycle", 4, 10, 0.2)
    assert max(seen) == pytest.approx(0.2, rel=1e-3)
    assert seen[0] == pytest.approx(0.2 / 25) and seen[-1] < 0.001
