"""`python -m digits_bench.register`."""
import sys

from digits_bench.register import main

sys.exit(main(sys.argv[1:]))
