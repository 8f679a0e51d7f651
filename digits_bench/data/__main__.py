"""`python -m digits_bench.data [overrides]`: make the dataset's IDX files present and md5-verified."""
from __future__ import annotations

import sys

from digits_bench.entry import command
from digits_bench.config import compose_config
from digits_bench.data.sources import DatasetSpec, ensure_files


@command
def main(argv: list[str]) -> None:
    spec = DatasetSpec.from_config(compose_config(argv).data.dataset)
    ensure_files(spec)  # what training's prepare_data does; a missing or corrupt file: DataError, one line and exit 2
    print(f"{spec.name}: IDX files verified in {spec.raw_dir}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
