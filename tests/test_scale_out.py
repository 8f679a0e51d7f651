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


@pytest.mark.fit
def test_when_rank_zero_cannot_open_the_run_every_node_ends_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store rank 0 cannot write: rank 0 says why; the other node does not wait out a timeout or train alone."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    monkeypatch.setenv("DIGITS_BENCH_STORE", str(blocked))
    nodes = torchrun_nodes(TWO_NODES)
    (_, err0), (_, err1) = (node.communicate(timeout=240) for node in nodes)
    ours = [[line for line in err.splitlines() if line.startswith("digits_bench: error:")] for err in (err0, err1)]
    assert ours[1] == ["digits_bench: error: rank 1: rank 0 could not open the MLflow run; its error says why"], err1[-2000:]
    assert len(ours[0]) == 1 and str(blocked) in ours[0][0], err0[-2000:]
    assert all(node.returncode != 0 for node in nodes)
