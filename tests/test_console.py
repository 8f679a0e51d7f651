"""What a user sees: Lightning's messages once and no tips, the `digits-bench` command with its help and tab
completion, early stopping, Ctrl-C's resume hint. A whole run's console, as typed: tests/test_journey.py."""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from lightning.pytorch import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from digits_bench.cli import VERBS
from digits_bench.console import print_table, route_lightning_logs
from digits_bench.tracking.watch import ui_command
from digits_bench.errors import ConfigError
from digits_bench.training.run import train

from .conftest import ROOT, TINY, all_runs, compose

# A tqdm frame: "Epoch 0:  50%|█████     | 4/8 [00:00<00:01, 5.1 batch/s, val/acc=0.9]" (or "0/? [00:00<?, ?it/s]")
FRAME = re.compile(r"[^\r\n]*?\[\d+:\d+<[^\]\r\n]*\]")


def printed_lines(text: str) -> list[str]:
    """The lines a reader sees once progress-bar frames are taken out (they redraw themselves in place)."""
    text = FRAME.sub("\n", text.replace("\x1b[A", ""))
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def test_lightning_messages_reach_the_root_logger_once_and_tips_never(caplog: pytest.LogCaptureFixture):
    route_lightning_logs()
    route_lightning_logs()  # idempotent
    with caplog.at_level(logging.INFO):
        rank_zero_info("hello from lightning")
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero_info("hello from lightning")
    assert [r.getMessage() for r in caplog.records] == ["hello from lightning"]
    assert logging.getLogger("lightning").handlers == [] and logging.getLogger("lightning.pytorch").handlers == []


def test_ui_command_names_the_store_it_will_show(isolated_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    assert ui_command(compose()) == f"make ui STORE={isolated_store}"
    assert ui_command(compose(f"paths.store_dir={ROOT / 'mlruns'}")) == "make ui"
    monkeypatch.chdir(tmp_path)  # no Makefile here: the command that works anywhere
    assert ui_command(compose()) == f"python -m digits_bench.ui --store {isolated_store}"
    assert ui_command(compose("tracking.uri=http://mlflow.lan:5005")) == "browse http://mlflow.lan:5005"


def test_checkpoints_live_in_the_store_unless_told_otherwise(isolated_store: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DIGITS_BENCH_CHECKPOINTS")
    assert compose().paths.checkpoint_dir == f"{isolated_store}/checkpoints"
    monkeypatch.delenv("DIGITS_BENCH_STORE")
    assert compose().paths.checkpoint_dir == "mlruns/checkpoints"  # gitignored, with the default store


@pytest.mark.fit
def test_early_stopping_ends_a_run_that_stops_improving(isolated_store: Path):
    # min_delta=1: no epoch can beat the first by a whole accuracy point, so patience 1 stops after epoch 1
    result = train(compose(*TINY, "model=linear", "trainer.max_epochs=5", "early_stopping.patience=1", "early_stopping.min_delta=1.0"))
    assert result.metrics["epoch"] == 1 and "test/acc" in result.metrics
    assert [r.info.status for r in all_runs(isolated_store)] == ["FINISHED"]


@pytest.mark.parametrize("patience", ["0", "abc", "1.5"])
def test_bad_patience_is_refused_before_a_run_exists(patience: str, isolated_store: Path):
    with pytest.raises(ConfigError, match="early_stopping.patience must be"):
        train(compose(*TINY, f"early_stopping.patience={patience}"))
    assert all_runs(isolated_store) == []


class CtrlC(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:  # epoch 0 left a last.ckpt behind
            raise KeyboardInterrupt


@pytest.mark.fit
def test_ctrl_c_says_how_to_resume(isolated_store: Path, caplog: pytest.LogCaptureFixture):
    previous = signal.getsignal(signal.SIGINT)
    try:
        with caplog.at_level(logging.INFO), pytest.raises(SystemExit):  # Lightning exits after a graceful shutdown
            train(compose(*TINY, "model=linear", "trainer.max_epochs=3"), callbacks=[CtrlC()])
    finally:
        signal.signal(signal.SIGINT, previous)  # Lightning ignores further Ctrl-C while it shuts down
    (run,) = all_runs(isolated_store)
    assert run.info.status == "KILLED"
    assert f"python -m digits_bench resume={run.info.run_id}" in caplog.text
    assert f"run {run.info.run_id} started" in caplog.text


# ---- the digits-bench command ------------------------------------------------------------------

def as_installed(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run the command the way pip's console script does: sys.argv[0] is .../bin/digits-bench."""
    code = "import sys; sys.argv[0] = '/venv/bin/digits-bench'; from digits_bench.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=os.environ | env)


def test_console_script_points_at_a_main_and_every_verb_has_one():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["digits-bench"].partition(":")
    assert callable(getattr(import_module(module), attr))
    for verb, (module, _) in VERBS.items():
        assert callable(import_module(module).main), verb


@pytest.mark.fit
def test_help_header_names_the_command():
    result = as_installed(["--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("digits-bench: train, sweep and compare") and "powered by Hydra" not in result.stdout
    assert "model: cnn_best" in result.stdout and 'eval "$(digits-bench -sc install=bash)"' in result.stdout
    hydra_help = as_installed(["--hydra-help"]).stdout
    assert 'eval "$(digits-bench -sc install=bash)"' in hydra_help  # the install line names the installed command


@pytest.mark.fit
@pytest.mark.parametrize(("line", "expected", "absent"), [
    ("digits-bench mod", {"model=", "models"}, set()),
    ("digits-bench model=le", {"model=lenet"}, {"model=vgg"}),
    ("digits-bench train optimizer=adam", {"optimizer=adam", "optimizer=adamw"}, {"optimizer=sgd"}),
    ("digits-bench trainer.max_ep", {"trainer.max_epochs="}, set()),
])
def test_completion_query_answers_for_groups_keys_and_verbs(line: str, expected: set[str], absent: set[str]):
    result = as_installed(["-sc", "query=bash"], COMP_LINE=line, COMP_POINT=str(len(line)))
    assert result.returncode == 0, result.stderr
    words = set(result.stdout.split())
    assert expected <= words and not absent & words


@pytest.mark.fit
def test_bash_completion_installs_and_completes_a_group(tmp_path: Path):
    """The real thing: the script `eval "$(digits-bench -sc install=bash)"` installs, asked by bash."""
    command = tmp_path / "digits-bench"
    command.write_text(f"#!{sys.executable}\nimport sys\nfrom digits_bench.cli import main\nsys.exit(main())\n")
    command.chmod(0o755)
    script = ('eval "$(digits-bench -sc install=bash)"\n'
              'COMP_LINE="digits-bench optimizer=ad"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(digits-bench optimizer=ad); COMP_CWORD=1\n'
              'hydra_bash_completion; echo "${COMPREPLY[*]}"\n')
    env = os.environ | {"PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["optimizer=adam", "optimizer=adamw"]


# ---- make ----------------------------------------------------------------------------------------

def test_make_without_a_target_lists_the_targets():
    result = subprocess.run(["make", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # the target names are coloured
    listed = {line.split()[0] for line in plain.splitlines()[1:] if line.strip()}
    assert {"help", "train", "test", "ui", "dashboard", "sweep", "report"} <= listed


def test_make_ui_and_dashboard_follow_the_store(tmp_path: Path):
    env = os.environ | {"DIGITS_BENCH_STORE": str(tmp_path / "store")}
    dry = [subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env).stdout
           for target in ("ui", "dashboard")]
    assert f"-m digits_bench.ui --store {tmp_path}/store --port 5000" in dry[0]
    assert f"-m digits_bench.dashboard --store {tmp_path}/store --port 8080" in dry[1]


def test_a_table_in_a_pipe_keeps_a_long_file_path_whole(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    from rich.table import Table

    monkeypatch.delenv("COLUMNS", raising=False)  # Rich's default for a pipe: 80 columns
    path = "/check/work/" + "deep/" * 25 + "year_2017.png"
    table = Table(title="digits read by lenet")
    for column in ("image", "read", "digit:probability, left to right"):
        table.add_column(column, overflow="fold")
    table.add_row(path, "2017", "  ".join(f"{d}:99.9%" for d in "2017"))
    print_table(table)
    assert any(path in line for line in capsys.readouterr().out.splitlines())  # one line, neither folded nor cut


# ---- a run's console into a pipe and on a terminal ----------------------------------------------

SHORT_RUN = ["model=linear", "data.subset=2000", "data.val_size=500", "data.test_subset=500", "trainer.max_epochs=2",
             "tracking.figures=false", "tracking.system_metrics=false"]


@pytest.mark.fit
def test_a_run_into_a_pipe_prints_a_line_an_epoch_and_ctrl_c_is_two_lines(isolated_store: Path):
    """Into a pipe: no bar, one line an epoch on stderr, the run's own lines on stdout; Ctrl-C after two epochs ends
    it with the resume hint and the error line, nothing of Lightning's, no blank line."""
    run = subprocess.Popen([sys.executable, "-m", "digits_bench", *SHORT_RUN, "trainer.max_epochs=50"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ | {"COLUMNS": "80"})
    progress = [run.stderr.readline(), run.stderr.readline()]  # type: ignore[union-attr]
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-2000:]
    assert [line.split("  ")[0] for line in progress] == ["epoch 0 (1 of 50)", "epoch 1 (2 of 50)"], progress
    assert all(re.search(r"  train/loss \d\.\d{4}  train/acc \d\.\d{4}  val/loss \d\.\d{4}  val/acc \d\.\d{4}  \d+\.\d\d s$", line)
               for line in progress)
    assert "\r" not in out + err + "".join(progress) and "\x1b" not in out + err + "".join(progress)
    (record,) = all_runs(isolated_store)
    lines = out.splitlines()
    assert lines[3].startswith("model: 7,850 trainable parameters (0.03 MB), 15.7 K FLOPs an image") and "augment" not in out
    assert lines[-1] == (f"interrupted: run {record.info.run_id} is KILLED; continue it from its last finished epoch "
                         f"with `python -m digits_bench resume={record.info.run_id}`") and len(lines) == 5
    assert err.splitlines()[-1] == "digits_bench: error: interrupted" and "Detected KeyboardInterrupt" not in out + err
    assert [line for line in lines if not line.strip()] == []


@pytest.mark.fit
def test_a_run_on_a_terminal_draws_a_bar_an_epoch_on_stderr(isolated_store: Path):
    """Under a pseudo-terminal of 120 columns (as a user's shell) with stdout into a pipe (`... | tee log`): tqdm's
    bar on the terminal, one per epoch, in mini-batches, each left standing at 100%; the results in the pipe, clean."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "digits_bench", *SHORT_RUN], cwd=ROOT, stdin=follower,
                               stdout=subprocess.PIPE, stderr=follower, env=os.environ)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the run ended: its side of the terminal is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = process.stdout.read().decode()  # type: ignore[union-attr]
    assert process.wait(timeout=120) == 0
    os.close(leader)
    seen = b"".join(chunks).decode(errors="replace")
    for epoch in (0, 1):  # 2000 images: 20 mini-batches
        assert re.search(rf"Epoch {epoch}: 100%\|[^|]*\| 20/20 \[[^\]]* batch/s[^\r]*val/acc=[^\r]*\r?\n", seen), seen[-3000:]
    assert "epoch 0 (1 of 2)" not in seen and "test/acc" not in seen
    assert "\r" not in out and "\x1b" not in out and "test/acc=" in out and "model: 7,850 trainable" in out
