"""One (model, pipeline) measurement in its own process, so peak memory is its own. Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys

import torch

from digits_bench.bench.pipelines import PIPELINES, bench_config
from digits_bench.cli.entry import command

# On a GPU the tutorial pipeline is ~10x slower than the rest: it times this many images, 2 epochs, and
# its epoch time is scaled to the full epoch, so the whole bench ends in minutes.
TUTORIAL_GPU_IMAGES = 10_000


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), required=True)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    full = bench_config(args.model, args.subset, args.epochs, args.overrides)
    images = args.subset or 60_000 - full.data.val_size
    timed_images, epochs, cfg = images, args.epochs, full
    if args.pipeline == "tutorial" and torch.cuda.is_available() and full.trainer.accelerator != "cpu":
        timed_images, epochs = min(images, TUTORIAL_GPU_IMAGES), min(args.epochs, 2)
        cfg = bench_config(args.model, timed_images, epochs, args.overrides)
    times = PIPELINES[args.pipeline](cfg, epochs)
    measured = times[1:] if len(times) > 1 else times  # the first epoch warms up caches, allocators, kernels
    epoch = statistics.median(measured) * images / timed_images
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": args.model, "pipeline": args.pipeline, "epoch_s": epoch, "images_per_s": images / epoch,
                      "peak_mem_mib": peak, "epochs_timed": len(measured), "train_images": images, "timed_images": timed_images,
                      "all_epochs_s": times}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
