"""`python -m digits_bench.server`."""
import sys

from digits_bench.server import main

sys.exit(main(sys.argv[1:]))
