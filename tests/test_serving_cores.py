"""sentiment.serving.cores: a large request scores on every core, one worker at a time, and the worker's
share comes back after it; and the app takes them for large bodies only."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from flask.testing import FlaskClient

from sentiment.contract import RUN_FOLDER_VARIABLE, ServingSettings
from sentiment.predictor import Predictor
from sentiment.serving import cores
from sentiment.serving.app import LARGE_BODY_BYTES, create_app
from sentiment.serving.cores import LOCK_NAME, all_cores

CORES = 4


@pytest.fixture(autouse=True)
def one_thread_of_four_cores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A worker's share of one thread on a CPU of four cores, whatever this machine has."""
    monkeypatch.setattr(cores.os, "cpu_count", lambda: CORES)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_core_while_inside_and_the_share_after(tmp_path: Path) -> None:
    with all_cores(tmp_path) as threads:
        assert threads == CORES
        assert torch.get_num_threads() == CORES
    assert torch.get_num_threads() == 1


def test_the_share_comes_back_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="scoring failed"), all_cores(tmp_path):
        raise RuntimeError("scoring failed")
    assert torch.get_num_threads() == 1
    with all_cores(tmp_path) as threads:  # and the lock was let go
        assert threads == CORES


def test_a_worker_keeps_its_share_while_another_holds_every_core(tmp_path: Path) -> None:
    # flock locks belong to an open file: a second opening stands for another worker.
    with open(tmp_path / LOCK_NAME, "a+b") as other_worker:
        fcntl.flock(other_worker, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with all_cores(tmp_path) as threads:
            assert threads == 1
            assert torch.get_num_threads() == 1
    with all_cores(tmp_path) as threads:
        assert threads == CORES


def test_nothing_changes_where_the_share_is_every_core(tmp_path: Path) -> None:
    torch.set_num_threads(CORES)
    with all_cores(tmp_path) as threads:
        assert threads == CORES
    assert torch.get_num_threads() == CORES


def test_the_run_folder_comes_from_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_FOLDER_VARIABLE, str(tmp_path))
    with all_cores() as threads:
        assert threads == CORES
        assert (tmp_path / LOCK_NAME).exists()


def scored_with(client: FlaskClient, predictor: Predictor, body: bytes, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The torch threads of each model call that answered `body`."""
    seen: list[int] = []
    score = Predictor.probabilities_of_tokens

    def watched(self: Predictor, token_lists: object) -> object:
        seen.append(torch.get_num_threads())
        return score(self, token_lists)  # type: ignore[arg-type]

    monkeypatch.setattr(Predictor, "probabilities_of_tokens", watched)
    response = client.post("/invocations", data=body, headers={"Content-Type": "application/jsonlines"})
    assert response.status_code == 200, response.data
    return seen


def test_large_bodies_score_on_every_core_and_small_ones_on_the_share(
    small_ensemble: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_FOLDER_VARIABLE, str(tmp_path))
    app = create_app(ServingSettings.from_environment({}), load=lambda: small_ensemble)
    assert app.extensions["sentiment"].model.wait(10)
    client = app.test_client()
    line = json.dumps({"text": "A superb, moving masterpiece. I loved it. " * 20}).encode() + b"\n"
    large = line * (LARGE_BODY_BYTES // len(line) + 1)
    assert set(scored_with(client, small_ensemble, large, monkeypatch)) == {CORES}
    assert set(scored_with(client, small_ensemble, line * 3, monkeypatch)) == {1}
    assert torch.get_num_threads() == 1
