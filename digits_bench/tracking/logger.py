"""Lightning's MLFlowLogger, attached to a run that tracking.runs owns, with MLflow's conventions."""
from __future__ import annotations

from typing import Any, Mapping

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from digits_bench.names import Metric


def float_value(value: Any) -> float:
    """A metric as its float32 source means it: 7 significant digits, so MLflow shows 0.9719, not 0.97189998."""
    return float(f"{float(value):.7g}")


class RunLogger(MLFlowLogger):
    """Logs every metric at step = epoch into an existing MLflow run, and never ends that run.

    Lightning passes its `global_step` (optimizer steps) as the step and adds `epoch` to every call. The epoch
    becomes the step, and `epoch` itself is recorded once per epoch. Values are rounded to what float32 holds
    (`float_value`). Metrics logged after training (the test Trainer starts again at epoch 0) land on the last
    trained epoch.

    Lightning's finalize() marks the run FINISHED as soon as fit() returns, before the test set, the
    report and the model are stored; a crash in between would leave a FINISHED run without a model.
    Here finalize() only flushes queued metrics: the run's status is set by tracking.runs alone.
    """

    def __init__(self, *args: Any, resumed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_epoch = -1
        self._resumed = resumed
        self._recorded: dict[str, set[int]] = {}  # resumed: the steps each metric already has in the run

    def _already_recorded(self, key: str, step: int | None) -> bool:
        """A resumed run repeats the epoch it was killed in: what that epoch logged before the kill (its `lr` and
        `epoch` at its start, say) is kept, not written a second time at the same step."""
        if not self._resumed or step is None:
            return False
        if key not in self._recorded:
            self._recorded[key] = {m.step for m in self.experiment.get_metric_history(self.run_id, key)}
        return step in self._recorded[key]

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop(Metric.EPOCH, None)
        if epoch is not None:
            step = max(int(epoch), self._last_epoch)
            if step > self._last_epoch:
                metrics[Metric.EPOCH] = step
                self._last_epoch = step
        metrics = {k: float_value(v) for k, v in metrics.items() if not self._already_recorded(k, step)}
        if metrics:
            super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if self._initialized:
            self.experiment._tracking_client.store.flush_async_logging()
