"""Links into MLflow's UI and the names it shows, from the outside; the pages themselves are opened in a real
browser by the journey (tests/test_journey.py, step 9)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from digits_bench.names import run_name
from digits_bench.tracking.multirun import swept_keys
from digits_bench.tracking.views import RUNS_VIEW, VIEW_TAG, link, ui_base

from .conftest import TINY, client_for, compose, run_cli

ML = "workflowType=machine_learning"


def test_every_link_opens_model_training_mode_on_its_page():
    base = "http://127.0.0.1:5000"
    assert link(base, "3", "abc") == f"{base}/#/experiments/3/runs/abc?{ML}"
    assert link(base, "3", view="runs") == f"{base}/#/experiments/3/runs?{ML}&viewStateShareKey=runs"
    assert link(base + "/", "3", view="f00", charts=True) == f"{base}/#/experiments/3/runs?{ML}&viewStateShareKey=f00&compareRunsMode=CHART"
    assert link(base, model=("my digits", 2)) == f"{base}/#/models/my%20digits/versions/2?{ML}"
    assert link(base) == f"{base}/#/experiments?{ML}"


def test_a_link_to_a_server_never_carries_its_login():
    assert ui_base("http://digits_bench:s3cret@mlflow.lan:5005/") == "http://mlflow.lan:5005"
    assert ui_base("https://mlflow.lan") == "https://mlflow.lan"
    assert ui_base("sqlite:////tmp/x/mlflow.db") == "http://127.0.0.1:5000"  # make ui's default address


def test_run_names_read_well():
    typed = ["optimizer.lr=0.016791248331372594", "optimizer.weight_decay=3.7446665357415703e-06", "data.subset=2000",
             "aug=on", "evaluate_test=true", "trainer.enable_progress_bar=false", "model.dropout=0.5", "seed=3",
             "tracking.figures=false", "tags=[journey]", "progress_refresh=1"]
    assert run_name("mlp #1", typed) == "mlp #1 optimizer.lr=0.01679 optimizer.weight_decay=3.745e-06 data.subset=2000 aug=on model.dropout=0.5 seed=3"
    assert run_name("multirun:", ["model=lenet,mlp_512", "optimizer.lr=0.1,0.01"]) == "multirun: model=lenet,mlp_512 optimizer.lr=0.1,0.01"


def test_a_multirun_view_shows_the_keys_it_sweeps():
    assert swept_keys(["model=lenet,mlp_512", "data.subset=512", "+trainer.gradient_clip_val=0.5,1", "optimizer.lr=range(1,3)"]) == (
        "model", "trainer.gradient_clip_val", "optimizer.lr")


@pytest.mark.fit
def test_make_ui_without_a_store_says_where_to_point_it(tmp_path: Path):
    result = run_cli(["--store", str(tmp_path / "none")], module="digits_bench.ui", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"digits_bench: error: no MLflow store at {tmp_path / 'none' / 'mlflow.db'}; train a run first "
                             "(make train), or point --store (make ui STORE=) at the folder that holds mlflow.db\n")


@pytest.mark.fit
def test_system_metrics_have_one_switch(isolated_store: Path):
    from digits_bench.training.run import train

    result = train(compose("model=linear", *TINY, "tracking.system_metrics=false"))
    client = client_for(isolated_store)
    assert not [k for k in client.get_run(result.run_id).data.metrics if k.startswith("system/")]
    experiment = client.get_experiment(client.get_run(result.run_id).info.experiment_id)
    view = json.loads(experiment.tags[VIEW_TAG + RUNS_VIEW])  # the runs table the printed links open
    assert view["name"] == "digits_bench runs" and "metrics.`val/acc_best`" in json.loads(view["state"])["selectedColumns"]


@pytest.mark.fit
def test_mlflow_telemetry_is_off_unless_turned_on():
    import os
    import subprocess
    import sys

    script = ("import digits_bench; from mlflow.telemetry import utils; "
              "print(utils.is_telemetry_disabled(), utils._IS_IN_CI_ENV_OR_TESTING)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}

    def disabled(**extra: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", script], env=env | extra, capture_output=True, text=True, timeout=60).stdout.split()

    assert disabled()[0] == "True"
    turned_on, on_ci = disabled(MLFLOW_DISABLE_TELEMETRY="false")
    assert turned_on == ("True" if on_ci == "True" else "False")  # on a CI machine MLflow keeps it off by itself


@pytest.mark.fit
def test_stopping_make_ui_stops_its_server(isolated_store: Path):
    """SIGTERM (as `kill` sends) ends the UI as Ctrl-C does: quietly, and its MLflow server (a session of its own,
    out of reach of the terminal's signals) with it, never left serving."""
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    from digits_bench.tracking.store import make_client

    make_client(compose())  # a store, with no experiment yet: the link is to the experiments
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen([sys.executable, "-m", "digits_bench.ui", "--store", str(isolated_store), "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = ui.stdout.readline()  # type: ignore[union-attr]
    assert first == f"MLflow UI on {isolated_store}: http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning\n"
    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
    ui.send_signal(signal.SIGTERM)
    assert ui.wait(timeout=30) == 0 and ui.stderr.read() == ""  # type: ignore[union-attr]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
