"""Nothing read back runs code: a pickle bomb for a checkpoint, a tampered config.yaml in a run (predict, resume),
a study's stored overrides. Each is refused in one line, exit 2, and the bomb never goes off."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from digits_bench.__main__ import run
from digits_bench.config.stored import allowed_target, check_stored, check_stored_overrides, read_stored
from digits_bench.errors import ConfigError
from digits_bench.predict.__main__ import main as predict
from digits_bench.training.run import train

from .conftest import ROOT, TINY, all_runs, client_for, compose


class Bomb:
    """Unpickling it calls os.system, which writes a file: proof that code ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (os.system, (f"touch {self.proof}",))


def one_error_line(err: str) -> str:
    (line,) = err.strip().splitlines()
    assert line.startswith("digits_bench: error: ")
    return line


def test_a_config_may_name_only_what_conf_builds():
    assert allowed_target("digits_bench.models.create_model") and allowed_target("lightning.pytorch.Trainer")
    assert allowed_target("torch.optim.RMSprop") and allowed_target("torch.nn.ReLU")
    for target in ("torch.load", "os.system", "builtins.eval", "torch.optim.lr_scheduler.LambdaLR", "subprocess.Popen",
                   "digits_bench.server.start", "torch.nn.functional.relu"):
        assert not allowed_target(target), target
    cfg = OmegaConf.create(OmegaConf.to_container(compose(), resolve=True))  # as config.yaml stores it
    assert check_stored(cfg, "x") is cfg  # a config this harness writes passes as it is
    cfg.aug = {"_target_": "torch.load", "f": "evil.pt", "weights_only": False}
    with pytest.raises(ConfigError, match=r"^x: aug._target_=torch.load is not something this harness builds; refused"):
        check_stored(cfg, "x")


def test_a_studys_stored_overrides_set_values_never_targets():
    assert check_stored_overrides(["model=lenet", "optimizer.lr=0.1"], "study 's'") == ["model=lenet", "optimizer.lr=0.1"]
    for override in ("aug._target_=torch.load", "+model._target_=os.system", "hydra.run.dir=/etc"):
        with pytest.raises(ConfigError, match="^study 's': the override .* refused"):
            check_stored_overrides(["model=lenet", override], "study 's'")


def test_a_stored_interpolation_is_refused(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("model:\n  name: lenet\ntracking:\n  experiment: ${oc.env:AWS_SECRET_ACCESS_KEY}\n")
    with pytest.raises(ConfigError, match=r"tracking.experiment holds an interpolation"):
        read_stored(path, "config.yaml")
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="not a digits_bench run config"):
        read_stored(path, "config.yaml")


@pytest.mark.fit
def test_a_pickle_bomb_checkpoint_and_a_tampered_config_never_run(tmp_path: Path, isolated_store: Path,
                                                                 capsys: pytest.CaptureFixture):
    image = str(ROOT / "examples" / "year_2017.png")
    result = train(compose(*TINY, "model=linear"))
    proof = tmp_path / "code-ran"
    capsys.readouterr()

    # a checkpoint that is a pickle bomb, with the run's genuine config beside it
    config = Path(client_for(isolated_store).download_artifacts(result.run_id, "config.yaml", str(tmp_path)))
    bomb = tmp_path / "evil.ckpt"
    torch.save({"state_dict": Bomb(proof)}, bomb)
    capsys.readouterr()
    assert predict(["--checkpoint", str(bomb), "--config", str(config), image]) == 2
    assert "evil.ckpt holds more than tensors: refused, loading it could run code" in one_error_line(capsys.readouterr().err)
    assert not proof.exists()

    # the run's config.yaml replaced by one whose augmentation is torch.load of the bomb
    tampered = yaml.safe_load(config.read_text())
    tampered["aug"] = {"_target_": "torch.load", "f": str(bomb), "weights_only": False}
    (tmp_path / "tampered").mkdir()
    (tmp_path / "tampered" / "config.yaml").write_text(yaml.safe_dump(tampered))
    client_for(isolated_store).log_artifact(result.run_id, str(tmp_path / "tampered" / "config.yaml"))
    capsys.readouterr()
    assert predict(["--run", result.run_id, image]) == 2
    assert "config.yaml: aug._target_=torch.load is not something this harness builds" in one_error_line(capsys.readouterr().err)
    assert not proof.exists()

    # the same config in a killed run that is resumed
    killed = client_for(isolated_store).create_run(client_for(isolated_store).get_run(result.run_id).info.experiment_id)
    client_for(isolated_store).log_artifact(killed.info.run_id, str(tmp_path / "tampered" / "config.yaml"))
    client_for(isolated_store).set_terminated(killed.info.run_id, "KILLED")
    capsys.readouterr()
    assert run(compose(f"resume={killed.info.run_id}")) == 2
    assert f"resume={killed.info.run_id}: its config.yaml: aug._target_=torch.load" in one_error_line(capsys.readouterr().err)
    assert not proof.exists()

    # a killed run with its genuine config whose last.ckpt was replaced by the bomb: one line, exit 2, still KILLED
    store = client_for(isolated_store)
    victim = store.create_run(store.get_run(result.run_id).info.experiment_id)
    store.log_artifact(victim.info.run_id, str(config))
    store.set_terminated(victim.info.run_id, "KILLED")
    folder = Path(compose().paths.checkpoint_dir) / victim.info.run_id
    folder.mkdir(parents=True)
    torch.save({"state_dict": Bomb(proof)}, folder / "last.ckpt")
    capsys.readouterr()
    assert run(compose(f"resume={victim.info.run_id}")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"digits_bench: error: resume={victim.info.run_id}: last.ckpt holds more than tensors: refused, "
                    "loading it could run code; the run is left as it was") and len(line) <= 160
    assert store.get_run(victim.info.run_id).info.status == "KILLED" and not proof.exists()
    assert [r.info.status for r in all_runs(isolated_store)].count("RUNNING") == 0


def test_pickle_is_what_the_bomb_uses(tmp_path: Path):
    """The bomb is real: plain pickle would run it (so the tests above prove something)."""
    proof = tmp_path / "code-ran"
    pickle.loads(pickle.dumps(Bomb(proof)))
    assert proof.exists()


def test_a_password_in_a_uri_is_never_stored_or_printed(isolated_store: Path, capsys: pytest.CaptureFixture):
    from digits_bench.entry import error_line
    from digits_bench.redaction import redacted
    from digits_bench.tracking import make_client, runs

    assert redacted("postgresql+psycopg2://postgres:s3cr%2Ft@db:5432/optuna") == "postgresql+psycopg2://postgres:***@db:5432/optuna"
    assert redacted("see http://alice:pw@host:5000/ and sqlite:////tmp/a.db") == "see http://alice:***@host:5000/ and sqlite:////tmp/a.db"
    assert redacted("http://host:5000 user:pw@x") == "http://host:5000 user:pw@x"  # not a URI's: left as it is

    cfg = compose(*TINY)
    secret = "postgresql://team:hunter2@db/optuna"
    client = make_client(cfg)
    run_id = runs.create(client, cfg, {"sweep.storage": secret, "overrides": f"tracking.uri={secret}"})
    cfg.recipe.tutorial = f"stored at {secret}"  # any value that may hold one: params and config.yaml
    runs.log_config(client, run_id, cfg, {})
    runs.close(client, run_id, None, {"note": secret})
    run = client.get_run(run_id)
    stored = [*run.data.tags.values(), *run.data.params.values(), Path(client.download_artifacts(run_id, "config.yaml")).read_text()]
    assert not [text for text in stored if "hunter2" in text] and any("team:***@db" in text for text in stored)
    capsys.readouterr()
    error_line(f"cannot reach {secret}")
    assert capsys.readouterr().err == "digits_bench: error: cannot reach postgresql://team:***@db/optuna\n"


def test_a_multirun_writes_only_into_a_private_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Hydra's multirun.yaml went to $TMPDIR/digits_bench-multirun-$USER, where anyone could plant a symlink first."""
    import tempfile

    from digits_bench.config import CONF_DIR, private_temp_dir

    assert "    dir: ${private_tmp:multirun}" in (CONF_DIR / "config.yaml").read_text().splitlines()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read $TMPDIR again
    private_temp_dir.cache_clear()
    try:
        folder = Path(private_temp_dir("multirun"))
        assert folder.parent == tmp_path and folder.name.startswith("digits_bench-multirun-")
        assert folder.stat().st_mode & 0o777 == 0o700 and private_temp_dir("multirun") == str(folder)  # one a process
    finally:
        private_temp_dir.cache_clear()


def test_sweep_workers_get_the_storage_url_in_their_environment_not_on_their_command_line(
        tmp_path: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch):
    """`ps` shows every user a process's argv; a PostgreSQL URL holds a password."""
    import json
    import subprocess

    from digits_bench.sweep import runner
    from digits_bench.sweep.spec import load_sweep
    from digits_bench.tracking.handoff import VARIABLE as HANDOFF

    from .test_sweep import sweep_file

    started: list[tuple[list[str], dict]] = []

    class Done:
        def wait(self) -> int:
            return 0

    real = subprocess.Popen

    def popen(argv, *args, **kwargs):  # a sweep worker is recorded, not run; git and the rest run
        if "digits_bench.sweep" not in argv:
            return real(argv, *args, **kwargs)
        started.append((list(argv), json.loads(os.environ[HANDOFF])))
        return Done()

    monkeypatch.setattr(subprocess, "Popen", popen)
    secret = f"sqlite:///{tmp_path / 'optuna.db'}"  # stands for postgresql://user:password@host/optuna
    spec = load_sweep(str(sweep_file(tmp_path, "ps")))
    study = runner.run_sweep(spec, secret, workers=2, worker_args=[str(spec.path)])
    assert not runner.succeeded(study)  # the recorded workers ran no trial
    assert len(started) == 2
    for argv, handed in started:
        assert "--storage" not in argv and not any("sqlite:" in a for a in argv)
        assert handed["storage"] == secret and "parent" in handed
    assert HANDOFF not in os.environ  # handed to the workers only
