"""`make gpu-check` on a machine without a GPU: its one line and exit 2; its verdicts and report from recorded numbers."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from digits_bench.gpu_check import TARGETS, Results, render, speedrun_numbers, verdicts
from digits_bench.gpu_check.__main__ import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU answer")
def test_without_cuda_it_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("digits_bench: error: gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_speedrun_numbers_from_recorded_seeds():
    on = [{"time/train_s": t, "test/acc": a} for t, a in [(0.40, 0.9921), (0.42, 0.9918), (0.41, 0.9915), (0.43, 0.9925), (0.44, 0.9902)]]
    off = [{"time/train_s": t, "test/acc": a} for t, a in [(0.80, 0.9920), (0.82, 0.9917), (0.81, 0.9914), (0.83, 0.9926), (0.84, 0.9903)]]
    measured = speedrun_numbers(on, off)
    assert measured["speedrun_train_s"] == pytest.approx(0.42) and measured["speedrun_min_test_acc"] == 0.9902
    assert measured["graph_speedup"] == pytest.approx(0.82 / 0.42)
    assert measured["graph_acc_gap"] < 0.1  # the same accuracy with and without graphs
    assert speedrun_numbers(on, [])["speedrun_train_s"] == pytest.approx(0.42) and "graph_speedup" not in speedrun_numbers(on, [])


def test_verdicts_pass_fail_and_never_pass_what_was_not_measured():
    rows = {r.key: r for r in verdicts({"speedrun_train_s": 0.45, "speedrun_min_test_acc": 0.9899, "lenet_harness_vs_limit": 1.15})}
    assert rows["speedrun_train_s"].verdict == "pass" and rows["speedrun_train_s"].limit == "<= 0.5 s"
    assert rows["speedrun_min_test_acc"].verdict == "FAIL" and rows["speedrun_min_test_acc"].limit == ">= 0.99"
    assert rows["lenet_harness_vs_limit"].verdict == "pass"  # the limit itself passes
    assert rows["best_epoch_s"].verdict == "not measured" and len(rows) == len(TARGETS)


def test_the_report_is_rewritten_after_every_step(tmp_path: Path):
    """A check cut off by the machine's time limit still leaves what it measured."""
    env = {"device": "NVIDIA H200", "driver": "570.1", "torch": "2.14.1", "cuda": "12.8", "python": "3.12", "commit": "abc",
           "date": "2026-11-29 12:00 UTC"}
    results = Results(tmp_path, env)
    assert results.md.name == "gpu-check-nvidia-h200-2026-11-29.md"
    results.add("speedrun, graphs on and off", {"speedrun_train_s": 0.61}, "| mode | seed |")
    text = results.md.read_text()
    assert "- device: NVIDIA H200" in text and "| speedrun: training time, mean of 5 seeds | <= 0.5 s | 0.61 | FAIL |" in text
    assert "| best: time per epoch (one seed, a few epochs) | <= 0.8 s | — | not measured |" in text
    frame = pd.read_csv(results.csv)
    assert len(frame) == len(TARGETS) and set(frame["verdict"]) == {"FAIL", "not measured"} and (frame["commit"] == "abc").all()
    results.add("best, one seed", {"best_epoch_s": 0.7}, "run x")
    assert "| 0.7 | pass |" in results.md.read_text() and "## best, one seed" in results.md.read_text()
    assert render(verdicts({}), env, {}).count("not measured") == len(TARGETS)
