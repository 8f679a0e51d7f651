"""A user's first afternoon, as the README and docs/ have them type it, in order, on one store: train -> sweep -> multirun ->
compare (2 seeds) -> report -> ensemble -> kill -9 + resume -> register -> predict (best run, registered model)
-> predict-eval -> make ui, and every link printed on the way opened in a fresh browser.

Each step: its exit status, a clean console (no Python warning, no traceback, no line printed twice) and
what it left in the store. The commands a user starts in a shell of their own (a training, a multirun, the
one that is killed, its resume) run as processes; the verbs that follow run their `main` in this process, as
`python -m digits_bench.<verb>` does, to keep the suite's time.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import pytest

from .browser import CHROMIUM, rendered_text, screenshot
from .conftest import ROOT, all_runs, client_for, compose
from .test_console import printed_lines

pytestmark = [pytest.mark.fit, pytest.mark.slow]

# small but real: lenet with augmentation, deterministic, so the killed and resumed run can be checked exactly
TRAIN = ["model=lenet", "model.init=torch", "aug=on", "data.subset=2000", "data.val_size=500", "data.test_subset=500",
         "trainer.max_epochs=3", "trainer.deterministic=true", "tracking.figures=false", "tags=[journey]"]
TINY = ["data.subset=512", "data.val_size=256", "data.test_subset=500", "data.batch_size=64", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "tracking.figures=false"]
EXAMPLE = ROOT / "examples" / "year_2017.png"


def clean(text: str, runs: int = 1) -> None:
    """What a console must never show: a Python warning, a traceback, a line twice for one run (table rules aside)."""
    assert not re.search(r"(?i)warning|traceback", text), text[-3000:]
    repeated = [line for line, n in Counter(printed_lines(text)).items() if n > runs and set(line) - set("┃│┏┓┗┛┡┩└┘━─┳╇┴╭╮╰╯ ")]
    assert repeated == [], repeated


def shell(args: list[str], runs: int = 1) -> subprocess.CompletedProcess:
    """`python -m digits_bench ARGS` as typed in a shell, from an empty folder (so whatever it writes to its working
    directory shows); `runs`: how many runs it makes (a multirun's jobs each end with their summary)."""
    result = subprocess.run([sys.executable, "-m", "digits_bench", *args], cwd=os.environ["JOURNEY_CWD"], capture_output=True,
                            text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    clean(result.stdout + result.stderr, runs)
    return result


@contextlib.contextmanager
def python_defaults() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings a `python -m` process would show: Python's default filters (DeprecationWarning only from
    __main__), then whatever the command's console set-up adds; pytest's own filters set aside."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        yield caught


def resume(args: list[str]) -> int:
    """`python -m digits_bench ARGS` as its Hydra app runs it, minus the app: compose, then the same entry."""
    from digits_bench.__main__ import run

    return run(compose(*args))


def verb(main: Callable[[list[str]], int], args: list[str], capfd: pytest.CaptureFixture) -> tuple[int, str]:
    """`python -m digits_bench.<verb> ARGS`, in this process: the same main, console set-up and exit code."""
    capfd.readouterr()
    levels = {name: logging.getLogger(name).level for name in ["", *logging.root.manager.loggerDict]}
    with python_defaults() as caught:
        code = main(args)
    for name, level in levels.items():  # as the next command, a process of its own, would find them
        logging.getLogger(name).setLevel(level)
    out, err = capfd.readouterr()
    clean(out + err + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught))
    return code, out


LINK = re.compile(r"http://127\.0\.0\.1:5000/#/\S+")  # make ui's default address: where a printed link points


def printed_link(out: str, line_start: str = "") -> str:
    """The one link printed on the lines that start with `line_start`."""
    (link,) = LINK.findall("\n".join(line for line in out.splitlines() if line.startswith(line_start)))
    return link


@contextlib.contextmanager
def ui(store: Path) -> Iterator[tuple[str, str]]:
    """`python -m digits_bench.ui` (what `make ui` runs) on a free port: its base address and the link it printed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # an ephemeral port: never one of Chromium's refused ones (5060, 6000, ...)
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "digits_bench.ui", "--store", str(store), "--port", str(port)],
                               cwd=os.environ["JOURNEY_CWD"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        first, second = process.stdout.readline(), process.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith(f"MLflow UI on {store}: "), first + process.stderr.read()  # type: ignore[union-attr]
        assert second.strip() == f"(its log: {store / 'ui.log'}; Ctrl-C stops it)"
        yield f"http://127.0.0.1:{port}", first.split(": ", 1)[1].strip()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it: quietly
        out, err = process.communicate(timeout=30)
    assert (process.returncode, out, err) == (0, "", "")


def browse(store: Path, links: dict[str, str], run, trials: list[str], seeds: list[str], jobs: list[str]) -> None:
    """Open `make ui`'s link and every link the journey printed in a fresh browser; each lands in Model-training mode
    (its sidebar: the model registry, none of GenAI's judges or prompts) on the page it names, showing its runs."""
    shots = Path(os.environ["UI_SCREENSHOTS"]) if os.environ.get("UI_SCREENSHOTS") else None  # results/ui/, made so
    with ui(store) as (base, runs_link):
        assert runs_link.startswith(f"{base}/#/experiments/") and "workflowType=machine_learning" in runs_link
        pages = {"runs": runs_link, **{name: link.replace("http://127.0.0.1:5000", base) for name, link in links.items()}}
        drawn = {"runs": "val/acc_best", "run": "System metrics", "sweep": "Parallel Coordinates", "compare": "test/acc",
                 "multirun": "val/acc_best", "model": "Version 1"}  # what says that each page is drawn
        seen = {name: rendered_text(url, drawn[name]) for name, url in pages.items()}
        bare = rendered_text(runs_link.split("?")[0], "Judges")  # without the links' mode: MLflow's GenAI default
        if shots:
            for name, url in pages.items():
                screenshot(url, shots / f"{name}.png")
    assert "Judges" in bare and "Prompts" in bare and "Model registry" not in bare, bare[:3000]
    for name, text in seen.items():
        assert "Model registry" in text and "Judges" not in text and "Prompts" not in text, (name, text[:3000])
    # the runs table: every kind of run, and what they are compared by as columns, without a click
    for expected in (run.info.run_name, "sweep:my_lenet", "compare:seed004_linear", "val/acc_best", "test/acc", "n_params", "model"):
        assert f"| {expected} |" in seen["runs"], (expected, seen["runs"][:3000])
    # the run: its name, metrics, datasets (training and the test split as evaluation) and system metrics
    for expected in (run.info.run_name, "test/acc", "val/acc_best", "mnist", "training | +1", "System metrics",
                     "python -m digits_bench"):  # +1: the test split, an evaluation input
        assert f"| {expected} |" in seen["run"], (expected, seen["run"][:3000])
    # the sweep: its trials on a parallel-coordinates chart of the searched keys against val/acc
    assert "Parallel Coordinates" in seen["sweep"] and all(f"| {key} |" in seen["sweep"] for key in ("optimizer.lr", "schedule", "val/acc")), seen["sweep"][:4000]
    for group, names in (("sweep", trials), ("compare", seeds), ("multirun", jobs)):
        assert all(f"| {name} |" in seen[group] for name in names), (group, names, seen[group][:3000])
    assert "| Version 1 |" in seen["model"] and "champion" in seen["model"]
    assert re.search(r"test accuracy \d+\.\d\d% on the test set; from run [0-9a-f]{32}", seen["model"]), seen["model"][:3000]


def test_a_users_first_afternoon(tmp_path: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch,
                                 capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture):
    from digits_bench.compare.__main__ import main as compare
    from digits_bench.ensemble.__main__ import main as ensemble
    from digits_bench.predict.__main__ import main as predict
    from digits_bench.predict.evalset import handwriting_fonts
    from digits_bench.predict.evaluate import main as evaluate
    from digits_bench.register.__main__ import main as register
    from digits_bench.report.__main__ import main as report
    from digits_bench.sweep.__main__ import main as sweep

    monkeypatch.delenv("DIGITS_BENCH_CHECKPOINTS")  # as a user has it: checkpoints inside the store
    checkpoints = isolated_store / "checkpoints"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("JOURNEY_CWD", str(cwd))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # MLflow's knob: samples within a short run
    client = client_for(isolated_store)

    # 1. train, with the progress bar and the model summary a user sees
    first = shell([*TRAIN, "progress_refresh=1"])
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = all_runs(isolated_store)
    run_id = run.info.run_id
    out = first.stdout
    assert out.index(f"run {run_id} started on cpu ") < out.index("model: 431,080 trainable parameters")  # the id, where to watch
    assert f"watch it: python -m digits_bench.ui --store {isolated_store}  ->  http://127.0.0.1:5000/#/experiments/" in out  # no Makefile here
    assert "Tip" not in out + first.stderr and "INFO:" not in out + first.stderr and "v_num" not in out
    assert run.data.tags["overrides"] == " ".join([*TRAIN, "progress_refresh=1"])  # what was typed, from Hydra's record
    # into a pipe, as here: one line an epoch on stderr, no bar's carriage returns or cursor codes anywhere
    epochs = [line for line in first.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[0] for line in epochs] == ["epoch 0 (1 of 3)", "epoch 1 (2 of 3)", "epoch 2 (3 of 3)"], first.stderr
    assert all(re.search(r"  train/loss \d\.\d{4}  train/acc \d\.\d{4}  val/loss \d\.\d{4}  val/acc \d\.\d{4}  \d+\.\d\d s$", e) for e in epochs)
    assert "\r" not in first.stdout + first.stderr and "\x1b" not in first.stdout + first.stderr
    assert re.search(r"\nmodel: 431,080 trainable parameters \(1\.72 MB\), \d+(\.\d+)? M FLOPs an image ", out)  # one line
    assert out.count("test/acc=") == 1 and out.count(f"run {run_id}  recipe=custom") == 1  # one summary, at the end
    assert run.info.status == "FINISHED" and run.data.tags["journey"] == "" and run.data.params["model"] == "lenet"
    links = {"run": printed_link(out)}
    inputs = {i.tags[0].value: json.loads(i.dataset.profile)["split_sizes"] for i in run.inputs.dataset_inputs}
    assert inputs == {"training": {"train": 2000, "val": 500}, "evaluation": {"test": 500}}  # this run's own splits
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    assert run.data.tags["mlflow.source.name"] == "python -m digits_bench"
    assert sorted(p.name for p in (checkpoints / run_id).iterdir()) == sorted(
        ["last.ckpt", f"best-epoch{int(run.data.metrics['best_epoch']):02d}.ckpt"])

    # 2. a sweep of one's own: the example file of docs/architecture.md, made tiny from the command line
    guide = (ROOT / "docs" / "architecture.md").read_text()
    (tmp_path / "my_lenet.yaml").write_text(re.search(r"```yaml\n(name: my_lenet\n.*?)```", guide, re.S).group(1))
    code, out = verb(sweep, [str(tmp_path / "my_lenet.yaml"), *TINY, "--n-trials", "2"], capfd)
    assert code == 0
    (parent,) = [r for r in all_runs(isolated_store) if r.data.tags.get("sweep.role") == "parent"]
    trials = [r for r in all_runs(isolated_store) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and len(trials) == 2 and parent.info.run_id in out
    assert sorted(r.info.run_name.split(" ")[1] for r in trials) == ["#0", "#1"] and all(r.info.run_name.startswith("my_lenet #") for r in trials)
    assert parent.data.metrics["val/acc"] == max(r.data.metrics["val/acc"] for r in trials)
    links["sweep"] = printed_link(out)

    # 3. a Hydra multirun: its jobs nest under one parent run, Hydra writes nothing into the working directory
    multi = shell(["-m", "model=linear,mlp_128_64", *TINY], runs=2)
    assert multi.returncode == 0, multi.stderr[-3000:]
    lines = multi.stdout.splitlines()
    assert "[HYDRA] Launching 2 jobs locally" in lines and any(line.startswith("[HYDRA] \t#1 : model=mlp_128_64 ") for line in lines)
    (group,) = [r for r in all_runs(isolated_store) if r.data.tags.get("multirun.role") == "parent"]
    jobs = [r for r in all_runs(isolated_store) if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
    assert group.info.status == "FINISHED" and group.info.run_name.startswith("multirun: model=linear,mlp_128_64")
    assert group.data.params["data.subset"] == "512" and "model" not in group.data.params  # what its jobs share
    assert group.data.metrics["val/acc_best_best"] == max(r.data.metrics["val/acc_best"] for r in jobs)
    links["multirun"] = printed_link(multi.stdout, "multirun: MLflow parent run")
    assert {r.data.tags["multirun.job"]: (r.data.params["model"], r.info.status) for r in jobs} == {
        "0": ("linear", "FINISHED"), "1": ("mlp_128_64", "FINISHED")}
    assert sorted(r.info.run_name.split(" ")[:2] for r in jobs) == [["linear", "#0"], ["mlp_128_64", "#1"]]  # as sweep trials
    assert list(cwd.iterdir()) == []  # no multirun/, outputs/ or .hydra/ folder
    assert [p.name for p in tmp_path.glob("digits_bench-multirun-*/*")] == ["multirun.yaml"]  # Hydra's one file, in TMPDIR

    # 4. compare a recipe over 2 seeds: mean ± std printed, a parent run holding it
    code, out = verb(compare, ["experiment=seed004_linear", *TINY, "--seeds", "2"], capfd)
    assert code == 0
    (summary,) = [line for line in out.splitlines() if line.startswith("seed004_linear: test/acc")]
    assert re.search(r"test/acc \d+\.\d\d ± \d+\.\d\d % over 2 seed\(s\)  parent run [0-9a-f]{32}$", summary)
    (compared,) = [r for r in all_runs(isolated_store) if r.info.run_name == "compare:seed004_linear"]
    assert compared.info.status == "FINISHED" and compared.info.run_id in summary
    assert {"test/acc_mean", "test/acc_std", "test/acc_best", "val/acc_best_mean"} <= set(compared.data.metrics)
    assert compared.data.params["model"] == "linear" and "seed" not in compared.data.params  # what its seeds share
    links["compare"] = printed_link(out)

    # 5. the report, after a sweep (it once crashed there): every row, the study's plots
    results = tmp_path / "results"
    assert verb(report, ["--out", str(results)], capfd)[0] == 2  # every run here is on a data subset: left out by default
    code, out = verb(report, ["--out", str(results), "--all"], capfd)
    assert code == 0 and max(map(len, out.splitlines()[:-1])) <= 100, out  # a summary; every column in leaderboard.md
    assert out.splitlines()[-1].startswith(f"every column (optimizer, schedule, claims, times to 99%, runs): {results}/leaderboard.md")
    board = pd.read_csv(results / "leaderboard.csv")
    (row,) = board[board["recipe"].str.startswith("seed004_linear [")].itertuples()  # a tiny run names how it deviates
    assert row.n_seeds == 2 and "data.subset=512" in row.recipe and (results / "leaderboard.md").stat().st_size > 0
    assert len(board) == 4  # the first training, 2 multirun jobs, the seeds' row; sweep trials never read the test set
    seeds = [r for r in all_runs(isolated_store) if r.data.tags.get("mlflow.parentRunId") == compared.info.run_id]
    accs = [r.data.metrics["test/acc"] for r in seeds]
    assert set(row.run_ids.split()) == {r.info.run_id for r in seeds} and row.params == 7850 and row.epochs == 1
    assert row.test_acc_mean == pytest.approx(sum(accs) / 2) == compared.data.metrics["test/acc_mean"]
    assert row.test_acc_std == pytest.approx(pd.Series(accs).std()) and "test/acc" not in compared.data.metrics
    for name in ("runs.csv", "accuracy_vs_params.png", "accuracy_vs_time.png", "validation_curves.png"):
        assert (results / name).stat().st_size > 0

    # 6. the validation-chosen ensemble of the compared seeds
    code, out = verb(ensemble, ["seed004_linear"], capfd)
    assert code == 0 and "chosen on validation:" in out
    (combined,) = [r for r in all_runs(isolated_store) if "ensemble.members" in r.data.tags]
    assert combined.info.status == "FINISHED" and set(combined.data.tags["ensemble.members"].split()) <= {
        r.info.run_id for r in all_runs(isolated_store) if r.data.tags.get("compare.recipe") == "seed004_linear"}

    # 7. the first training again, killed with SIGKILL in its second epoch, then resumed as its hint says
    before = {r.info.run_id for r in all_runs(isolated_store)}
    killed = subprocess.Popen([sys.executable, "-m", "digits_bench", *TRAIN], cwd=cwd, env=os.environ | {"PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not [p for p in checkpoints.glob("*/last.ckpt") if p.parent.name not in before]:
        time.sleep(0.2)
    time.sleep(0.5)  # into the second epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    (again,) = [r for r in all_runs(isolated_store) if r.info.run_id not in before]
    assert again.info.status == "RUNNING"  # what SIGKILL leaves behind
    code, out = verb(resume, [f"resume={again.info.run_id}"], capfd)  # the CLI's entry for `python -m digits_bench resume=ID`
    assert code == 0 and f"run {again.info.run_id} resumed on cpu " in caplog.text  # a log line: in this process, caplog's
    assert "Checkpoint directory" not in out + caplog.text and "Downloading" not in out

    def history(run_id: str, key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))

    for key in ("epoch", "lr", "train/loss", "train/acc", "val/loss", "val/acc"):  # exactly one value an epoch
        assert [step for step, _ in history(again.info.run_id, key)] == [0, 1, 2], key
    assert history(again.info.run_id, "val/acc") == history(run_id, "val/acc")  # dropout, augmentation: as uninterrupted
    after = client.get_run(again.info.run_id)
    assert after.info.status == "FINISHED" and after.data.metrics["test/acc"] == run.data.metrics["test/acc"]
    assert sorted(p.name for p in (checkpoints / again.info.run_id).iterdir()) == sorted(
        ["last.ckpt", f"best-epoch{int(after.data.metrics['best_epoch']):02d}.ckpt"])

    # 8. register the best run's model, and read the README's photo with the best run and with the registered model
    code, out = verb(register, ["digits", "--experiment", "digits_bench", "--best", "--alias", "champion"], capfd)
    assert code == 0 and "models:/digits/1 (alias champion)" in out and "--model models:/digits@champion" in out
    links["model"] = printed_link(out)
    code, out = verb(predict, ["--experiment", "digits_bench", "--best", str(EXAMPLE)], capfd)
    assert code == 0 and "digits read by" in out and "year_2017.png" in out
    code, out = verb(predict, ["--model", "models:/digits/1", "--json", str(EXAMPLE)], capfd)
    assert code == 0 and '"source": "models:/digits/1"' in out
    if handwriting_fonts():  # and how it reads other writers: `make predict-eval RUN=<id>`, a small set
        code, out = verb(evaluate, ["--model", "models:/digits/1", "--per-condition", "2", "--held-out", "10",
                                     "--out", str(results)], capfd)
        assert code == 0 and out.splitlines()[-1].startswith(f"wrote {results}/predict-eval-")
        lines = out.splitlines()
        (overall,) = [line for line in lines if line.startswith("overall (not MNIST)")]
        (held_out,) = [line for line in lines if line.startswith("scikit-learn 8x8 (held out)")]
        assert lines[0].split()[:4] == ["source", "single", "digits", "%"] and [line.split()[0] for line in lines[2:4]] == ["fonts", "strokes"]
        assert held_out.split()[-3:-1] == ["—", "—"] and "nan" not in out.lower()  # single digits only: no rows

    # 9. browse it all in MLflow's UI: `make ui` (here on a free port), then every link printed above, each in a
    # browser that has never seen MLflow (a new profile each): Model-training mode, the right page, what it shows
    if CHROMIUM:
        browse(isolated_store, links, run, [r.info.run_name for r in trials], [r.info.run_name for r in seeds],
               [r.info.run_name for r in jobs])

    # the store at the end: every run closed, each step's runs and nothing else
    final = all_runs(isolated_store)
    assert {r.info.status for r in final} == {"FINISHED"}
    assert len(final) == 1 + 3 + 3 + 3 + 1 + 1  # train; sweep + 2; multirun + 2; compare + 2; ensemble; killed-resumed
    assert list(cwd.iterdir()) == []
