"""`digits-bench [VERB] ARGS`: one command for the whole harness.

Bare overrides (or `train OVERRIDES`) train through Hydra, with Hydra's help and tab completion
(`eval "$(digits-bench -sc install=bash)"`); every other verb runs its module's main, exactly
as `python -m digits_bench.<module>` does. Each main goes through `entry.command`: one console
set-up, and every error one line with its exit code.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Callable, Sequence

# verb -> module whose main(argv) it runs; `train` is Hydra's app in digits_bench.__main__
VERBS: dict[str, tuple[str, str]] = {
    "train": ("digits_bench.__main__", "train a model: digits-bench [train] model=lenet trainer.max_epochs=3"),
    "sweep": ("digits_bench.sweep.__main__", "run or resume an Optuna sweep from sweeps/"),
    "compare": ("digits_bench.compare.__main__", "re-train a recipe over seeds"),
    "report": ("digits_bench.report.__main__", "leaderboard and plots from the runs in MLflow"),
    "predict": ("digits_bench.predict.__main__", "read digits from images with a tracked model"),
    "predict-eval": ("digits_bench.predict.evaluate", "how well a run reads handwriting that is not MNIST's, per condition"),
    "register": ("digits_bench.register.__main__", "register a run's model in MLflow's Model Registry (models:/NAME/VERSION)"),
    "bench": ("digits_bench.bench.__main__", "time the tutorial pipeline vs the harness"),
    "gpu-check": ("digits_bench.gpu_check.__main__", "on a CUDA GPU: the CUDA tests, speedrun, bench and best against their targets"),
    "ensemble": ("digits_bench.ensemble.__main__", "validation-chosen ensemble of a recipe's seeds"),
    "models": ("digits_bench.models.__main__", "list the model architectures"),
    "data": ("digits_bench.data.__main__", "rebuild and md5-verify the datasets"),
    "server": ("digits_bench.server.__main__", "PostgreSQL + MLflow tracking server for a team"),
    "ui": ("digits_bench.ui.__main__", "MLflow's UI on the local store, quiet, with the link to its runs (make ui)"),
    "dashboard": ("digits_bench.dashboard.__main__", "optuna-dashboard on the sweeps' studies in the local store (make dashboard)"),
}


def usage() -> str:
    lines = ["usage: digits-bench [train] [group=option ...] [key=value ...]   (--help: the config; --hydra-help: Hydra's flags)",
             "       digits-bench VERB [ARGS]   (VERB --help for its arguments)", "", "verbs:"]
    lines += [f"  {verb:<9} {text}" for verb, (_, text) in VERBS.items()]
    return "\n".join(lines)


def _completion_line(line: str) -> str:
    """A completion query for `digits-bench train ...` is one for `digits-bench ...`: Hydra sees no verb."""
    words = line.split(" ")
    if len(words) > 2 and words[1] == "train":
        return " ".join(words[:1] + words[2:])
    return line


def _complete(argv: Sequence[str]) -> bool:
    """Handle a shell-completion query when it is not about training overrides; True if handled."""
    if not any(arg.startswith("query=") for arg in argv):
        return False
    line = os.environ.get("COMP_LINE", "")
    words = line.split(" ")
    if len(words) > 2 and words[1] in VERBS and words[1] != "train":
        return True  # another verb: no suggestions, the shell completes file names
    os.environ["COMP_LINE"] = _completion_line(line)
    if len(words) == 2:  # the first word: verbs as well as Hydra's groups and keys
        print(" ".join(verb for verb in VERBS if verb.startswith(words[1])))
    return False


def main(argv: Sequence[str] | None = None) -> int | None:
    args = list(sys.argv[1:] if argv is None else argv)
    verb = args[0] if args and args[0] in VERBS else "train"
    if args == ["help"]:
        print(usage())
        return 0
    if verb != "train":
        verb_main: Callable[[list[str]], int] = importlib.import_module(VERBS[verb][0]).main
        return verb_main(args[1:])
    if "-sc" in args and _complete(args):
        return 0
    if args and args[0] == "train":
        args = args[1:]
    # Hydra reads sys.argv; argv[0] stays the real script, so Hydra's completion line names
    # the installed command and Lightning's DDP launcher can re-run it with the same arguments
    sys.argv = [sys.argv[0], *args]
    from digits_bench.__main__ import cli as train_cli

    train_cli()
    return 0


if __name__ == "__main__":
    sys.exit(main())
