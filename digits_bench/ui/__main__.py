"""`python -m digits_bench.ui`."""
import sys

from digits_bench.ui import main

sys.exit(main(sys.argv[1:]))
