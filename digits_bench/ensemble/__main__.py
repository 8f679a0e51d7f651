"""`python -m digits_bench.ensemble`."""
import sys

from digits_bench.ensemble import main

sys.exit(main(sys.argv[1:]))
