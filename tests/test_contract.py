"""sentiment.contract: SageMaker's paths and serving settings, their environment overrides, and the metric regexes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sentiment.contract import (
    DEFAULT_MASTER_PORT,
    FAILURE_REASON_LIMIT,
    METRIC_DEFINITIONS,
    Cluster,
    ClusterError,
    ServingSettings,
    SettingsError,
    TrainingPaths,
    channel_distributions,
)


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
    assert (settings.host, settings.port, settings.threads, settings.timeout) == ("0.0.0.0", 8080, 8, 60)
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


def config_paths(tmp_path: Path, resource_config: object | None = None) -> TrainingPaths:
    paths = TrainingPaths.from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    paths.resource_config.parent.mkdir(parents=True, exist_ok=True)
    if resource_config is not None:
        paths.resource_config.write_text(json.dumps(resource_config))
    return paths


def test_the_cluster_is_resourceconfigs_hosts_sorted_with_the_first_as_master(tmp_path: Path) -> None:
    paths = config_paths(
        tmp_path, {"current_host": "algo-1", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"}
    )
    cluster = Cluster.from_files(paths, {})
    assert cluster.hosts == ("algo-1", "algo-2") and cluster.host_rank == 0 and cluster.network_interface == "eth0"
    assert (cluster.master_address, cluster.master_port) == ("algo-1", DEFAULT_MASTER_PORT)
    moved = Cluster.from_files(paths, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"})
    assert (moved.master_address, moved.master_port) == ("127.0.0.1", 29999)


def test_without_resourceconfig_the_job_is_this_machine_alone(tmp_path: Path) -> None:
    cluster = Cluster.from_files(config_paths(tmp_path), {})
    assert len(cluster.hosts) == 1 and cluster.host_rank == 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, "'current_host' 'algo-3' is not one of the hosts"),
        ({"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}, "names a host twice"),
        ({"current_host": "algo-1", "hosts": []}, "'hosts' must be a non-empty list"),
        ({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": 3}, "network_interface_name"),
        ([], "'hosts' must be a non-empty list"),
    ],
)
def test_a_resourceconfig_that_describes_no_usable_cluster_is_refused(
    tmp_path: Path, document: object, message: str
) -> None:
    with pytest.raises(ClusterError, match=re.escape(message)):
        Cluster.from_files(config_paths(tmp_path, document), {})


def test_each_channels_distribution_defaults_to_fully_replicated(tmp_path: Path) -> None:
    path = tmp_path / "inputdataconfig.json"
    assert channel_distributions(path) == {}
    path.write_text(
        json.dumps({"train": {"S3DistributionType": "ShardedByS3Key"}, "test": {"TrainingInputMode": "File"}})
    )
    assert channel_distributions(path) == {"train": "ShardedByS3Key", "test": "FullyReplicated"}
    path.write_text(json.dumps({"train": {"S3DistributionType": "Sharded"}}))
    with pytest.raises(ClusterError, match="S3DistributionType must be one of FullyReplicated, ShardedByS3Key"):
        channel_distributions(path)
