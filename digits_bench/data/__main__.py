"""`python -m digits_bench.data [overrides]`: make the dataset's IDX files present and md5-verified."""
from __future__ import annotations

import sys

from hydra.utils import instantiate

from digits_bench.config import compose_config
from digits_bench.data.sources import DataError


def main(argv: list[str]) -> int:
    cfg = compose_config(argv)
    datamodule = instantiate(cfg.data)
    try:
        datamodule.prepare_data()
    except DataError as err:
        print(f"digits_bench: error: {err}", file=sys.stderr)
        return 2
    print(f"{datamodule.spec.name}: IDX files verified in {datamodule.spec.raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
