"""Lightning's MLFlowLogger, attached to a run that tracking.mlflow_run owns."""
from __future__ import annotations

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only


class RunLogger(MLFlowLogger):
    """Logs metrics into an existing MLflow run, and never ends it.

    Lightning's finalize() marks the run FINISHED as soon as fit() returns, before
    the test set, the report and the checkpoint are stored; a crash in between
    would leave a FINISHED run without a model. Here finalize() only flushes
    queued metrics: the run's status is set by tracking.mlflow_run alone.
    """

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if self._initialized:
            self.experiment._tracking_client.store.flush_async_logging()
