"""Outgrowing one machine: a run whose processes are started by torchrun on several nodes (here two nodes of one
process each on 127.0.0.1, gloo on the CPU) is one MLflow run, opened and closed by rank 0."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TINY, all_runs

TWO_NODES = ["trainer=ddp_sim", "trainer.devices=1", "trainer.num_nodes=2", "model=linear", *TINY]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_nodes(overrides: list[str], nodes: int = 2) -> list[subprocess.Popen]:
    """`torchrun --nnodes N --nproc-per-node 1 --node-rank R --master-addr 127.0.0.1 ... -m digits_bench OVERRIDES`,
    once per node, as a cluster user types it on each node."""
    port = free_port()
    return [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--nproc-per-node", "1",
                              "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                              "-m", "digits_bench", *overrides],
                             cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank in range(nodes)]


@pytest.mark.fit
def test_torchrun_on_two_nodes_trains_one_run(isolated_store: Path):
    nodes = torchrun_nodes(TWO_NODES)
    (out0, err0), (out1, err1) = (node.communicate(timeout=240) for node in nodes)
    assert [node.returncode for node in nodes] == [0, 0], (err0[-2000:], err1[-2000:])
    (only,) = all_runs(isolated_store)  # rank 1 joined rank 0's run: no second, empty one
    assert only.info.status == "FINISHED" and "test/acc" in only.data.metrics
    assert out0.startswith(f"run {only.info.run_id}") and out1 == ""  # results once, from rank 0
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in err1  # the second node trained as rank 1 of 2


def test_the_other_ranks_join_rank_zeros_run_or_end_in_one_line(monkeypatch: pytest.MonkeyPatch):
    """Through torchrun's store (a real TCPStore here, as torchrun's agent holds it): rank 1 gets the run rank 0
    published; when rank 0 could not open one (it publishes ""), rank 1 ends in one line instead of training alone."""
    from torch.distributed import TCPStore

    from digits_bench.errors import RunFailed
    from digits_bench.tracking import handoff

    port = free_port()
    agent = TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)  # noqa: F841 - held open: the agent's store
    for key, value in {"TORCHELASTIC_RUN_ID": "job1", "WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    assert handoff.torchrun_rank() == 0
    handoff.publish_to_ranks("r" * 32)
    monkeypatch.setenv("RANK", "1")
    assert handoff.run_of_rank_zero() == "r" * 32
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # a restarted job: rank 0 opens (or fails) anew
    monkeypatch.setenv("RANK", "0")
    handoff.publish_to_ranks("")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RunFailed, match="^rank 1: rank 0 could not open the MLflow run; its error says why$"):
        handoff.run_of_rank_zero()
