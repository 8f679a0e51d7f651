"""`python -m digits_bench [overrides]`: compose the config with Hydra, train it, record it in MLflow."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from digits_bench.cli.entry import command
from digits_bench.config import CONF_DIR, validate
from digits_bench.errors import EXIT_INTERRUPTED
from digits_bench.tracking.multirun import job_failed_in_multirun


# an absolute config path: the same app whether run as `python -m digits_bench` or imported by `digits-bench`
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code and not (code != EXIT_INTERRUPTED and job_failed_in_multirun(code)):  # a multirun goes on with its other jobs
        sys.exit(code)


@command
def run(cfg: DictConfig) -> None:
    """Train `cfg` and print its summary (an error ends as cli.entry says; the MLflow run, if any, is closed already)."""
    validate(cfg)  # bad values fail in seconds, before the heavy imports below
    from digits_bench.tracking.multirun import job_tags
    from digits_bench.training.run import summary, train

    result = train(cfg, tags=job_tags())
    if result is not None:
        print(summary(result, cfg))


if __name__ == "__main__":
    main()
