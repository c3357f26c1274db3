"""sentiment.contract: SageMaker's paths, their environment overrides, and the metric regexes."""

from __future__ import annotations

import re
from pathlib import Path

from sentiment.contract import FAILURE_REASON_LIMIT, METRIC_DEFINITIONS, TrainingPaths


def test_default_paths_are_sagemakers() -> None:
    paths = TrainingPaths.from_environment({})
    assert paths.hyperparameters == Path("/opt/ml/input/config/hyperparameters.json")
    assert paths.model == Path("/opt/ml/model") and paths.output_data == Path("/opt/ml/output/data")
    assert paths.failure == Path("/opt/ml/output/failure") and paths.checkpoints == Path("/opt/ml/checkpoints")
    assert paths.channels == Path("/opt/ml/input/data")


def test_every_path_moves_with_the_environment(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    environ = {
        "SAGEMAKER_BASE_DIR": str(tmp_path / "ml"),
        "SM_MODEL_DIR": str(tmp_path / "m"),
        "SM_CHANNEL_TRAIN": str(tmp_path / "elsewhere"),
        "SM_CHECKPOINT_DIR": str(tmp_path / "c"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "d"),
    }
    paths = TrainingPaths.from_environment(environ)
    assert paths.model == tmp_path / "m" and paths.checkpoints == tmp_path / "c" and paths.output_data == tmp_path / "d"
    assert paths.hyperparameters == tmp_path / "ml" / "input" / "config" / "hyperparameters.json"
    assert paths.channel("train") == tmp_path / "elsewhere"
    assert paths.channel("test") is None  # no such folder: the job has no test channel


def test_failure_reasons_are_cut_to_what_sagemaker_shows(tmp_path: Path) -> None:
    paths = TrainingPaths.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    paths.write_failure("x" * 5000)
    assert len(paths.failure.read_text()) == FAILURE_REASON_LIMIT


def test_metric_regexes_match_the_training_log() -> None:
    log = (
        "epoch=3 train_loss=0.1854 val_loss=0.2563 val_acc=0.9060 seconds=57.9\n"
        "val_acc_lstm=0.9092 val_acc_linear=0.9128 val_acc_ensemble=0.9164\n"
        "test_acc=0.9201 test_auc=0.9712 test_reviews=25000\n"
    )
    found = {d["Name"]: re.search(d["Regex"], log)[1] for d in METRIC_DEFINITIONS}
    assert found == {
        "train:loss": "0.1854",
        "validation:loss": "0.2563",
        "validation:accuracy": "0.9060",
        "validation:ensemble_accuracy": "0.9164",
        "test:accuracy": "0.9201",
        "test:roc_auc": "0.9712",
    }
