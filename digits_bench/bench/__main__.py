"""`python -m digits_bench.bench`: epoch time, images/s and peak memory of (a) the tutorial pipeline,
(b) a plain loop over on-device tensors, (c) the harness and (d) the fastest plain PyTorch loop (CUDA
graphs on a GPU), per model, each in its own process, measured in one run on one machine; then the start-up
rows (a tiny run's overhead, a refusal's wall time); writes results/bench.{md,csv} and bench-startup.csv with
the device, versions and commit."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from digits_bench.bench.measurement import TUTORIAL_GPU_IMAGES
from digits_bench.bench.startup import startup
from digits_bench.entry import command
from digits_bench.config import compose_config, validate
from digits_bench.errors import RunFailed
from digits_bench.tracking import device_name, git_commit

MODELS = ("mlp_128_64", "lenet", "vgg_bn")
ORDER = ("tutorial", "device_loop", "harness", "limit")


def measure(model: str, pipeline: str, subset: int | None, epochs: int, overrides: list[str], store: str) -> dict:
    command = [sys.executable, "-m", "digits_bench.bench.measurement", "--model", model, "--pipeline", pipeline, "--epochs", str(epochs)]
    command += ["--subset", str(subset)] if subset else []
    command += overrides + (["trainer.enable_progress_bar=true"] if pipeline == "harness" else [])
    env = os.environ | {"DIGITS_BENCH_STORE": store}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        raise RunFailed(f"{model}/{pipeline} failed (exit {done.returncode}); its output is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> pd.DataFrame:
    """One row per (model, pipeline) over its repeats: the fastest timed epoch (timeit's convention: the one
    least disturbed by other load; every pipeline gets the same rule), the median, and peak memory."""
    epochs = pd.DataFrame(runs).explode("epochs_s").astype({"epochs_s": float})
    frame = epochs.groupby(["model", "pipeline"], sort=False).agg(
        epoch_s=("epochs_s", "min"), epoch_median_s=("epochs_s", "median"), epochs_timed=("epochs_s", "size"),
        peak_mem_mib=("peak_mem_mib", "max"), train_images=("train_images", "first"), timed_images=("timed_images", "first"),
    ).reset_index()
    frame.insert(3, "images_per_s", frame["train_images"] / frame["epoch_s"])
    return frame


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model: how many times faster the harness is than (a), and its slowdown against (b) and (d)."""
    wide = frame.pivot(index="model", columns="pipeline", values="epoch_s")
    columns = {
        "harness speed-up vs tutorial (a/c)": ("tutorial", "harness"),
        "harness time vs device loop (c/b)": ("harness", "device_loop"),
        "harness time vs limit (c/d)": ("harness", "limit"),
    }
    return pd.DataFrame(
        {name: wide[top] / wide[bottom] for name, (top, bottom) in columns.items() if {top, bottom} <= set(wide)}, index=wide.index
    )


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.bench", description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--pipelines", nargs="+", default=list(ORDER), choices=ORDER, help="a subset, for a quick look")
    parser.add_argument("--subset", type=int, default=None, help="training images per epoch (default: all 55k on CUDA, 20k on CPU)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each pipeline, interleaved with the others")
    parser.add_argument("--startup-repeats", type=int, default=3,
                        help="timed tiny runs and refusals for the start-up rows (0: none)")
    parser.add_argument("--out", default="results")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for all pipelines, e.g. trainer=gpu")
    args = parser.parse_intermixed_args(argv)
    for model in args.models:  # a bad model or override fails here, in one line, before minutes of measuring
        validate(compose_config([f"model={model}", *args.overrides]))
    subset = args.subset or (None if torch.cuda.is_available() else 20_000)
    runs = []
    with tempfile.TemporaryDirectory() as store:
        for model in args.models:
            for _ in range(args.repeats):  # interleaved, so a slow spell of a shared machine falls on every pipeline
                for pipeline in args.pipelines:
                    run = measure(model, pipeline, subset, args.epochs, args.overrides, store)
                    print(f"{model:12s} {pipeline:12s} " + " ".join(f"{t:.3f}" for t in run["epochs_s"]) + " s/epoch", flush=True)
                    runs.append(run)
        started = startup(store, args.startup_repeats) if args.startup_repeats > 0 else None
    frame = summarise(runs)
    environment = {
        "device": device_name("auto"), "math_threads": torch.get_num_threads(), "torch": torch.__version__, "cuda": str(torch.version.cuda), "python": platform.python_version(),
        "commit": git_commit(), "date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "train_images_per_epoch": subset or "55000",
        "epochs": f"{args.epochs} per run, the first a warm-up; {args.repeats} runs per pipeline, interleaved; epoch_s is the fastest timed epoch, the median beside it",
    }
    for key, value in environment.items():
        frame[key] = value
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "bench.csv", index=False)
    table = frame[["model", "pipeline", "epoch_s", "epoch_median_s", "images_per_s", "peak_mem_mib"]].round(
        {"epoch_s": 3, "epoch_median_s": 3, "images_per_s": 0, "peak_mem_mib": 0})
    summary = ratios(frame).round(2)
    text = (
        "# digits_bench speed benchmark (`make bench`)\n\n"
        + "\n".join(f"- {k}: {v}" for k, v in environment.items())
        + "\n- pipelines: (a) `tutorial` torchvision MNIST + DataLoader(ToTensor, Normalize), plain loop; "
        "(b) `device_loop` plain loop over uint8 tensors on the device; (c) `harness` the CLI training path "
        "(Lightning, MLflow, progress bar on); (d) `limit` the fastest plain PyTorch loop for the same model and recipe: "
        "on CUDA one CUDA graph per step (fused SGD, the run's autocast), on a CPU (no graphs) (b) with the harness's "
        "in-place preprocessing. Same model, SGD lr 0.05, batch 100; training epochs only. On a GPU (a) is timed on "
        f"{TUTORIAL_GPU_IMAGES:,} images and scaled to the full epoch.\n\n"
        + table.to_markdown(index=False) + "\n\n" + summary.to_markdown() + "\n"
    )
    if started is not None:
        started.to_csv(out / "bench-startup.csv", index=False)
        text += ("\n## Start-up (bench-startup.csv)\n\nWhat a user waits for that is not training, each command in its "
                 "own process on a store that exists already (`digits_bench/bench/startup.py`).\n\n"
                 + started.round({"fastest_s": 2, "median_s": 2}).to_markdown(index=False) + "\n")
        print(started.round(2).to_string(index=False))
    (out / "bench.md").write_text(text)
    print(summary.to_string())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
