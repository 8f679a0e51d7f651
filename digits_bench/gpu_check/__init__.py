"""`python -m digits_bench.gpu_check` (`make gpu-check`): one prepared command that proves the GPU path.

On a machine with one CUDA GPU it runs, in order, writing what it has measured after every step (a run cut
off by the machine's time limit still leaves its numbers):
1. the CUDA tests (tests/test_cuda.py, tests/test_graph_step.py);
2. the speedrun over 5 seeds with CUDA graphs on, then the same seeds with `cuda_graphs=false`;
3. `bench` for lenet and vgg_bn, the harness and the limit pipelines;
4. one `best` seed cut to a few epochs, for its time per epoch;
and prints one table: each target, what was measured, pass or fail. Results: results/gpu-check-<device>-<date>.{md,csv}
with the device, driver, versions and commit; the runs are in the MLflow store as usual (`make report` rows).

Without CUDA it says so in one line and exits 2.
"""
from __future__ import annotations

import datetime as dt
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from digits_bench.errors import ConfigError
from digits_bench.names import Metric

SEEDS = 5


@dataclass(frozen=True)
class Target:
    """A number the GPU path must reach: `value` measured against `limit` (`at_most` or at least)."""

    name: str
    limit: float
    at_most: bool = True
    unit: str = "s"


TARGETS = {
    "speedrun_train_s": Target("speedrun: training time, mean of 5 seeds", 0.5),
    "speedrun_min_test_acc": Target("speedrun: lowest test accuracy of 5 seeds", 0.99, at_most=False, unit=""),
    "graph_speedup": Target("speedrun: graphs off / graphs on, training time", 1.0, at_most=False, unit="x"),
    "graph_acc_gap": Target("speedrun: |mean test acc graphs on - off| within 2 std", 1.0, unit="std"),
    "lenet_harness_vs_limit": Target("bench lenet: harness / limit epoch time", 1.15, unit="x"),
    "vgg_bn_harness_vs_limit": Target("bench vgg_bn: harness / limit epoch time", 1.15, unit="x"),
    "lenet_epoch_s": Target("bench lenet: harness epoch at batch 100", 0.4),
    "vgg_bn_epoch_s": Target("bench vgg_bn: harness epoch at batch 100", 0.6),
    "best_epoch_s": Target("best: time per epoch (one seed, a few epochs)", 0.8),
}


@dataclass
class Row:
    key: str
    target: str
    limit: str
    measured: float | None
    verdict: str  # pass, FAIL, or not measured


def verdicts(measured: dict[str, float]) -> list[Row]:
    """Each target against what was measured so far (a missing number is `not measured`, never a pass)."""
    rows = []
    for key, target in TARGETS.items():
        value = measured.get(key)
        limit = f"{'<=' if target.at_most else '>='} {target.limit:g}{target.unit and ' ' + target.unit}"
        if value is None:
            verdict = "not measured"
        else:
            verdict = "pass" if (value <= target.limit if target.at_most else value >= target.limit) else "FAIL"
        rows.append(Row(key, target.name, limit, value, verdict))
    return rows


def render(rows: list[Row], environment: dict[str, str], details: dict[str, str]) -> str:
    """results/gpu-check-*.md: the environment, the targets table, then what each step measured."""
    lines = ["# digits_bench GPU check (`make gpu-check`)", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    lines += ["", "| target | limit | measured | verdict |", "|---|---|---:|---|"]
    lines += [f"| {r.target} | {r.limit} | {'—' if r.measured is None else f'{r.measured:.4g}'} | {r.verdict} |" for r in rows]
    for title, text in details.items():
        lines += ["", f"## {title}", "", text]
    return "\n".join(lines) + "\n"


def speedrun_numbers(on: list[dict[str, float]], off: list[dict[str, float]]) -> dict[str, float]:
    """From each seed's metrics (graphs on, graphs off): the speedrun targets' numbers."""
    measured: dict[str, float] = {}
    if on:
        measured["speedrun_train_s"] = statistics.fmean(m[Metric.TRAIN_S] for m in on)
        measured["speedrun_min_test_acc"] = min(m[Metric.TEST_ACC] for m in on)
    if on and off:
        measured["graph_speedup"] = statistics.fmean(m[Metric.TRAIN_S] for m in off) / measured["speedrun_train_s"]
        accs = [m[Metric.TEST_ACC] for m in on + off]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        gap = abs(statistics.fmean(m[Metric.TEST_ACC] for m in on) - statistics.fmean(m[Metric.TEST_ACC] for m in off))
        measured["graph_acc_gap"] = gap / (2 * spread) if spread else (0.0 if gap == 0 else float("inf"))
    return measured


def environment() -> dict[str, str]:
    import torch

    from digits_bench.tracking import device_name, git_commit

    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True)
    return {"device": device_name("gpu"), "driver": driver.stdout.strip() or "?", "torch": torch.__version__,
            "cuda": str(torch.version.cuda), "python": platform.python_version(), "commit": git_commit(),
            "date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}"}


class Results:
    """What has been measured so far, rewritten to results/ after every step."""

    def __init__(self, out: Path, env: dict[str, str]) -> None:
        device = re.sub(r"[^A-Za-z0-9]+", "-", env["device"]).strip("-").lower()
        self.md = out / f"gpu-check-{device}-{env['date'][:10]}.md"
        self.csv = self.md.with_suffix(".csv")
        self.env, self.measured, self.details = env, {}, {}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, title: str, numbers: dict[str, float], detail: str) -> None:
        import pandas as pd

        self.measured |= numbers
        self.details[title] = detail
        rows = verdicts(self.measured)
        self.md.write_text(render(rows, self.env, self.details))
        pd.DataFrame([asdict(r) | self.env for r in rows]).to_csv(self.csv, index=False)


def run_tests() -> tuple[dict[str, float], str]:
    import importlib.util

    if importlib.util.find_spec("pytest") is None:  # an offline node's kit carries what runs, not the test tools
        return {}, "pytest is not installed here: the CUDA tests were skipped (pip install pytest, then run again)"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py",
                           "tests/test_graph_step.py"], capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {}, f"pytest tests/test_cuda.py tests/test_graph_step.py: exit {done.returncode}, {summary}"


def speedrun(seeds: int) -> tuple[dict[str, float], str]:
    from digits_bench.compare import Recipe, run_compare
    from digits_bench.config import compose_config
    from digits_bench.tracking import make_client

    client = make_client(compose_config([]))
    per_mode = {}
    for mode, extra in (("graphs on", []), ("graphs off", ["cuda_graphs=false"])):
        run_ids = run_compare(Recipe(f"speedrun ({mode})", ["experiment=speedrun", *extra]), list(range(seeds)))
        per_mode[mode] = [client.get_run(run_id).data.metrics for run_id in run_ids]
    lines = ["| mode | seed | train s | warm-up s | test acc |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {mode} | {seed} | {m[Metric.TRAIN_S]:.3f} | {m.get(Metric.WARMUP_S, float('nan')):.3f} | {m[Metric.TEST_ACC]:.4f} |"
              for mode, metrics in per_mode.items() for seed, m in enumerate(metrics)]
    return speedrun_numbers(per_mode["graphs on"], per_mode["graphs off"]), "\n".join(lines)


def bench() -> tuple[dict[str, float], str]:
    import tempfile

    from digits_bench.bench.__main__ import measure, ratios, summarise

    runs = []
    with tempfile.TemporaryDirectory() as store:
        for model in ("lenet", "vgg_bn"):
            for pipeline in ("harness", "limit"):
                runs.append(measure(model, pipeline, None, 3, ["trainer=gpu"], store))
    frame = summarise(runs)
    wide = frame.pivot(index="model", columns="pipeline", values="epoch_s")
    numbers = {f"{model}_harness_vs_limit": wide.loc[model, "harness"] / wide.loc[model, "limit"] for model in wide.index}
    numbers |= {f"{model}_epoch_s": wide.loc[model, "harness"] for model in wide.index}
    return numbers, frame[["model", "pipeline", "epoch_s", "epoch_median_s", "peak_mem_mib"]].to_markdown(index=False) + \
        "\n\n" + ratios(frame).round(3).to_markdown()


def best(epochs: int = 4) -> tuple[dict[str, float], str]:
    from digits_bench.config import compose_config
    from digits_bench.training.run import train

    result = train(compose_config(["experiment=best", f"trainer.max_epochs={epochs}", "seed=0"]))
    assert result is not None
    epoch_s = (result.metrics[Metric.TRAIN_S] - result.metrics.get(Metric.WARMUP_S, 0.0)) / epochs
    return {"best_epoch_s": epoch_s}, f"run {result.run_id}: {epochs} epochs, {epoch_s:.3f} s per epoch, test acc {result.metrics['test/acc']:.4f}"


STEPS: dict[str, Callable[[], tuple[dict[str, float], str]]] = {
    "CUDA tests": run_tests, "speedrun, graphs on and off": lambda: speedrun(SEEDS), "bench: harness vs limit": bench,
    "best, one seed": best,
}


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here; run it on the GPU machine "
                          "(there: make gpu-check, or . .whl/install.sh && make gpu-check on an offline node)")
