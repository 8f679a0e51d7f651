"""One console line per finished trial: how far the sweep is, what the trial scored, the best so far.

    trial 3/20 (#2)  val/acc 0.9812  COMPLETE  best 0.9840 (#1)

`k/N` counts the trials that used up the budget (across workers and restarts);
`#n` is Optuna's trial number, as in optuna-dashboard and the final table.
"""
from __future__ import annotations

from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from digits_bench.sweep.spec import SweepSpec


def best_complete(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if direction == "maximize" else min
    return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


def trial_line(spec: SweepSpec, trial: FrozenTrial, done: int, best: FrozenTrial | None) -> str:
    if trial.value is not None:
        result = f"{spec.metric} {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED and trial.intermediate_values:  # its last reported value
        result = f"{spec.metric} {trial.intermediate_values[max(trial.intermediate_values)]:.4f}"
    else:
        result = f"{spec.metric} -"
    line = f"trial {done}/{spec.n_trials} (#{trial.number})  {result}  {trial.state.name}"
    if trial.state == TrialState.FAIL and "error" in trial.user_attrs:
        line += f" ({trial.user_attrs['error'].splitlines()[0][:160]})"
    return line + (f"  best {best.value:.4f} (#{best.number})" if best is not None else "  best -")


def progress_callback(spec: SweepSpec, counted: Callable[[list[FrozenTrial]], int]) -> Callable[[optuna.Study, FrozenTrial], None]:
    """An Optuna callback printing `trial_line` after each trial this process ran."""

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        print(trial_line(spec, trial, counted(trials), best_complete(trials, spec.direction)), flush=True)

    return report
