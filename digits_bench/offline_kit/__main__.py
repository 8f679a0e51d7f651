"""`python -m digits_bench.offline_kit`."""
import sys

from digits_bench.offline_kit import main

sys.exit(main(sys.argv[1:]))
