"""`python -m digits_bench.gpu_check`."""
import sys

from digits_bench.gpu_check import main

sys.exit(main(sys.argv[1:]))
