"""`make bench`: pipelines run interleaved, each row is its fastest timed epoch, the ratios come from those rows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from digits_bench.bench import __main__ as bench
from digits_bench.bench.measurement import measure_here


def _run(pipeline: str, epochs: list[float], peak: float) -> dict:
    return {"model": "m", "pipeline": pipeline, "epochs_s": epochs, "peak_mem_mib": peak, "train_images": 1000, "timed_images": 1000}


def test_a_row_is_the_fastest_timed_epoch_of_all_its_runs_and_the_ratios_use_it():
    runs = [_run("harness", [2.0, 1.5], 10), _run("limit", [1.0, 1.2], 5), _run("harness", [1.4, 3.0], 12), _run("limit", [1.1, 1.3], 6)]
    frame = bench.summarise(runs).set_index("pipeline")
    assert frame.loc["harness", "epoch_s"] == 1.4 and frame.loc["harness", "epoch_median_s"] == 1.75
    assert frame.loc["harness", "epochs_timed"] == 4 and frame.loc["harness", "peak_mem_mib"] == 12
    assert frame.loc["harness", "images_per_s"] == pytest.approx(1000 / 1.4)
    assert bench.ratios(frame.reset_index())["harness time vs limit (c/d)"]["m"] == pytest.approx(1.4)


@pytest.mark.fit
def test_bench_interleaves_its_runs_and_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    order = []

    def in_process(model: str, pipeline: str, subset: int | None, epochs: int, overrides: list[str], store: str) -> dict:
        order.append(pipeline)  # each in its own process in `make bench`; here in this one, the same measurement
        return measure_here(model, pipeline, subset, epochs, overrides)

    monkeypatch.setattr(bench, "measure", in_process)
    out = tmp_path / "results"
    code = bench.main(["--models", "linear", "--pipelines", "harness", "limit", "--subset", "256", "--epochs", "2",
                       "--repeats", "2", "--startup-repeats", "0", "--out", str(out), "trainer.enable_model_summary=false"])
    assert code == 0, capsys.readouterr().err
    assert order == ["harness", "limit", "harness", "limit"]
    table = pd.read_csv(out / "bench.csv")
    assert list(table["pipeline"]) == ["harness", "limit"] and list(table["epochs_timed"]) == [2, 2]
    assert (table["epoch_s"] <= table["epoch_median_s"]).all() and (table["epoch_s"] > 0).all()
    text = (out / "bench.md").read_text()
    assert "harness time vs limit (c/d)" in text and "2 runs per pipeline, interleaved" in text
    assert "- commit: " in text and "- device: cpu" in text


@pytest.mark.fit
def test_the_start_up_rows_time_a_tiny_run_and_a_refusal_as_a_user_types_them(tmp_path: Path):
    from digits_bench.bench.startup import startup
    from digits_bench.config import compose_config
    from digits_bench.tracking.store import make_client

    store = tmp_path / "store"
    make_client(compose_config([f"paths.store_dir={store}"]))  # a store that exists; `make bench` warms it with a run
    rows = startup(str(store), repeats=1, warm_up=False).set_index("measure")
    overhead, wall, refusal = rows["fastest_s"]
    assert 0 < overhead < wall and refusal < overhead and (rows["repeats"] == 1).all()
    assert rows.index[0].startswith("tiny run overhead: wall - time/train_s (`model=linear data.subset=2000")
    assert rows.index[2] == "refusal before any import of Lightning (`+trainer.fast_dev_run=true`)"
