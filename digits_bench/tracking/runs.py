"""The lifecycle of every MLflow run the harness makes: opened, attached to and closed here, and only here.

A run (a training run, which a sweep trial, a compare seed or a multirun job also is, or an
ensemble's) and a parent grouping runs (a sweep's trials, a compare's seeds, a multirun's jobs)
are each a context manager, `run` and `parent`: closed exactly once, with the status
`digits_bench.errors.outcome` gives for how the block ended: FINISHED, FAILED or KILLED, never
left RUNNING and never rewritten. The processes this one starts (DDP ranks that re-run the entry
point, multirun jobs a launcher plugin runs elsewhere) find what they join through
`tracking.handoff`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping

from mlflow.entities import Dataset, DatasetInput, InputTag, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from digits_bench.config.fingerprint import flatten, training_keys
from digits_bench.config.stored import read_stored
from digits_bench.redaction import redacted, redacted_values
from digits_bench.config.validation import split_sizes
from digits_bench.errors import FINISHED, ConfigError, outcome
from digits_bench.names import Tag
from digits_bench import signals
from digits_bench.tracking.handoff import inherited, passing_down, publish_to_ranks, run_of_rank_zero, job_rank
from digits_bench.tracking.store import (STORE_ERRORS, artifact_root, environment_tags, experiment_id, make_client, store_exists,
                                         store_error, tracking_uri)

log = logging.getLogger(__name__)
EndTags = Callable[[BaseException | None], Mapping[str, str]]  # the tags a run ends with, by how it ended


def create(client: MlflowClient, cfg: DictConfig, tags: Mapping[str, str], experiment: str | None = None) -> str:
    """A new RUNNING run in `experiment` (default: the config's), nested under the parent handed down, if any."""
    parent_id = inherited("parent")
    nesting = child_tags(parent_id) if parent_id else {}
    found = experiment_id(client, experiment or cfg.tracking.experiment, artifact_root(cfg))
    return client.create_run(found, tags=redacted_values(nesting | dict(tags))).info.run_id


def reopen(client: MlflowClient, run_id: str) -> None:
    """Mark an ended run RUNNING again, to continue it (`resume=`, a sweep run again)."""
    client.update_run(run_id, status="RUNNING")


def close(client: MlflowClient, run_id: str, error: BaseException | None, tags: Mapping[str, str] | None = None) -> None:
    """Tag the run and end it with the status `outcome(error)` gives (None: it succeeded), after every queued metric.

    A store that fails now (a full disk) must not hide the error that ended the run: only a
    run that succeeded turns it into an error of its own.
    """
    status = outcome(error).status
    try:
        for key, value in redacted_values(tags or {}).items():
            client.set_tag(run_id, key, value)
        client._tracking_client.store.flush_async_logging()  # a no-op for synchronous logging
        client.set_terminated(run_id, status)
    except STORE_ERRORS as err:
        if error is None:
            raise store_error(client.tracking_uri, err) from None
        log.warning("could not mark run %s %s: %s", run_id, status, (str(err).splitlines() or [type(err).__name__])[0])


@contextmanager
def run(cfg: DictConfig, tags: Mapping[str, str], experiment: str | None = None,
        end_tags: EndTags | None = None) -> Iterator[tuple[MlflowClient, str]]:
    """One run that is not a group: a training run or an ensemble's. Created, or `cfg.resume`'s reopened; in a DDP
    rank > 0, the run its launcher handed down (or, under torchrun or srun, rank 0 published), joined and left to rank 0
    to close. Meanwhile SIGINT and
    SIGTERM raise KeyboardInterrupt; on the way out the run is tagged with `end_tags(error)` (a sweep trial's
    state) and closed by how the block ended."""
    rank = job_rank()
    attached = inherited("run") or (run_of_rank_zero() if rank else None)
    if attached:
        yield make_client(cfg), attached
        return
    run_id = ""
    try:
        client, run_id = _open(cfg, tags, experiment)
    finally:
        if rank == 0:  # the other ranks of a torchrun or srun job wait for it, on every node ("": none, they stop)
            publish_to_ranks(run_id)
    error: BaseException | None = None
    try:
        with passing_down(run=run_id), signals.interrupts():
            yield client, run_id
    except BaseException as err:
        error = err
        raise
    finally:
        close(client, run_id, error, end_tags(error) if end_tags else None)


@dataclass
class Group:
    """A parent run while its block runs. Its owner may set what it ends with: `end_tags`, a `failure` that ends it
    FAILED though nothing was raised (a sweep with no completed trial), and `closing` steps (summaries of its
    children) that run before it is closed, whose failure is a warning: the status matters more."""
    client: MlflowClient
    run_id: str
    created: bool  # False: an earlier parent reopened (a sweep run again)
    end_tags: dict[str, str] = field(default_factory=dict)
    failure: BaseException | None = None
    closing: list[Callable[[], Mapping[str, str] | None]] = field(default_factory=list)


@contextmanager
def parent(client: MlflowClient, cfg: DictConfig, name: str, tags: Mapping[str, str], reopen_id: str | None = None,
           hand_down: bool = False) -> Iterator[Group]:
    """A parent that groups runs (a sweep's trials, a compare's seeds, a multirun's jobs), named after what launched
    it: `reopen_id`'s run reopened when it still exists, else a new one. With `hand_down` the runs that processes
    started inside the block create nest under it. Closed as the block ends, by how it ended."""
    group = _open_group(client, cfg, name, tags, reopen_id)
    error: BaseException | None = None
    try:
        with passing_down(parent=group.run_id) if hand_down else nullcontext():
            yield group
    except BaseException as err:
        error = err
        raise
    finally:
        _close_group(group, error or group.failure)


def _open_group(client: MlflowClient, cfg: DictConfig, name: str, tags: Mapping[str, str], reopen_id: str | None) -> Group:
    if reopen_id is not None:
        try:
            reopen(client, reopen_id)
            return Group(client, reopen_id, created=False)
        except MlflowException:  # the MLflow store was wiped or changed: start a new parent
            log.info("parent run %s not found; creating a new one", reopen_id)
    run_id = create(client, cfg, environment_tags("auto") | {Tag.RUN_NAME: name} | dict(tags))
    return Group(client, run_id, created=True)


def _close_group(group: Group, error: BaseException | None) -> None:
    tags = dict(group.end_tags)
    for step in group.closing:
        try:
            tags |= step() or {}
        except STORE_ERRORS as err:
            log.warning("parent run %s: could not summarise its runs: %s", group.run_id, (str(err).splitlines() or [""])[0][:200])
    close(group.client, group.run_id, error, tags)


def _open(cfg: DictConfig, tags: Mapping[str, str], experiment: str | None) -> tuple[MlflowClient, str]:
    """Create a run, or reopen `cfg.resume`'s; a store that cannot be written is one clear error."""
    try:
        client = make_client(cfg)
        if cfg.get("resume"):
            reopen(client, str(cfg.resume))
            return client, str(cfg.resume)
        return client, create(client, cfg, tags, experiment)
    except STORE_ERRORS as err:
        raise store_error(tracking_uri(cfg), err) from None


def child_tags(parent_run_id: str) -> dict[str, str]:
    """The tags that nest a run under its parent, as MLflow's UI shows them."""
    return {Tag.PARENT_RUN_ID: parent_run_id}


def children(client: MlflowClient, parent_run_id: str) -> list[Any]:
    """The parent's child runs, of any status."""
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{Tag.PARENT_RUN_ID}` = '{parent_run_id}'")


def summarise_children(client: MlflowClient, parent_run_id: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """Give a parent what its FINISHED children share and how they did, so it reads as a row of its own in MLflow's
    runs table: the params all of them have alike, and for each of `metrics` their mean, sample std and best
    (`test/acc_mean`, `test/acc_std`, `test/acc_best`), returned."""
    import statistics

    from mlflow.entities import Metric as MlflowMetric

    done = [r for r in children(client, parent_run_id) if r.info.status == FINISHED]
    if not done:
        return {}
    shared = sorted(set.intersection(*(set(r.data.params.items()) for r in done)))
    summary: dict[str, float] = {}
    for key in metrics:
        values = [r.data.metrics[key] for r in done if key in r.data.metrics]
        if values:
            summary |= {f"{key}_mean": statistics.fmean(values), f"{key}_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        f"{key}_best": max(values)}
    now = int(time.time() * 1000)
    client.log_batch(parent_run_id, metrics=[MlflowMetric(k, v, now, 0) for k, v in summary.items()])
    for start in range(0, len(shared), 100):
        client.log_batch(parent_run_id, params=[Param(k, v) for k, v in shared[start : start + 100]])
    return summary


def check_resumable(cfg: DictConfig, run_id: str) -> MlflowClient:
    """The run exists in the store, which exists, and is not FINISHED: checked before anything heavy is imported,
    and without creating a store to look in."""
    missing = ConfigError(f"resume={run_id}: no such run with a config.yaml in {tracking_uri(cfg)}")
    uri = tracking_uri(cfg)
    if not store_exists(cfg):
        raise ConfigError(f"resume={run_id}: there is no MLflow store at {uri.removeprefix('sqlite:///')} "
                          "(set DIGITS_BENCH_STORE or MLFLOW_TRACKING_URI to the store the run is in)")
    try:
        client = make_client(cfg)
        status = client.get_run(run_id).info.status
    except STORE_ERRORS:
        raise missing from None
    if status == FINISHED:
        raise ConfigError(f"resume={run_id}: that run already FINISHED (trained, tested and stored); "
                          "nothing to continue — start a new run instead")
    return client


def run_config(cfg: DictConfig, run_id: str) -> DictConfig:
    """The config a run was started with (its config.yaml), to continue it exactly; a FINISHED run has nothing left."""
    missing = ConfigError(f"resume={run_id}: no such run with a config.yaml in {tracking_uri(cfg)}")
    client = check_resumable(cfg, run_id)
    try:
        text = client.download_artifacts(run_id, "config.yaml")
    except STORE_ERRORS:
        raise missing from None
    loaded = read_stored(text, f"resume={run_id}: its config.yaml")
    loaded.resume = run_id
    return loaded


def _is_noise(key: str) -> bool:
    """Hydra's `_target_` class paths, the data files' names and md5 sums: config.yaml keeps them, the params table
    need not (`data.dataset.name` says which dataset)."""
    last = key.rsplit(".", 1)[-1]
    return (last.startswith("_") and last.endswith("_")) or ".md5." in f".{key}." or key.startswith("data.dataset.files.")


def log_dataset(client: MlflowClient, run_id: str, cfg: DictConfig, context: Literal["training", "evaluation"]) -> None:
    """The data a run read, as its input in MLflow's Dataset column: for `training` the training and validation
    splits, for `evaluation` the test split (logged once it is read). Named by the dataset; its digest covers the
    files' md5 sums and this run's split sizes, since MLflow keeps one profile per name and digest."""
    spec = cfg.data.dataset
    sizes = split_sizes(cfg.data)
    if context == "training":
        profile: dict[str, Any] = {"split_sizes": {"train": sizes["train"], "val": sizes["val"]}, "val_split_seed": cfg.data.split_seed}
        if sizes["strokes"]:  # stroke-drawn digits added to training (data.strokes)
            profile["split_sizes"]["train_strokes"] = sizes["strokes"]
    else:
        profile = {"split_sizes": {"test": sizes["test"]}}
    text = json.dumps(profile, sort_keys=True)
    digest = hashlib.sha256(" ".join([*sorted(spec.md5.values()), text]).encode()).hexdigest()[:12]
    dataset = Dataset(name=spec.name, digest=digest, source_type="local", source=json.dumps({"uri": str(spec.raw_dir)}),
                      profile=text)
    for attempt in range(3):  # MLflow checks for the dataset, then inserts it: a run logging the same one meanwhile
        try:                  # makes the insert fail on its unique key (SQLite and PostgreSQL alike); then it exists
            client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])
            return
        except MlflowException as err:
            if attempt == 2 or not any(word in str(err) for word in ("UNIQUE constraint", "UniqueViolation", "duplicate key")):
                raise
            time.sleep(0.2 * (attempt + 1))


# Params a person compares runs by that change no weights (so the fingerprint leaves them out)
COMPARED_KEYS = ("seed", "trainer.accelerator", "channels_last")


def log_config(client: MlflowClient, run_id: str, cfg: DictConfig, extra: Mapping[str, Any]) -> None:
    """The params table holds what a person compares runs by (MLflow allows 6000 chars a value): every key that
    changes training (the fingerprint's), the seed and device, the recipe's claim, and `extra` (the chosen config
    options, the parameter count). Where things are stored and how progress is shown live in config.yaml only."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat = flatten(resolved)
    params = {k: v for k, v in training_keys(resolved).items() if not _is_noise(k)}
    params |= {k: v for k, v in flat.items() if k in COMPARED_KEYS or k.startswith("recipe.")}
    params |= {k: str(v) for k, v in extra.items()}
    items = [Param(k, redacted(v)[:6000]) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])
    client.log_text(run_id, redacted(OmegaConf.to_yaml(resolved)), "config.yaml")
