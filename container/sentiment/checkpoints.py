"""Training checkpoints (SageMaker's /opt/ml/checkpoints): resume a stopped job where it was.

A checkpoint is a pair of files per stage: `<stage>.safetensors` (tensors) and `<stage>.json`
(everything else, plus the tensors' sha256). Both are written atomically, JSON last, so a job killed
mid-write leaves the previous complete checkpoint. Nothing is pickled: optimizer and random-number
states are split into tensors and JSON numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from sentiment.files import atomic_writer, file_digest, read_json, write_json_atomic

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sentiment-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    document: dict[str, Any]


class CheckpointStore:
    """Checkpoints of one training job in one folder, keyed by stage ("vectors", "lstm", ...).

    `job` identifies the job (hyperparameters and data); a checkpoint written by another job is
    ignored with a warning rather than resumed, since its state would not fit this one.
    """

    def __init__(self, directory: Path | None, job: str) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.job = job

    def keyed(self, job: str) -> CheckpointStore:
        """The same folder for a stage that depends on less than the whole job (its own key): another job
        that agrees on what the stage reads resumes it or reuses its result."""
        return CheckpointStore(self.directory, job)

    def save(self, stage: str, tensors: dict[str, torch.Tensor], document: dict[str, Any]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = self.directory / f"{stage}.safetensors"
        with atomic_writer(weights) as handle:
            handle.write(save({name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}))
        write_json_atomic(
            self.directory / f"{stage}.json",
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "job": self.job,
                "sha256": file_digest(weights),
                **document,
            },
        )

    def load(self, stage: str) -> Checkpoint | None:
        """The stage's checkpoint, or None when there is none usable (each reason is logged)."""
        if self.directory is None or not (self.directory / f"{stage}.json").is_file():
            return None
        weights = self.directory / f"{stage}.safetensors"
        try:
            document = read_json(self.directory / f"{stage}.json")
            if document.get("format") != CHECKPOINT_FORMAT or document.get("version") != CHECKPOINT_VERSION:
                log.warning("checkpoint %s: unknown format, starting this stage afresh", stage)
                return None
            if document.get("job") != self.job:
                log.warning("checkpoint %s belongs to another job (other data or settings); starting afresh", stage)
                return None
            if not weights.is_file() or file_digest(weights) != document.get("sha256"):
                log.warning("checkpoint %s: tensors missing or changed, starting this stage afresh", stage)
                return None
            return Checkpoint(tensors=load_file(weights), document=document)
        except (ValueError, OSError) as error:
            log.warning("checkpoint %s is unreadable (%s); starting this stage afresh", stage, error)
            return None


def optimizer_to_checkpoint(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors and JSON (param_groups and scalar state)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_checkpoint(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in checkpoint.tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    for key, value in checkpoint.document["optimizer"]["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": checkpoint.document["optimizer"]["param_groups"]})
