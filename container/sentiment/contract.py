"""SageMaker's container contract: paths under /opt/ml and the environment variables that move them.

| variable                | default                          | meaning                                  |
| ----------------------- | -------------------------------- | ---------------------------------------- |
| SAGEMAKER_BASE_DIR      | /opt/ml                          | root of every path below (local runs)    |
| SM_INPUT_CONFIG_DIR     | <base>/input/config              | hyperparameters.json and friends         |
| SM_CHANNEL_<NAME>       | <base>/input/data/<name>         | one folder per training channel          |
| SM_MODEL_DIR            | <base>/model                     | the model; SageMaker packs model.tar.gz  |
| SM_OUTPUT_DIR           | <base>/output                    | `failure` (the reason a job failed)      |
| SM_OUTPUT_DATA_DIR      | <base>/output/data               | other outputs (the evaluation report)    |
| SM_CHECKPOINT_DIR       | <base>/checkpoints               | checkpoints (SageMaker syncs them to S3) |
| SENTIMENT_CACHE_DIR     | /tmp/sentiment-cache             | columnar copies of aclImdb channels      |

The names follow the sagemaker-training toolkit's, which sets the SM_* variables when it runs
training. Only the entry points (`train_job`, later `serve`) read this module; everything below them
takes paths as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sentiment.files import write_bytes_atomic

FAILURE_REASON_LIMIT = 1024  # SageMaker shows the first 1,024 characters as FailureReason


@dataclass(frozen=True)
class TrainingPaths:
    hyperparameters: Path
    channels: Path  # the folder holding one folder per channel
    channel_overrides: Mapping[str, Path]
    model: Path
    output: Path
    output_data: Path
    checkpoints: Path
    cache: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> TrainingPaths:
        base = Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        output = Path(environ.get("SM_OUTPUT_DIR", base / "output"))
        return cls(
            hyperparameters=Path(environ.get("SM_INPUT_CONFIG_DIR", base / "input" / "config"))
            / "hyperparameters.json",
            channels=base / "input" / "data",
            channel_overrides={
                name.removeprefix("SM_CHANNEL_").lower(): Path(value)
                for name, value in environ.items()
                if name.startswith("SM_CHANNEL_")
            },
            model=Path(environ.get("SM_MODEL_DIR", base / "model")),
            output=output,
            output_data=Path(environ.get("SM_OUTPUT_DATA_DIR", output / "data")),
            checkpoints=Path(environ.get("SM_CHECKPOINT_DIR", base / "checkpoints")),
            cache=Path(environ.get("SENTIMENT_CACHE_DIR", "/tmp/sentiment-cache")),
        )

    def channel(self, name: str) -> Path | None:
        """The folder of channel `name`, or None when the job has no such channel."""
        path = self.channel_overrides.get(name, self.channels / name)
        return path if path.is_dir() else None

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    def write_failure(self, reason: str) -> None:
        """Record why training failed, for DescribeTrainingJob's FailureReason."""
        write_bytes_atomic(self.failure, reason[:FAILURE_REASON_LIMIT].encode("utf-8", "replace"))


# What the training job prints (`epoch=3 train_loss=0.2345 val_loss=0.2601 val_acc=0.9061 ...`), as
# the regular expressions a SageMaker training job's MetricDefinitions use to chart it.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"epoch=\d+ train_loss=([0-9.]+)"},
    {"Name": "validation:loss", "Regex": r"epoch=\d+ .*val_loss=([0-9.]+)"},
    {"Name": "validation:accuracy", "Regex": r"epoch=\d+ .*val_acc=([0-9.]+)"},
    {"Name": "validation:ensemble_accuracy", "Regex": r"val_acc_ensemble=([0-9.]+)"},
    {"Name": "test:accuracy", "Regex": r"test_acc=([0-9.]+)"},
    {"Name": "test:roc_auc", "Regex": r"test_auc=([0-9.]+)"},
]
