"""sentiment.distributed: rank numbering, the one-rank group, and real two-rank groups over gloo (two
processes on this machine): collectives, and a failed or killed rank named by its peer."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from sentiment.distributed import SOLO, RankFailure, Rendezvous, start
from tests.conftest import free_port

HOSTS = ("algo-1", "algo-2")


def test_ranks_are_numbered_host_by_host_as_torchrun_numbers_them() -> None:
    rendezvous = Rendezvous(hosts=HOSTS, host_rank=1, local_rank=2, local_ranks=4)
    assert (rendezvous.rank, rendezvous.world_size, rendezvous.host) == (6, 8, "algo-2")


def test_a_group_of_one_starts_nothing_and_gives_back_each_input() -> None:
    array = np.arange(3)
    assert SOLO.sum(array) is array and SOLO.gather("x") == ["x"] and SOLO.broadcast(4) == 4
    assert SOLO.same(7) and SOLO.is_master and not SOLO.distributed
    assert start(Rendezvous(hosts=("algo-1",), host_rank=0)).world_size == 1


def _collectives(host_rank: int, port: int, out: str) -> None:
    group = start(Rendezvous(hosts=HOSTS, host_rank=host_rank, master_port=port))
    results = {
        "sum": group.sum(np.array([1.5, host_rank], dtype=np.float64)).tolist(),
        "gather": group.gather({"rank": host_rank}),
        "broadcast": group.broadcast(f"from {host_rank}"),
        "same": group.same("alike"),
        "differ": group.same(host_rank),
        "max": group.max(10 + host_rank),
    }
    group.barrier()
    group.close()
    Path(out, f"{host_rank}.json").write_text(json.dumps(results))


def _fails(host_rank: int, port: int, out: str) -> None:
    group = start(Rendezvous(hosts=HOSTS, host_rank=host_rank, master_port=port))
    if host_rank == 1:
        group.publish_failure("DataError: channel 'train': line 3: not valid JSON")
        os._exit(1)  # as a failing rank leaves: its connections close
    try:
        group.gather("waits for rank 1")
    except RankFailure as error:
        Path(out, "0.txt").write_text(str(error))


def _master_fails(host_rank: int, port: int, out: str) -> None:
    group = start(Rendezvous(hosts=HOSTS, host_rank=host_rank, master_port=port))
    if host_rank == 0:
        group.publish_failure("DataError: channel 'test': no reviews")  # returns once rank 1 has read it
        os._exit(1)
    try:
        group.gather("waits for rank 0")
    except RankFailure as error:
        Path(out, "1.txt").write_text(str(error))


def _killed(host_rank: int, port: int, out: str) -> None:
    group = start(Rendezvous(hosts=HOSTS, host_rank=host_rank, master_port=port))
    group.barrier()
    if host_rank == 1:
        os._exit(9)  # no word left behind, as under SIGKILL
    try:
        group.gather("waits for rank 1")
    except RankFailure as error:
        Path(out, "0.txt").write_text(str(error))


def run_two_ranks(target: object, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=target, args=(rank, port, str(tmp_path))) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert not process.is_alive()


def test_two_ranks_sum_gather_broadcast_and_agree(tmp_path: Path) -> None:
    run_two_ranks(_collectives, tmp_path)
    for rank in range(2):
        results = json.loads((tmp_path / f"{rank}.json").read_text())
        assert results == {
            "sum": [3.0, 1.0],
            "gather": [{"rank": 0}, {"rank": 1}],
            "broadcast": "from 0",
            "same": True,
            "differ": False,
            "max": 11,
        }


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (_fails, "algo-2 (rank 1 of 2) failed: DataError: channel 'train': line 3: not valid JSON"),
        (_killed, "algo-2 (rank 1 of 2) stopped during training ("),
    ],
)
def test_a_rank_that_fails_or_dies_is_named_by_its_peer(tmp_path: Path, target: object, reason: str) -> None:
    run_two_ranks(target, tmp_path)
    assert (tmp_path / "0.txt").read_text().startswith(reason)


def test_a_failing_master_keeps_the_store_up_until_its_peer_has_read_why(tmp_path: Path) -> None:
    run_two_ranks(_master_fails, tmp_path)
    assert (tmp_path / "1.txt").read_text() == "algo-1 (rank 0 of 2) failed: DataError: channel 'test': no reviews"
