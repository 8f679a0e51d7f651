"""`python -m digits_bench.compare`."""
import sys

from digits_bench.compare import main

sys.exit(main(sys.argv[1:]))
