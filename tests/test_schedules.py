"""Learning-rate schedules (conf/schedule): the rates their recipes promise, and the same rates as torch's
own schedulers, which are kept here, and only here, as the independent reference."""
from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Mapping

import pytest
import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from digits_bench.schedules import Schedule

from .conftest import ROOT, compose

OPTIONS = sorted(path.stem for path in (ROOT / "conf" / "schedule").glob("*.yaml"))


def torch_reference(name: str, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                    options: Mapping[str, Any]) -> tuple[LRScheduler | None, str]:
    """torch's scheduler for a conf/schedule option, and whether it steps after every "step" or every "epoch"."""
    if name == "constant":
        return None, "step"
    if name == "steps":
        boundaries, factors = list(options["boundaries"]), list(options["factors"])
        return LambdaLR(optimizer, lambda epoch: factors[bisect.bisect_right(boundaries, epoch)]), "epoch"
    if name == "cosine":
        warmup, total, low = int(options["warmup_epochs"] * steps_per_epoch), epochs * steps_per_epoch, options["min_factor"]

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))

        return LambdaLR(optimizer, factor), "step"
    if name == "onecycle":
        peak = [group["lr"] for group in optimizer.param_groups]
        return OneCycleLR(optimizer, max_lr=peak, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=options["pct_start"],
                          div_factor=options["div_factor"], final_div_factor=options["final_div_factor"], cycle_momentum=False), "step"
    raise LookupError(f"no torch reference for schedule {name!r}: add one here")


def reference_rates(name: str, epochs: int, steps_per_epoch: int, lr: float, options: Mapping[str, Any]) -> list[float]:
    """The rate torch's scheduler puts in force at each optimizer step of a run, and the one it leaves after the last."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler, interval = torch_reference(name, optimizer, epochs, steps_per_epoch, options)
    seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if scheduler is not None and interval == "step":
                scheduler.step()
        if scheduler is not None and interval == "epoch":
            scheduler.step()
    return seen + [optimizer.param_groups[0]["lr"]]


def rates(name: str, epochs: int, steps_per_epoch: int, lr: float, *overrides: str) -> tuple[list[float], list[float]]:
    """(our schedule's rates, torch's) at steps 0 .. epochs x steps_per_epoch."""
    options = compose(f"schedule={name}", *overrides).schedule
    schedule = instantiate(options)(epochs=epochs, steps_per_epoch=steps_per_epoch)
    steps = torch.arange(epochs * steps_per_epoch + 1)
    ours = [float(schedule.lr(step, lr)) for step in steps]
    return ours, reference_rates(name, epochs, steps_per_epoch, lr, options)


@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_is_one_class_whose_defaults_live_in_its_yaml(name: str):
    options = compose(f"schedule={name}").schedule
    schedule = instantiate(options)(epochs=2, steps_per_epoch=3)
    assert isinstance(schedule, Schedule) and type(schedule).__module__ == f"digits_bench.schedules.{name}"
    fields = dataclasses.fields(schedule)
    assert {f.name for f in fields} - {"epochs", "steps_per_epoch"} == set(options) - {"_target_", "_partial_"}
    assert all(f.default is dataclasses.MISSING for f in fields)  # no second copy of a default in code
    assert schedule.lr(torch.tensor(0), 0.5).dtype == torch.float64


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("constant", []),
        ("steps", []),
        ("steps", ["schedule.boundaries=[1,2]", "schedule.factors=[0.1,1.0,0.1]"]),
        ("cosine", []),
        ("cosine", ["schedule.warmup_epochs=1", "schedule.min_factor=0.1"]),
        ("cosine", ["schedule.warmup_epochs=0.5", "schedule.min_factor=0.3"]),
        ("onecycle", []),
        ("onecycle", ["schedule.pct_start=0.3", "schedule.div_factor=10", "schedule.final_div_factor=100"]),
    ],
)
def test_rates_agree_with_torchs_schedulers(name: str, overrides: list[str]):
    ours, theirs = rates(name, 16, 7, 0.1, *overrides)
    if name in ("constant", "steps"):
        assert ours == theirs
    else:  # the same float64 operations; cos may differ in its last bit
        assert ours == pytest.approx(theirs, rel=1e-14, abs=0)


def test_constant():
    ours, _ = rates("constant", 3, 2, 0.1)
    assert set(ours) == {0.1}


def test_steps_is_seed_004():
    ours, _ = rates("steps", 16, 1, 0.1)
    assert ours[:16] == pytest.approx([0.01] + [0.1] * 5 + [0.01] * 5 + [0.001] * 5)


def test_cosine_decays_to_min_with_warmup():
    ours, _ = rates("cosine", 4, 10, 1.0, "schedule.warmup_epochs=1", "schedule.min_factor=0.1")
    assert ours[0] == pytest.approx(0.1) and ours[9] == pytest.approx(1.0) and max(ours) == pytest.approx(1.0)
    assert ours[39] == pytest.approx(0.1, abs=0.01) and min(ours) == pytest.approx(0.1)


def test_onecycle_peaks_at_lr():
    ours, _ = rates("onecycle", 4, 10, 0.2)
    assert max(ours) == pytest.approx(0.2, rel=1e-3) and ours.index(max(ours)) == 9  # pct_start 0.25 of 40 steps
    assert ours[0] == pytest.approx(0.2 / 25) and ours[39] < 0.001
