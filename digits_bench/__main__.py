"""`python -m digits_bench [overrides]`: compose the config with Hydra, train it, record it in MLflow."""
from __future__ import annotations

import errno
import sys

import hydra
from omegaconf import DictConfig

from digits_bench.config import CONF_DIR, validate
from digits_bench.errors import ConfigError, DataError, TrackingError, TrainingDiverged
from digits_bench.tracking.multirun import job_failed_in_multirun


# an absolute config path: the same app whether run as `python -m digits_bench` or imported by `digits-bench`
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code and not (code != 130 and job_failed_in_multirun(code)):  # a multirun goes on with its other jobs
        sys.exit(code)


def run(cfg: DictConfig) -> int:
    """Train `cfg` and print its summary; every expected failure is one line on stderr and a non-zero status.

    2: bad input or an unusable store or disk (nothing to fix in the code); 1: the training itself failed
    (diverged). The MLflow run, when one exists, is already closed FAILED by tracking.mlflow_run.
    """
    try:
        validate(cfg)  # bad values fail in seconds, before the heavy imports below
        from digits_bench.tracking.multirun import job_tags
        from digits_bench.training.run import summary, train

        result = train(cfg, tags=job_tags())
    except (ConfigError, DataError, TrackingError) as err:
        return _fail(str(err), 2)
    except TrainingDiverged as err:
        return _fail(f"training diverged: {err}", 1)
    except KeyboardInterrupt:  # outside Lightning's fit, which shuts down itself and prints how to resume
        return _fail("interrupted", 130)
    except OSError as err:
        return _fail(disk_message(err), 2)
    if result is not None:
        print(summary(result, cfg))
    return 0


def _fail(message: str, code: int) -> int:
    print(f"digits_bench: error: {message}", file=sys.stderr)
    return code


def disk_message(err: OSError) -> str:
    """A file that could not be written: which, why, and what to do."""
    where = err.filename or "a file"
    if err.errno == errno.ENOSPC:
        return f"disk full writing {where}; free space and run again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where} ({err.strerror}); make it writable or point DIGITS_BENCH_STORE / DIGITS_BENCH_CHECKPOINTS elsewhere"
    return f"cannot write {where} ({err.strerror or err})"


if __name__ == "__main__":
    main()
