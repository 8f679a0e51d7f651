"""A sweep on the console: one line per finished trial, then a table of every trial and the best one's line.

    trial 3/20 (#2)  val/acc 0.9812  COMPLETE  best 0.9840 (#1)
    ...
    best trial #1: val/acc 0.9840  model=lenet  optimizer.lr=0.01679

`k/N` counts the trials that used up the budget (across workers and restarts);
`#n` is Optuna's trial number, as in optuna-dashboard and the final table. Values read as the run names do
(floats to 4 significant digits).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from digits_bench.sweep import SURPLUS_ATTR
from digits_bench.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from rich.table import Table


def readable(value: Any) -> str:
    """A sampled value as a person reads it: `0.01679`, not `0.016791248331372594`."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
        if SURPLUS_ATTR in trial.user_attrs:  # it never ran: another worker's trial took its slot
            return
        trials = study.get_trials(deepcopy=False)
        print(trial_line(spec, trial, counted(trials), best_complete(trials, spec.direction)), flush=True)

    return report


def trials_table(spec: SweepSpec, trials: list[FrozenTrial]) -> Table:
    """Every trial of the study, by number: its score, state and sampled values (columns named as the config keys)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    keys = list(dict.fromkeys(key for t in trials for key in t.params))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column(spec.metric, justify="right")
    table.add_column("state")
    for key in keys:
        table.add_column(escape(key), justify="right")
    for t in sorted(trials, key=lambda t: t.number):
        score = "-" if t.value is None else f"{t.value:.4f}"
        table.add_row(str(t.number), score, t.state.name, *(escape(readable(t.params[k])) if k in t.params else "-" for k in keys))
    return table


def best_line(spec: SweepSpec, best: FrozenTrial) -> str:
    values = "  ".join(f"{key}={readable(value)}" for key, value in best.params.items())
    return f"best trial #{best.number}: {spec.metric} {best.value:.4f}  {values}"
