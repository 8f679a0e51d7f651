"""Outgrowing one machine (docs/scale-out.md): a run whose processes torchrun or srun start on several nodes (here two
nodes of one process each on 127.0.0.1, gloo on the CPU) is one MLflow run, opened and closed by rank 0; a stop on
either node ends it KILLED and `resume=` continues it on two nodes. Submitit-launched multiruns and sweep workers:
tests/test_multirun.py and tests/test_sweep.py."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, all_runs

TWO_NODES = ["trainer=ddp_sim", "trainer.devices=1", "trainer.num_nodes=2", "model=linear", "tracking.system_metrics=false"]
FAKE_SLURM = Path(__file__).parent / "fake_slurm"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def torchrun_nodes(overrides: list[str], output: Path, nodes: int = 2) -> list[subprocess.Popen]:
    """`torchrun --nnodes N --nproc-per-node 1 --node-rank R --master-addr 127.0.0.1 ... -m digits_bench OVERRIDES`,
    once per node, as a cluster user types it on each node; node R's output goes to `output`.R."""
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--nproc-per-node", "1",
                              "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                              "-m", "digits_bench", *overrides],
                             cwd=ROOT, env=os.environ | {"OMP_NUM_THREADS": "1"}, text=True,
                             stdout=open(f"{output}.{rank}", "w"), stderr=subprocess.STDOUT)
            for rank in range(nodes)]


@pytest.mark.slow
@pytest.mark.fit
def test_torchrun_on_two_nodes_is_one_run_that_a_stop_on_either_kills_and_resume_continues(tmp_path: Path,
                                                                                          isolated_store: Path):
    """SIGTERM to the second node's torchrun (as its scheduler would send) while both train: rank 0, on the other node,
    loses its peer, ends the one run KILLED and says how to resume; the same commands with resume= finish it."""
    first = tmp_path / "first"
    nodes = torchrun_nodes([*TWO_NODES, "data.subset=12000", "data.val_size=500", "data.test_subset=500",
                            "trainer.max_epochs=12"], first)  # epoch lines (no terminal): it is training
    deadline = time.time() + 180
    while time.time() < deadline and "epoch 1 (2 of 12)" not in Path(f"{first}.0").read_text():
        time.sleep(0.2)  # both nodes in their collectives
    nodes[1].send_signal(signal.SIGTERM)
    for node in nodes:
        node.wait(timeout=120)
    (run,) = all_runs(isolated_store)  # rank 1 joined rank 0's run: no second, empty one
    rank0 = Path(f"{first}.0").read_text()
    assert run.info.status == "KILLED", rank0[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in Path(f"{first}.1").read_text()  # the second node trained as rank 1 of 2
    assert (f"interrupted: run {run.info.run_id} is KILLED; continue it from its last finished epoch with the same "
            f"command on every node, with resume={run.info.run_id}") in rank0
    assert "digits_bench: error: another process of this multi-process run was stopped" in rank0
    assert "exitcode  : 143" in rank0  # torchrun's report of its worker: stopped, not failed

    again = tmp_path / "again"
    nodes = torchrun_nodes([f"resume={run.info.run_id}"], again)
    assert [node.wait(timeout=240) for node in nodes] == [0, 0], Path(f"{again}.0").read_text()[-3000:]
    (run,) = all_runs(isolated_store)
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    out0 = Path(f"{again}.0").read_text()
    assert f"run {run.info.run_id}" in out0 and "epoch 11 (12 of 12)" in out0 and "epoch 0 (1 of 12)" not in out0
    assert f"run {run.info.run_id}" not in Path(f"{again}.1").read_text()  # results once, from rank 0


@pytest.mark.slow
@pytest.mark.fit
def test_the_sbatch_example_under_srun_trains_one_run_on_two_nodes(tmp_path: Path, isolated_store: Path):
    """examples/slurm/train.sbatch run as SLURM runs a batch script (its variables set, srun on the PATH: here one
    that starts the two tasks on this machine), on the CPU: one run, logged by rank 0, rank 1 joined through the store
    rank 0 hosts."""
    job = next(j for j in random.sample(range(1000, 5000), 200) if bindable(15000 + j) and bindable(10000 + j))  # free ports
    slurm = {"SLURM_JOB_ID": str(job), "SLURM_JOB_NAME": "digits_bench", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "1",
             "SLURM_NTASKS": "2", "SLURM_NODELIST": "localhost", "SLURM_SUBMIT_DIR": str(ROOT)}
    env = os.environ | slurm | {"PATH": f"{FAKE_SLURM}:{Path(sys.executable).parent}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(ROOT / "examples/slurm/train.sbatch"), "trainer.accelerator=cpu", "trainer.precision=32-true",
                             "trainer.benchmark=false", "model=linear", *TINY], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    (only,) = all_runs(isolated_store)
    assert only.info.status == "FINISHED" and "test/acc" in only.data.metrics
    assert result.stdout.count(f"run {only.info.run_id}  recipe=") == 1  # results once, from rank 0
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout and only.data.params["trainer.num_nodes"] == "2"


@pytest.mark.parametrize("launched_by", ["torchrun", "srun"])
def test_the_other_ranks_join_rank_zeros_run_or_end_in_one_line(launched_by: str, monkeypatch: pytest.MonkeyPatch):
    """Through a real TCPStore (torchrun's agent holds one; under srun rank 0 hosts it): rank 1 gets the run rank 0
    published; when rank 0 could not open one (it publishes ""), rank 1 ends in one line instead of training alone."""
    from torch.distributed import TCPStore

    from digits_bench.errors import RunFailed
    from digits_bench.tracking import handoff

    port = free_port()
    rank = "RANK" if launched_by == "torchrun" else "SLURM_PROCID"
    restart = "TORCHELASTIC_RESTART_COUNT" if launched_by == "torchrun" else "SLURM_RESTART_COUNT"
    if launched_by == "torchrun":
        agent = TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)  # noqa: F841 - held open: the agent's store
        job = {"TORCHELASTIC_RUN_ID": "job1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    else:
        monkeypatch.setattr(handoff, "_hosted", [])
        job = {"SLURM_JOB_ID": "4321", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "localhost",
               handoff.MEETING_PORT: str(port)}
    for key, value in (job | {rank: "0"}).items():
        monkeypatch.setenv(key, value)
    assert handoff.job_rank() == 0
    handoff.publish_to_ranks("r" * 32)
    monkeypatch.setenv(rank, "1")
    assert handoff.job_rank() == 1 and handoff.run_of_rank_zero() == "r" * 32
    monkeypatch.setenv(restart, "1")  # a restarted (requeued) job: rank 0 opens (or fails) anew
    monkeypatch.setenv(rank, "0")
    handoff.publish_to_ranks("")
    monkeypatch.setenv(rank, "1")
    with pytest.raises(RunFailed, match="^rank 1: rank 0 could not open the MLflow run; its error says why$"):
        handoff.run_of_rank_zero()
