"""What MLflow's UI opens on: every link the harness prints (`link`), and the saved views those links open.

Found in MLflow 3.17.2's UI, and checked in a fresh Chromium profile (tests/test_ui.py):
- Its GenAI / Model-training switch lives in the browser's localStorage (GenAI by default) and ignores the
  experiment's `mlflow.experimentKind` tag (upstream issue 24498); a `workflowType=machine_learning` query
  parameter in the page's address overrides it, on every page.
- Which columns the runs table shows, and which charts, is localStorage too, except in a saved view: an
  experiment tag `mlflow.sharedViewState.<key>` holding a search (filter, order) and the table's and charts'
  state, opened by `#/experiments/<id>/runs?viewStateShareKey=<key>` and listed in the page's "Views" menu.
  `compareRunsMode=CHART` in the address opens its charts instead of its table.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from mlflow.tracking import MlflowClient

from digits_bench.names import Metric, Param, Tag

MODE = {"workflowType": "machine_learning"}  # MLflow's Model-training mode, whatever the browser last used
VIEW_TAG = "mlflow.sharedViewState."  # + the view's key: one experiment tag per saved view
RUNS_VIEW = "runs"  # every experiment's own view: the runs table with what runs are compared by
LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` serves a local store (its PORT= default)


def link(base: str, experiment_id: str | None = None, run_id: str | None = None, view: str | None = None,
         charts: bool = False, model: tuple[str, int] | None = None) -> str:
    """The one way a link into MLflow's UI is made, in Model-training mode: a run's page, an experiment's runs
    (in saved view `view`, on its charts with `charts`), a registered model's version, or the experiments."""
    if model is not None:
        route = f"/models/{quote(model[0], safe='')}/versions/{model[1]}"
    elif experiment_id is None:
        route = "/experiments"
    elif run_id is not None:
        route = f"/experiments/{experiment_id}/runs/{run_id}"
    else:
        route = f"/experiments/{experiment_id}/runs"
    query = MODE | ({"viewStateShareKey": view} if view else {}) | ({"compareRunsMode": "CHART"} if charts else {})
    return f"{base.rstrip('/')}/#{route}?{urlencode(query)}"


def ui_base(tracking_uri: str) -> str:
    """Where a store's UI is: the tracking server itself (its login is the browser's to ask, never in a link), or
    `make ui`'s default address for a local store."""
    if tracking_uri.startswith(("http://", "https://")):
        return re.sub(r"//[^/@]*@", "//", tracking_uri).rstrip("/")
    return LOCAL_UI


def _column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it: metrics.`val/acc`, params.`model`, attributes.`Dataset`."""
    return f"{kind}.`{key}`"


@dataclass(frozen=True)
class View:
    """A saved view of an experiment's runs: which runs (an MLflow search filter), in what order, which columns,
    and optionally a parallel-coordinates chart of `chart` params against the first metric."""

    name: str
    filter: str = ""
    order_by: str = "attributes.start_time"
    ascending: bool = False
    metrics: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    chart: tuple[str, ...] = ()
    attributes: tuple[str, ...] = field(default=("Source", "Models", "Dataset"))

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "searchFilter": self.filter, "orderByKey": self.order_by, "orderByAsc": self.ascending,
            "selectedColumns": [*(_column("metrics", k) for k in self.metrics), *(_column("params", k) for k in self.params),
                                *(_column("attributes", k) for k in self.attributes)],
        }
        if self.chart and self.metrics:
            section = "digits_bench"
            state |= {
                "compareRunSections": [{"uuid": section, "name": self.name, "display": True, "isReordered": False,
                                        "deleted": False, "isGenerated": False, "columns": 1, "cardHeight": 400}],
                "compareRunCharts": [{"uuid": f"{section}-parallel", "type": "PARALLEL", "metricSectionId": section,
                                      "runsCountToCompare": 100, "deleted": False, "isGenerated": False,
                                      "selectedParams": list(self.chart), "selectedMetrics": [self.metrics[0]],
                                      "showAllRuns": True}],
                "isAccordionReordered": True,  # our section first, above the one MLflow generates per metric
            }
        return state


def save_view(client: MlflowClient, experiment_id: str, key: str, view: View) -> None:
    """Save `view` under `key` (letters, digits, - and _: it goes into an address), replacing an older one."""
    now = int(time.time() * 1000)
    envelope = {"name": view.name, "createdAt": now, "updatedAt": now, "state": json.dumps(view.state())}
    client.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))


# The runs table every link to an experiment opens on: newest first, with what runs are compared by.
RUNS = View(
    name="digits_bench runs",
    metrics=(Metric.VAL_ACC_BEST, Metric.TEST_ACC, Metric.TRAIN_S),
    params=("model", "optimizer", "aug", "schedule", "optimizer.lr", Param.EPOCHS, Param.SEED, Param.N_PARAMS),
    attributes=(),  # Source, Models, Dataset: on each run's page; here they would push the params off a screen
)


def children_view(name: str, parent_run_id: str, metrics: tuple[str, ...], keys: tuple[str, ...]) -> View:
    """The runs a parent groups (a sweep's trials, a compare's seeds, a multirun's jobs), best first, with the keys
    they differ in as columns and on a parallel-coordinates chart against the first metric."""
    return View(name=name, filter=f"tags.`{Tag.PARENT_RUN_ID}` = '{parent_run_id}'", order_by=_column("metrics", metrics[0]),
                metrics=metrics, params=keys, chart=keys, attributes=())


def show_children(client: MlflowClient, parent_run_id: str, metrics: tuple[str, ...], keys: tuple[str, ...],
                  charts: bool = False) -> str:
    """Save the view of a parent's children, named as the parent and keyed by its id, and return the link to it
    (on its chart of `keys` against the first metric with `charts`)."""
    parent = client.get_run(parent_run_id)
    save_view(client, parent.info.experiment_id, parent_run_id,
              children_view(parent.info.run_name or parent_run_id, parent_run_id, metrics, keys))
    return children_link(client, parent_run_id, charts, parent.info.experiment_id)


def children_link(client: MlflowClient, parent_run_id: str, charts: bool = False, experiment_id: str | None = None) -> str:
    """The link to the view `show_children` saved for a parent, without saving it again."""
    experiment_id = experiment_id or client.get_run(parent_run_id).info.experiment_id
    return link(ui_base(client.tracking_uri), experiment_id, view=parent_run_id, charts=charts)
