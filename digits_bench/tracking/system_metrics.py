"""MLflow's own system metrics for a training run: its System metrics tab (CPU, memory, disk, network; with an NVIDIA
GPU its utilisation, memory and power), sampled every 5 s (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL changes it).
On by default; `tracking.system_metrics=false` turns them off."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

SAMPLING_S = 5.0


@contextmanager
def system_metrics(tracking_uri: str, run_id: str, resumed: bool) -> Iterator[None]:
    """Sample the machine into `run_id` while the block runs; the last samples are written before it ends, so the
    run is closed after them. A resumed run goes on from its last sample's step."""
    try:
        import pynvml  # noqa: F401  (MLflow's GPU monitor only looks for it once it is imported)
    except ImportError:
        pass
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    chatter = logging.getLogger("mlflow.system_metrics")  # "Started monitoring...", "Skip logging GPU metrics..."
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SAMPLING_S, resume_logging=resumed, tracking_uri=tracking_uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        chatter.setLevel(level)
