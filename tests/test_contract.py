"""sentiment.contract: SageMaker's paths and serving settings, their environment overrides, and the metric regexes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sentiment.contract import FAILURE_REASON_LIMIT, METRIC_DEFINITIONS, ServingSettings, SettingsError, TrainingPaths


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


def test_serving_settings_default_to_sagemakers() -> None:
    settings = ServingSettings.from_environment({})
    assert settings.model_dir == Path("/opt/ml/model") and not settings.use_bundled_model
    assert (settings.host, settings.port, settings.threads, settings.timeout) == ("0.0.0.0", 8080, 16, 60)
    assert settings.workers == (os.cpu_count() or 1) and settings.max_batch == 64 and settings.precision == "auto"
    assert settings.max_payload_bytes == 6 * 1024 * 1024
    assert (settings.max_records, settings.max_tokens, settings.max_explained_tokens) == (100_000, 2_000_000, 20_000)


def test_serving_settings_come_from_the_environment() -> None:
    settings = ServingSettings.from_environment(
        {
            "SM_MODEL_DIR": "/models/a",
            "USE_BUNDLED_MODEL": "true",
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "MODEL_SERVER_WORKERS": "3",
            "MODEL_SERVER_TIMEOUT": "5",
            "SENTIMENT_MAX_BATCH": "1",
            "SENTIMENT_MAX_WAIT_MS": "0",
            "SENTIMENT_LOG_REVIEWS": "yes",
            "SENTIMENT_PRECISION": "BFloat16",
        }
    )
    assert settings.model_dir == Path("/models/a") and settings.use_bundled_model and settings.log_reviews
    assert (settings.port, settings.workers, settings.timeout, settings.max_batch) == (9000, 3, 5, 1)
    assert settings.max_wait_ms == 0 and settings.precision == "bfloat16"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("MULTI_RECORD", "MULTI_RECORD"), ("MultiRecord", "MULTI_RECORD"), ("SINGLE_RECORD", "SINGLE_RECORD")],
)
def test_batch_transforms_variables(strategy: str, expected: str) -> None:
    environment = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_BATCH_STRATEGY": strategy, "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    settings = ServingSettings.from_environment(environment)
    assert settings.batch_transform and settings.batch_strategy == expected
    assert settings.max_payload_bytes == 20 * 1024 * 1024
    assert settings.plain_text_lines == (expected == "MULTI_RECORD")
    assert not ServingSettings.from_environment({}).plain_text_lines  # a real-time endpoint: text/plain is one review


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGEMAKER_BATCH_STRATEGY", "ALL_AT_ONCE"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "0"),
        ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "100"),
        ("SENTIMENT_MAX_RECORDS", "0"),
        ("SENTIMENT_MAX_TOKENS", "lots"),
        ("SAGEMAKER_BIND_TO_PORT", "http"),
        ("SAGEMAKER_BIND_TO_PORT", "70000"),
        ("MODEL_SERVER_WORKERS", "0"),
        ("SENTIMENT_MAX_BATCH", "-1"),
        ("USE_BUNDLED_MODEL", "perhaps"),
        ("SENTIMENT_PRECISION", "int4"),
    ],
)
def test_bad_serving_settings_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        ServingSettings.from_environment({name: value})
