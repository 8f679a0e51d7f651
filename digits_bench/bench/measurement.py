"""One (model, pipeline) measurement in its own process, so peak memory is its own. Prints one JSON line:
the seconds of each timed epoch (warm-up dropped), scaled to the full epoch."""
from __future__ import annotations

import argparse
import json
import resource
import sys

import torch

from digits_bench.bench.pipelines import PIPELINES, bench_config
from digits_bench.config.validation import split_sizes
from digits_bench.entry import command

# On a GPU the tutorial pipeline is ~10x slower than the rest: it times this many images, 2 epochs, and
# its epoch time is scaled to the full epoch, so the whole bench ends in minutes.
TUTORIAL_GPU_IMAGES = 10_000


def measure_here(model: str, pipeline: str, subset: int | None, epochs: int, overrides: list[str]) -> dict:
    """Time one pipeline in this process: its timed epochs (warm-up dropped, scaled to the full epoch) and peak memory."""
    full = bench_config(model, subset, epochs, overrides)
    images = split_sizes(full.data)["train"]
    timed_images, cfg = images, full
    if pipeline == "tutorial" and torch.cuda.is_available() and full.trainer.accelerator != "cpu":
        timed_images, epochs = min(images, TUTORIAL_GPU_IMAGES), min(epochs, 2)
        cfg = bench_config(model, timed_images, epochs, overrides)
    times = PIPELINES[pipeline](cfg, epochs)
    measured = times[1:] if len(times) > 1 else times  # the first epoch warms up caches, allocators, kernels
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "pipeline": pipeline, "epochs_s": [t * images / timed_images for t in measured],
            "peak_mem_mib": peak, "train_images": images, "timed_images": timed_images, "all_epochs_s": times}


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), required=True)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    print(json.dumps(measure_here(args.model, args.pipeline, args.subset, args.epochs, args.overrides)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
