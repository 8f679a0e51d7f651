"""Renamed class paths: a configuration keeps the fingerprint it was recorded with, and an old stored config still builds."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from digits_bench.config.fingerprint import fingerprint
from digits_bench.predict.loading import load_config
from digits_bench.schedules.steps import Steps
from tests.conftest import compose

# fingerprints recorded at 3432cff, when each schedule was a function (`digits_bench.schedules.steps`)
RECORDED = {"seed004_vgg_bn": "2426709f5468", "seed000_mlp_128_64": "8581082df077", "speedrun": "bf83e045815c",
            "best": "238e0084663b"}


@pytest.mark.parametrize("preset", sorted(RECORDED))
def test_a_preset_keeps_the_fingerprint_it_was_recorded_with(preset: str):
    assert fingerprint(compose(f"experiment={preset}")) == RECORDED[preset]


def test_a_config_stored_before_the_rename_builds_todays_schedule(tmp_path: Path):
    stored = OmegaConf.to_container(compose("experiment=seed004_vgg_bn"), resolve=True)
    stored["schedule"]["_target_"] = "digits_bench.schedules.steps"  # as config.yaml recorded it then
    path = tmp_path / "config.yaml"
    path.write_text(OmegaConf.to_yaml(stored))
    schedule = instantiate(load_config(path).schedule)(epochs=12, steps_per_epoch=10)
    assert isinstance(schedule, Steps) and list(schedule.factors) == [0.1, 1.0, 0.1, 0.01]
