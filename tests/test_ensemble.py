"""Harness recipes: the speedrun preset trains, and ensembles are chosen on validation and scored on test once."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digits_bench.ensemble import load_members, recipe_runs, run_ensemble
from digits_bench.predict.inference import probabilities, shifted
from digits_bench.errors import ConfigError
from digits_bench.report.runs import load_runs
from digits_bench.training.run import train

from .conftest import TINY, all_runs, client_for, compose, fits_a_refusal


def test_shifted_moves_ink_and_fills_the_border_with_background():
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 5, 7] = 255
    assert shifted(image, 1, 0)[0, 5, 8] == 255 and shifted(image, 0, -1)[0, 4, 7] == 255
    assert int(shifted(image, 0, 0).sum()) == 255
    edge = torch.zeros(1, 28, 28, dtype=torch.uint8)
    edge[0, :, 27] = 255
    assert int(shifted(edge, 1, 0).sum()) == 0 and bool((shifted(edge, -1, 0)[0, :, 26] == 255).all())


@pytest.mark.fit
def test_ensemble_is_chosen_on_validation_and_scored_on_test_once(isolated_store: Path):
    other = train(compose("experiment=speedrun", *TINY, "trainer.max_epochs=2", "optimizer.lr=0.05"))  # same name, other config
    singles = [train(compose("experiment=speedrun", *TINY, "trainer.max_epochs=2", f"seed={seed}")) for seed in (0, 1)]
    assert recipe_runs(client_for(isolated_store), "digits_bench", "speedrun") == [s.run_id for s in singles]
    with pytest.raises(ConfigError) as caught:  # what a user types for runs without a preset: why there is nothing
        run_ensemble("custom")
    assert str(caught.value).endswith("goes by its model's):\n  there are: speedrun ×3") and fits_a_refusal(str(caught.value))
    with pytest.raises(ConfigError) as caught:
        run_ensemble("speedrun", min_members=3)
    assert str(caught.value).startswith("recipe 'speedrun' has 2 finished run(s) of its latest configuration in "
                                        "'digits_bench' (1 more differ") and fits_a_refusal(str(caught.value))
    assert other.run_id not in recipe_runs(client_for(isolated_store), "digits_bench", "speedrun")
    result = run_ensemble("speedrun")
    assert result["chosen"] == max(result["val_acc"], key=result["val_acc"].get)
    client = client_for(isolated_store)

    # a member scored by the ensemble code reproduces the test accuracy Lightning logged for its run
    member = load_members(client, [singles[0].run_id], torch.device("cpu"))[0]
    from digits_bench.data import DigitsDataModule
    from hydra.utils import instantiate

    data: DigitsDataModule = instantiate(member.cfg.data)
    data.setup("test")
    images, labels = data.tensors["test"]
    own = float((probabilities(member.module, images, tta=False).argmax(1) == labels).float().mean())
    assert own == pytest.approx(singles[0].metrics["test/acc"], abs=1e-6)

    (run,) = [r for r in all_runs(isolated_store) if "ensemble.members" in r.data.tags]
    assert run.info.status == "FINISHED" and run.data.metrics["test/acc"] == pytest.approx(result["test_acc"])
    assert set(run.data.tags["ensemble.members"].split()) <= {s.run_id for s in singles}
    frame, _ = load_runs(client, "digits_bench")
    assert {"speedrun", "speedrun+ensemble"} <= set(frame["recipe"])
    row = frame[frame["recipe"] == "speedrun+ensemble"].iloc[0]
    assert row["test_acc"] == pytest.approx(result["test_acc"]) and row["claimed_test_acc"] != row["claimed_test_acc"]  # NaN: no claim


def test_ensemble_without_runs_is_one_clear_line(capsys: pytest.CaptureFixture[str]):
    from digits_bench.ensemble.__main__ import main

    assert main(["best"]) == 2  # the verb's main as `python -m digits_bench.ensemble best` runs it
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 2 and err.strip().splitlines()[1] == "  there are: none"
    assert err.strip().startswith("digits_bench: error: no finished, test-scored run is named 'best' in experiment")
