"""digits_bench.

A benchmark on a private cluster sends nothing anywhere unless asked: MLflow's usage telemetry is off in every
process of the harness (and the MLflow servers it starts) unless the user sets MLFLOW_DISABLE_TELEMETRY=false.
"""
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
