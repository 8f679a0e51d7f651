"""`make bench`: the harness against the pipelines people write by hand, side by side in one run."""
