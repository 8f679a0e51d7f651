"""digits_bench."""
