"""Lightning's MLFlowLogger with MLflow's own conventions: metrics against epochs, `epoch` once per epoch."""
from __future__ import annotations

from typing import Any, Mapping

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only


class RunLogger(MLFlowLogger):
    """Logs every metric at step = epoch, so the MLflow UI's x-axis is epochs.

    Lightning passes its `global_step` as the step, which here counts chunks of `data.chunk_batches`
    mini-batches, and adds `epoch` to every call. The epoch becomes the step, and `epoch` itself is
    recorded once per epoch instead of with every call. Metrics logged after training (the test
    Trainer starts again at epoch 0) land on the last trained epoch. The run is opened and closed by
    `tracking.mlflow_run`; this logger only attaches to it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_epoch = -1

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        if epoch is not None:
            step = max(int(epoch), self._last_epoch)
            if step > self._last_epoch:
                metrics["epoch"] = step
                self._last_epoch = step
        if metrics:
            super().log_metrics(metrics, step)
