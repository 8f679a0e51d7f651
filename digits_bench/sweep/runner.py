"""Optuna studies driven directly: each trial composes its config with Hydra and trains through `train()`.

Storage is any RDB URL (SQLite by default). Heartbeats mark trials of a killed
process failed and a retry callback re-queues them with the same parameters;
the trial budget is counted from the storage, so a rerun resumes a study
instead of starting over, and N worker processes share one study.
"""
from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
from mlflow.entities import Metric as MlflowMetric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from digits_bench.config import compose_config
from digits_bench.errors import ConfigError, RunFailed
from digits_bench.names import TRIAL_RUN_ATTR, Tag, run_name
from digits_bench.tracking import runs, views
from digits_bench.tracking.handoff import inherited, passing_down
from digits_bench.tracking.store import enable_wal, make_client, store_lock
from digits_bench.training.run import train
from digits_bench.sweep import SURPLUS_ATTR, ran
from digits_bench.sweep.progress import progress_callback
from digits_bench.sweep.spec import SweepSpec, make_pruner, make_sampler

log = logging.getLogger(__name__)
PARENT_ATTR = "mlflow_parent_run_id"
BASE_ATTR = "base_overrides"  # lets `compare --study` rebuild the best trial's config
# Trials are quiet: the sweep prints one progress line per trial instead (a sweep's base or
# command line can turn either back on).
QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")


def default_storage(cfg: DictConfig) -> str:
    store = Path(cfg.paths.store_dir).expanduser().resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'optuna.db'}"


def make_storage(url: str, spec: SweepSpec) -> RDBStorage:
    def storage(engine_kwargs: dict[str, Any]) -> RDBStorage:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=int(spec.heartbeat["interval"]),
            grace_period=int(spec.heartbeat["grace"]),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
        )

    if not url.startswith("sqlite:///"):
        return storage({})
    db = Path(url.removeprefix("sqlite:///"))
    with store_lock(db):  # workers starting together on a new study database create its schema once
        enable_wal(db)
        return storage({"connect_args": {"timeout": 60}})



def counted(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that use up the budget: finished, pruned, or failed by their own error (not by a killed process)."""
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        for t in trials
    )


class Surplus(Exception):
    """Ends a surplus trial (FAIL, with SURPLUS_ATTR) before it samples or trains anything."""


def changed_overrides(name: str, started: list[str], now: list[str]) -> str:
    """Why a study cannot go on under other overrides, in two short lines: only the overrides that differ (its
    whole base would be a paragraph), then what to type instead."""
    then, later = (dict(o.partition("=")[::2] for o in overrides) for overrides in (started, now))  # the last one wins

    def differing(these: dict[str, str], those: dict[str, str]) -> str:
        changed = [f"{key}={value}" for key, value in these.items() if those.get(key) != value]
        return textwrap.shorten(" ".join(changed) or "fewer overrides", 50, placeholder=" …")

    return (f"study {name!r} was started with {differing(then, later)}, not {differing(later, then)}\n"
            f"  rerun it with the overrides it was started with, or start a new study with --name NEW")


def open_study(spec: SweepSpec, storage: RDBStorage, create: bool, worker: int = 0) -> optuna.Study:
    study = optuna.create_study(
        study_name=spec.name, storage=storage, pruner=make_pruner(spec), direction=spec.direction, load_if_exists=True,
    )
    study.sampler = make_sampler(spec, offset=1000 * worker + len(study.trials))
    started_with = study.user_attrs.get(BASE_ATTR)
    if create and study.trials and started_with is not None and list(started_with) != list(spec.base):
        raise ConfigError(changed_overrides(spec.name, list(started_with), list(spec.base)))
    if create and study.metric_names is None:
        study.set_metric_names([spec.metric])  # optuna-dashboard shows "val/acc", not "Objective 0"
    if create:
        requeue_interrupted(study)
    if create and not study.trials:
        study.set_user_attr(BASE_ATTR, list(spec.base))
        for params in spec.enqueue:
            study.enqueue_trial(dict(params))
        if spec.balance:  # round-robin: every choice gets the same number of trials
            choices = next(p.choices for p in spec.space if p.key == spec.balance)
            for i in range(spec.n_trials - len(spec.enqueue)):
                study.enqueue_trial({spec.balance: choices[i % len(choices)]})
    return study


def requeue_interrupted(study: optuna.Study) -> None:
    """Trials cut short by Ctrl-C / SIGTERM (failed, but not by their own error) run again with the same parameters.

    Stale trials of SIGKILLed processes are re-queued by RetryHeartbeatStaleTrialCallback; this covers the rest,
    so a balanced sweep keeps every model's share after an interruption.
    """
    trials = ran(study.get_trials(deepcopy=False))
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials} | {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.state == TrialState.FAIL and "error" not in trial.user_attrs and trial.number not in retried:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


class Objective:
    """One trial: sample, compose, train on the training split, score on validation; never touches the test set."""

    def __init__(self, spec: SweepSpec, parent_run_id: str, client: MlflowClient) -> None:
        self.spec, self.parent_run_id, self.client = spec, parent_run_id, client
        self.settled: set[int] = set()  # failed trials whose MLflow run is known to be closed

    def _trial_run(self, trial_number: int) -> str | None:
        runs = self.client.search_runs(
            [self.client.get_run(self.parent_run_id).info.experiment_id],
            filter_string=f"tags.`{Tag.SWEEP_STUDY}` = '{self.spec.name}' and tags.`{Tag.SWEEP_TRIAL}` = '{trial_number}'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def surplus(self, trial: optuna.Trial) -> bool:
        """Whether the trials created before this one spend the budget (finished ones, and those still running): workers
        that each saw a slot left at the same moment created one trial too many; the later one gives way. Trial numbers
        are handed out by the storage, one at a time, so exactly one of them goes on."""
        earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
        return counted(earlier) + sum(t.state == TrialState.RUNNING for t in earlier) >= self.spec.n_trials

    def __call__(self, trial: optuna.Trial) -> float:
        if self.surplus(trial):
            trial.set_user_attr(SURPLUS_ATTR, "the budget was spent by trials other workers had started")
            raise Surplus()
        params = {p.key: p.suggest(trial) for p in self.spec.space}
        searched = self.spec.overrides(params)[len(self.spec.base):]
        tags = runs.child_tags(self.parent_run_id) | {
            Tag.SWEEP_STUDY: self.spec.name, Tag.SWEEP_TRIAL: str(trial.number), Tag.SWEEP_ROLE: "trial",
            # named by what the sweep chose, not by the overrides the harness adds to run it quietly
            Tag.RUN_NAME: run_name(f"{self.spec.name} #{trial.number}", searched),
            Tag.OVERRIDES: " ".join(self.spec.overrides(params))[:5000],
        }
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.spec.metric)
        scores: list[float] = []

        def score(client: MlflowClient, run_id: str) -> None:
            """Inside the run, once fit is over: under DDP the pruning callback only stops the trainer and
            check_pruned raises TrialPruned here; a metric that is missing or not finite fails the trial."""
            pruning.check_pruned()
            history = [m.value for m in client.get_metric_history(run_id, self.spec.metric)]
            if not history or not all(math.isfinite(v) for v in history):
                raise RunFailed(f"{self.spec.metric} missing or not finite")
            scores.append(max(history) if self.spec.direction == "maximize" else min(history))

        try:
            cfg = compose_config([*QUIET, *self.spec.overrides(params), "evaluate_test=false"])
            result = train(cfg, callbacks=[pruning], tags=tags, after_fit=score, end_tags=trial_state)
        except optuna.TrialPruned:
            run_id = self._trial_run(trial.number)
            if run_id:
                trial.set_user_attr(TRIAL_RUN_ATTR, run_id)
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:1000])
            raise  # the progress line reports it
        assert result is not None
        trial.set_user_attr(TRIAL_RUN_ATTR, result.run_id)
        return scores[0]


def trial_state(error: BaseException | None) -> dict[str, str]:
    """The Optuna state a trial's run ends with, as its `sweep.state` tag: a pruned trial is stopped on purpose
    (its run KILLED), a failed one FAILED."""
    state = "COMPLETE" if error is None else "PRUNED" if isinstance(error, optuna.TrialPruned) else "FAIL"
    return {Tag.SWEEP_STATE: state}


def close_killed_trial_runs(study: optuna.Study, objective: "Objective") -> None:
    """A SIGKILLed trial leaves its MLflow run RUNNING; once its heartbeat went stale and the trial is failed,
    mark the run KILLED. Called whenever stale trials may have been failed: in every worker's loop, and when
    the sweep ends."""
    for trial in ran(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))):
        if "error" in trial.user_attrs or trial.number in objective.settled:
            continue
        run_id = objective._trial_run(trial.number)
        if run_id and objective.client.get_run(run_id).info.status == "RUNNING":  # stopped from outside, as by Ctrl-C
            runs.close(objective.client, run_id, KeyboardInterrupt(), {Tag.SWEEP_STATE: "FAIL"})
        objective.settled.add(trial.number)


def work(spec: SweepSpec, storage_url: str, parent_run_id: str, worker: int = 0) -> None:
    """One worker: take trials until the study's budget is spent, waiting out trials others still run."""
    client = make_client(compose_config([]))
    study = open_study(spec, make_storage(storage_url, spec), create=False, worker=worker)
    objective = Objective(spec, parent_run_id, client)
    progress = progress_callback(spec, counted)
    while True:
        fail_stale_trials(study)
        close_killed_trial_runs(study, objective)
        trials = study.get_trials(deepcopy=False)
        done = counted(trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if done >= spec.n_trials:
            return
        if done + running >= spec.n_trials:  # the rest is in flight elsewhere (or stale, to be failed and retried)
            time.sleep(min(2.0, float(spec.heartbeat["interval"])))
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[progress], gc_after_trial=True)


def show_trials(client: MlflowClient, spec: SweepSpec, parent_run_id: str) -> str:
    """Save the view of the sweep's trials in MLflow's UI (best first, the searched keys as columns and on a
    parallel-coordinates chart against the sweep's metric), as the parent is opened; the link opens it on that chart."""
    return views.show_children(client, parent_run_id, (spec.metric,), tuple(p.key for p in spec.space), charts=True)


def closing_tags(client: MlflowClient, parent_run_id: str, study: optuna.Study) -> dict[str, str]:
    """How many trials ended how and the best one, for the parent's tags as it closes; the best trial is marked
    and its numbers copied to the parent, so sweeps compare side by side in MLflow's runs table."""
    trials = ran(study.get_trials(deepcopy=False))
    tags = {f"trials.{state.name.lower()}": str(sum(t.state == state for t in trials)) for state in TrialState}
    if any(t.state == TrialState.COMPLETE for t in trials):
        best = study.best_trial
        tags |= {Tag.BEST_TRIAL: str(best.number), "best_value": f"{best.value:.6f}", "best_params": str(best.params)}
        if TRIAL_RUN_ATTR in best.user_attrs:
            tags[Tag.BEST_RUN_ID] = best.user_attrs[TRIAL_RUN_ATTR]
            client.set_tag(best.user_attrs[TRIAL_RUN_ATTR], Tag.SWEEP_BEST, "true")
            metrics = client.get_run(best.user_attrs[TRIAL_RUN_ATTR]).data.metrics
            done = sum(t.state.is_finished() for t in trials)  # step: trials finished when this was the best
            client.log_batch(parent_run_id, metrics=[MlflowMetric(k, v, int(time.time() * 1000), done) for k, v in sorted(metrics.items())])
    return tags


def succeeded(study: optuna.Study) -> bool:
    """A sweep succeeded when at least one trial completed; all failed or pruned leaves nothing to pick."""
    return any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def _ended(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"


class SubmittedWorker:
    """A worker submitted through submitit (`--launcher NAME`), waited for and stopped as a process is."""

    def __init__(self, job: Any, local: bool) -> None:
        self.job, self.local = job, local

    def wait(self) -> int:
        try:
            return int(self.job.result() or 0)  # the worker's exit code
        except Exception:  # noqa: BLE001 - submitit's: the job died (killed, out of memory, its node lost)
            return -signal.SIGKILL if self.job.state in ("CANCELLED", "INTERRUPTED", "NODE_FAIL", "OUT_OF_MEMORY") else 1

    def terminate(self) -> None:
        from digits_bench.launcher import stop_local_jobs

        stop_local_jobs() if self.local else self.job.cancel(check=False)  # SIGTERM: its trial's run ends KILLED


def submitted_worker(spec: SweepSpec, index: int) -> int:
    """A worker submitted through a launcher, in the job's own process: `work` on the study and under the parent handed
    down (the environment, not the pickled call, carries the storage URL: it may hold a password). A SIGTERM stops it
    as it stops any command, its trial's run KILLED. Returns its exit code."""
    from digits_bench.entry import command
    from digits_bench.signals import interrupts
    from digits_bench.sweep import QUIET_LOGGERS

    @command(quiet=QUIET_LOGGERS)
    def run() -> None:
        with interrupts():
            work(spec, inherited("storage") or "", inherited("parent") or "", index)

    return run()


def start_workers(spec: SweepSpec, worker_args: list[str], workers: int, launcher: str | None,
                  launcher_overrides: list[str]) -> list[Any]:
    """`workers` workers on the study: processes of this machine, or jobs through `launcher`'s preset."""
    if launcher is None:
        command = [sys.executable, "-m", "digits_bench.sweep", *worker_args]
        return [subprocess.Popen([*command, "--worker-index", str(i)]) for i in range(workers)]
    from digits_bench.launcher import executor

    submitter = executor(launcher, "digits_bench-sweep", launcher_overrides)
    jobs = submitter.map_array(submitted_worker, [spec] * workers, list(range(workers)))  # one job array
    folder = Path(str(submitter.folder)).parent
    print(f"sweep: {workers} worker(s) submitted through submitit ({launcher}): jobs {', '.join(j.job_id for j in jobs)}; "
          f"their output: {folder}/<job id>/", flush=True)
    return [SubmittedWorker(job, local=launcher == "local") for job in jobs]


def run_workers(spec: SweepSpec, study: optuna.Study, parent: str, storage_url: str, worker_args: list[str], workers: int,
                launcher: str | None = None, launcher_overrides: list[str] | None = None) -> None:
    """Run `workers` workers (`python -m digits_bench.sweep <worker_args>`) on the study, as processes here or as jobs
    through `launcher`, and wait for them; a stop is passed on, so no worker outlives the sweep. A worker lost before
    the budget was spent fails the sweep."""
    # their trials nest under this sweep's parent, in this study (not on their command lines: it may hold a password)
    with passing_down(parent=parent, storage=storage_url):
        processes = start_workers(spec, worker_args, workers, launcher, launcher_overrides or [])
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        raise
    lost = [f"worker {i} {_ended(code)}" for i, code in enumerate(codes) if code]
    if lost and counted(study.get_trials(deepcopy=False)) < spec.n_trials:
        raise RunFailed(f"sweep {spec.name!r}: {', '.join(lost)} before the budget was spent; "
                        "run the same command again to continue the study")
    if lost:  # the others took over its trial: the study is whole
        log.warning("sweep %s: %s; the other workers ran its trials, the budget is complete", spec.name, ", ".join(lost))


def run_sweep(spec: SweepSpec, storage_url: str | None = None, workers: int = 1, worker_args: list[str] | None = None,
              launcher: str | None = None, launcher_overrides: list[str] | None = None) -> optuna.Study:
    """Create or resume the study, run `workers` workers on it (here, or submitted through `launcher`), and close the
    parent run.

    More than one worker, or any through a launcher, are processes of their own: `worker_args` is the command line that
    loads this same sweep in them."""
    if (workers > 1 or launcher) and worker_args is None:
        raise ValueError("run_sweep: workers > 1 need worker_args, the sweep command line their processes load")
    cfg = compose_config([])
    storage_url = storage_url or default_storage(cfg)
    client = make_client(cfg)
    study = open_study(spec, make_storage(storage_url, spec), create=True)
    tags = {Tag.SWEEP_STUDY: spec.name, Tag.SWEEP_ROLE: "parent", "sweep.storage": storage_url, "sweep.file": str(spec.path),
            "sweep.base": " ".join(spec.base)[:5000]}  # the file's base and the command line's overrides
    with runs.parent(client, cfg, f"sweep:{spec.name}", tags, reopen_id=study.user_attrs.get(PARENT_ATTR)) as group:
        parent = group.run_id
        group.closing.append(lambda: closing_tags(client, parent, study))
        if group.created:  # once per study: a rerun reopens the same parent
            client.log_param(parent, "n_trials", spec.n_trials)
            client.log_text(parent, spec.path.read_text() if spec.path else "", "sweep.yaml")
            study.set_user_attr(PARENT_ATTR, parent)
        show_trials(client, spec, parent)
        if workers <= 1 and launcher is None:
            work(spec, storage_url, parent)
        else:
            run_workers(spec, study, parent, storage_url, worker_args or [], workers, launcher, launcher_overrides)
        fail_stale_trials(study)
        close_killed_trial_runs(study, Objective(spec, parent, client))
        if not succeeded(study):
            group.failure = RunFailed(f"sweep {spec.name!r}: no trial completed")
    return study
