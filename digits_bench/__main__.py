"""`python -m digits_bench [overrides]`: compose the config with Hydra, train it, record it in MLflow."""
from __future__ import annotations

import errno
import sys

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, validate
from .errors import ConfigError, DataError, TrackingError


# an absolute config path: the same app whether run as `python -m digits_bench` or imported by `digits-bench`
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)  # bad values fail in seconds, before the heavy imports below
        from .train import summary, train

        result = train(cfg)
    except (ConfigError, DataError, TrackingError) as err:
        print(f"digits_bench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside Lightning's fit, which shuts down itself and prints how to resume
        print("digits_bench: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        print(f"digits_bench: error: disk full ({err.filename or err}); free space, then continue with resume=<run id>", file=sys.stderr)
        sys.exit(2)
    if result is not None:
        print(summary(result, cfg))


if __name__ == "__main__":
    main()
