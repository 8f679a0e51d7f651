"""`python -m digits_bench.data [overrides]`: make the dataset's IDX files present and md5-verified."""
from __future__ import annotations

import sys

from hydra.utils import instantiate

from digits_bench.cli.entry import command
from digits_bench.config import compose_config


@command
def main(argv: list[str]) -> None:
    cfg = compose_config(argv)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # a missing or corrupt file: DataError, one line and exit 2
    print(f"{datamodule.spec.name}: IDX files verified in {datamodule.spec.raw_dir}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
