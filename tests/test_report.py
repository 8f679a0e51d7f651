"""compare + report: the leaderboard is built from real runs and its numbers are exactly theirs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from digits_bench.compare import Recipe, run_compare
from digits_bench.report.__main__ import main as report_main
from digits_bench.report.plots import pareto_front

from .conftest import TINY, all_runs


def test_report_matches_the_runs_it_read(tmp_path: Path, isolated_store: Path):
    run_compare(Recipe("tiny-linear", ["model=linear", *TINY]), seeds=[0, 1])
    run_compare(Recipe("tiny-mlp", ["model=mlp_128_64", "model.init=torch", *TINY]), seeds=[0])
    out = tmp_path / "results"
    assert report_main(["--out", str(out)]) == 0

    board = pd.read_csv(out / "leaderboard.csv").set_index("recipe")
    runs = {r.info.run_id: r for r in all_runs(isolated_store)}
    linear = [r for r in runs.values() if r.data.tags.get("compare.recipe") == "tiny-linear"]
    row = board.loc["tiny-linear"]
    assert row["n_seeds"] == 2 and set(row["run_ids"].split()) == {r.info.run_id for r in linear}
    accs = [r.data.metrics["test/acc"] for r in linear]
    assert row["test_acc_mean"] == pytest.approx(sum(accs) / 2)
    assert row["test_acc_std"] == pytest.approx(pd.Series(accs).std())
    assert row["params"] == 7850 and row["model"] == "linear" and row["epochs"] == 1
    assert board.loc["tiny-mlp", "n_seeds"] == 1
    for name in ("leaderboard.md", "runs.csv", "accuracy_vs_params.png", "accuracy_vs_time.png", "validation_curves.png"):
        assert (out / name).stat().st_size > 0
    assert "tiny-linear" in (out / "leaderboard.md").read_text()


def test_report_without_runs_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert report_main(["--out", str(tmp_path / "r")]) == 2
    assert "no finished, test-scored runs" in capsys.readouterr().err


def test_pareto_front_keeps_only_undominated_recipes():
    board = pd.DataFrame({"recipe": list("abcd"), "train_time_s": [1, 2, 3, 4], "test_acc_mean": [0.9, 0.95, 0.94, 0.99]})
    assert pareto_front(board, "train_time_s")["recipe"].tolist() == ["a", "b", "d"]


def test_report_keeps_runs_from_an_earlier_report_that_this_store_lacks(tmp_path: Path, isolated_store: Path):
    """results/ accumulates: rows committed from another machine survive a report built on this one."""
    run_compare(Recipe("tiny-linear", ["model=linear", *TINY]), seeds=[0])
    out = tmp_path / "results"
    assert report_main(["--out", str(out)]) == 0
    first = pd.read_csv(out / "runs.csv", dtype={"val_curve": str})
    assert first["val_curve"].str.split().str.len().tolist() == [1]
    elsewhere = first.assign(recipe="gpu-recipe", run_id="0" * 32, git_commit="1234567e8901", test_acc=0.5, device="cuda (H100)")
    pd.concat([first, elsewhere]).to_csv(out / "runs.csv", index=False)
    pd.DataFrame({"study": ["old"], "number": [0], "value": [0.9], "state": ["COMPLETE"], "params_lr": [0.1]}).to_csv(out / "studies.csv", index=False)

    assert report_main(["--out", str(out)]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["recipe"]) == ["gpu-recipe", "tiny-linear"] and runs["run_id"].is_unique
    assert "0" * 32 in pd.read_csv(out / "runs.csv", dtype=str)["run_id"].tolist()
    board = pd.read_csv(out / "leaderboard.csv").set_index("recipe")
    assert board.loc["gpu-recipe", "test_acc_mean"] == 0.5 and board.loc["gpu-recipe", "device"] == "cuda (H100)"
    text = (out / "leaderboard.md").read_text()
    assert "1 from this store, 1 carried over" in text and "**old**: 1 trials" in text and "'lr': 0.1" in text

    assert report_main(["--out", str(out), "--no-archive"]) == 0
    assert pd.read_csv(out / "runs.csv")["recipe"].tolist() == ["tiny-linear"]


def test_a_target_is_met_only_by_the_seed_mean_while_a_tutorial_claim_allows_seed_noise():
    """best's 99.63% against its ≥99.65% goal is a miss; a tutorial 0.02 pp short of its one printed number is not."""
    from digits_bench.report.table import leaderboard, markdown

    runs = pd.DataFrame(
        {"recipe": ["goal", "goal", "paper", "paper", "made"], "seed": [0, 1, 0, 1, 0],
         "test_acc": [0.9962, 0.9964, 0.9962, 0.9964, 0.9901], "claimed_test_acc": [0.9965, 0.9965, 0.9965, 0.9965, 0.99],
         "claim_kind": ["target", "target", "tutorial", "tutorial", "target"]}
    ).assign(model="m", optimizer="o", aug="a", schedule="s", epochs=1, best_val_acc=0.99, params=1, train_time_s=1.0,
             images_per_s=1.0, time_to_val_99_s=float("nan"), time_to_val_995_s=float("nan"), device="cpu",
             git_commit="c", run_id=[str(i) for i in range(5)], tutorial="")
    board = leaderboard(runs).set_index("recipe")
    assert board["meets_claim"].to_dict() == {"goal": False, "paper": True, "made": True}
    text = markdown(board.reset_index())
    assert "≥99.65" in text and "-0.02 ✗" in text and "-0.02 ✓" in text
