"""`python -m digits_bench [overrides]`: compose the config with Hydra, train it, record it in MLflow."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from digits_bench.entry import command
from digits_bench.config import CONF_DIR, compose_config, validate
from digits_bench.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, ConfigError
from digits_bench.tracking.multirun import job_failed_in_multirun


# an absolute config path: the same app whether run as `python -m digits_bench` or imported by `digits-bench`
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code and not (code not in (EXIT_INTERRUPTED, EXIT_TERMINATED) and job_failed_in_multirun(code)):  # a multirun goes on with its other jobs
        sys.exit(code)


@command
def run(cfg: DictConfig) -> None:
    """Train `cfg` and print its summary (an error ends as entry says; the MLflow run, if any, is closed already)."""
    validate(cfg)  # bad values fail in seconds, before the heavy imports below
    if cfg.get("resume"):
        from digits_bench.tracking.runs import check_resumable

        check_resumable(cfg, str(cfg.resume))
    else:  # a missing or corrupt dataset too (verified once a process: training does not hash it again)
        from digits_bench.data import DatasetSpec, ensure_files

        ensure_files(DatasetSpec.from_config(cfg.data.dataset))
    from digits_bench.tracking.multirun import job_tags
    from digits_bench.training.run import overfit_verdict, summary, train

    result = train(cfg, tags=job_tags())
    if result is not None:
        print(summary(result, cfg))
        verdict = overfit_verdict(result, cfg)
        if verdict:
            print(verdict)


@command
def check_command_line(argv: list[str]) -> None:
    """Compose what the command line asks for before Hydra runs it: an unknown option or key is one line that names
    the nearest right one (Hydra's own message spans lines). A multirun's jobs are composed each (the first 50).
    With a flag of Hydra's own (--help, --cfg, -sc, ...) Hydra answers as it does."""
    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in argv):
        return
    overrides = [arg for arg in argv if not arg.startswith("-")]
    jobs = [overrides]
    if len(overrides) < len(argv):  # -m: one composition per job, as Hydra's basic sweeper splits them
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except Exception as err:  # Hydra's grammar errors: its message, on one line
            raise ConfigError(" ".join(str(err).split())) from None
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch][:50]
    for job in jobs:
        compose_config(job)


def cli() -> None:
    """`python -m digits_bench ARGS` (and `digits-bench [train] ARGS`): checked, then Hydra's app."""
    code = check_command_line(sys.argv[1:])
    if code:
        sys.exit(code)
    sys.exit(launch())


@command
def launch() -> None:
    """Hydra's app. A job's end is its own (`run`); a stop that lands outside every job, as in a multirun that waits
    for the jobs a launcher plugin runs elsewhere, ends the command as any stop does: one line, 130 or 143."""
    from digits_bench.tracking.multirun import close_open

    try:
        main()
    finally:
        close_open()  # a multirun that ended early: its parent closed, before the command's last line


if __name__ == "__main__":
    cli()
