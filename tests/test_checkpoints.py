"""sentiment.checkpoints: a stage's tensors and document round-trip; another job's, a changed or a half-written
checkpoint is not resumed; optimizer state survives without pickling."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sentiment.checkpoints import CheckpointStore, optimizer_from_checkpoint, optimizer_to_checkpoint


def test_a_stage_round_trips(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, job="job-a")
    store.save("lstm", {"weights": torch.arange(6.0).reshape(2, 3)}, {"epoch": 3, "history": [{"loss": 0.5}]})
    checkpoint = store.load("lstm")
    assert checkpoint is not None and checkpoint.document["epoch"] == 3
    assert torch.equal(checkpoint.tensors["weights"], torch.arange(6.0).reshape(2, 3))
    assert store.load("linear") is None  # never saved


def test_another_jobs_or_a_damaged_checkpoint_starts_the_stage_afresh(tmp_path: Path) -> None:
    CheckpointStore(tmp_path, job="job-a").save("lstm", {"weights": torch.ones(3)}, {"epoch": 1})
    assert CheckpointStore(tmp_path, job="job-b").load("lstm") is None  # other data or settings
    store = CheckpointStore(tmp_path, job="job-a")
    (tmp_path / "lstm.safetensors").write_bytes((tmp_path / "lstm.safetensors").read_bytes()[:-1] + b"\x00")
    assert store.load("lstm") is None  # the tensors no longer match their checksum
    (tmp_path / "lstm.json").write_text("{not json")
    assert store.load("lstm") is None
    document = {"format": "pickle", "version": 1, "job": "job-a"}
    (tmp_path / "lstm.json").write_text(json.dumps(document))
    assert store.load("lstm") is None


def test_without_a_folder_nothing_is_kept(tmp_path: Path) -> None:
    store = CheckpointStore(None, job="")
    store.save("lstm", {"weights": torch.ones(1)}, {})
    assert store.load("lstm") is None and list(tmp_path.iterdir()) == []


def test_optimizer_state_survives_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
    tensors, document = optimizer_to_checkpoint(optimizer)
    store = CheckpointStore(tmp_path, job="j")
    store.save("opt", tensors, {"optimizer": document})
    fresh = torch.optim.AdamW(model.parameters(), lr=0.5)
    checkpoint = store.load("opt")
    assert checkpoint is not None
    optimizer_from_checkpoint(fresh, checkpoint)
    assert fresh.param_groups[0]["lr"] == 0.01
    before, after = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert all(torch.equal(before[key]["exp_avg"], after[key]["exp_avg"]) for key in before)
