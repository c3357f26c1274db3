"""The training contract on a temporary /opt/ml tree: sentiment-train directly and through the toolkit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sentiment.artifacts import load_model
from sentiment.cli.bundle import PROGRAM
from sentiment.cli.train import Job, main, run_ranks_of_host
from sentiment.contract import Cluster, TrainingPaths
from sentiment.data.channels import SENTENCES_DETAILS, read_sentences, write_channel, write_sentences
from sentiment.hyperparameters import parse_hyperparameters
from tests.conftest import free_port
from tests.test_training import made_up, soft_sentences

# SageMaker writes every hyperparameter value as a string.
HYPERPARAMETERS = {
    "model": "ensemble", "epochs": "2", "embedding_dim": "16", "hidden_dim": "16", "batch_size": "16",
    "vocab_size": "300", "min_count": "1", "learning_rate": "0.01", "ngram_min_count": "1",
}  # fmt: skip


def opt_ml(
    root: Path, hyperparameters: dict[str, str] | None = None, channels: tuple[str, ...] = ("train", "test")
) -> Path:
    """A SageMaker-shaped tree: config files as SageMaker writes them, and JSON Lines channels."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    for folder in ("model", "output", "checkpoints"):  # SageMaker creates (or mounts) these
        (root / folder).mkdir()
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or HYPERPARAMETERS))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config / "inputdataconfig.json").write_text(json.dumps({name: {"TrainingInputMode": "File"} for name in channels}))
    sizes = {"train": 200, "validation": 60, "test": 80, "unlabeled": 60}
    for seed, name in enumerate(channels):
        table = made_up(sizes[name], seed)
        if name == "unlabeled":
            table.label[:] = -1
        write_channel(table, root / "input" / "data" / name, name, "jsonl")
    return root


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in [key for key in os.environ if key.startswith(("SM_", "SAGEMAKER_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "ml"))
    monkeypatch.setenv("SENTIMENT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "ml"


def test_training_writes_the_model_card_metrics_and_report(environment: Path) -> None:
    opt_ml(environment, channels=("train", "test", "unlabeled"))
    assert main([]) == 0
    model = environment / "model"
    assert {p.name for p in model.iterdir()} == {
        "model.json",
        "weights.safetensors",
        "vocabulary.json",
        "metrics.json",
        "card.json",
        "card.md",
    }
    predictor = load_model(model)
    assert predictor.family == "ensemble"
    assert predictor.predict(["superb moving masterpiece loved"])[0].label == "positive"
    card = json.loads((model / "card.json").read_text())
    assert card["hyperparameters"]["epochs"] == 2 and card["data"]["train"]["reviews"] == 180
    assert len(card["data"]["train"]["sha256"]) == 64 and card["test"]["reviews"] == 80
    assert {"cpu", "threads", "torch"} <= set(card["hardware"]) and card["git_commit"]
    assert "Test accuracy" in (model / "card.md").read_text()
    traffic = card["traffic"]  # the figures sentiment-drift compares with, from the validation reviews
    assert traffic["source"] == "validation" and traffic["reviews"] == card["data"]["validation"]["reviews"]
    assert traffic["sha256"] == card["data"]["validation"]["sha256"] and 0 <= traffic["uncertain_share"] <= 1
    assert "## Traffic it was made for" in (model / "card.md").read_text()
    report = environment / "output" / "data"
    assert (report / "evaluation.html").read_text().count("<svg") >= 4
    assert json.loads((report / "evaluation.json").read_text())["metrics"]["accuracy"] >= 0.9
    assert not (environment / "output" / "failure").exists()
    assert {p.name for p in (environment / "checkpoints").iterdir()} >= {"lstm.json", "linear.json"}


def test_flags_override_the_hyperparameters_file(environment: Path, capsys: pytest.CaptureFixture) -> None:
    opt_ml(environment, channels=("train",))
    assert main(["--model", "linear"]) == 0
    assert json.loads((environment / "model" / "model.json").read_text())["family"] == "linear"
    assert "validation: 20 reviews carved from train" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        ({"epochs": "ten"}, "Invalid hyperparameters: hyperparameter --epochs: 'ten' is not a whole number"),
        ({"epoch": "3"}, "Invalid hyperparameters: unknown hyperparameter '--epoch'"),
        ({"model": "xgboost"}, "'xgboost' is not one of lstm, linear, ensemble"),
        ({"grad_clip": "nan"}, "Invalid hyperparameters: hyperparameter --grad-clip/--grad_clip: 'nan' is not"),
        ({"learning_rate": "nan"}, "--learning_rate: 'nan' is not a finite number"),
    ],
)
def test_bad_hyperparameters_fail_before_any_work(environment: Path, hyperparameters: dict, reason: str) -> None:
    opt_ml(environment, hyperparameters=hyperparameters)
    assert main([]) == 1
    assert reason in (environment / "output" / "failure").read_text()
    assert not any((environment / "model").iterdir()) and not any((environment / "checkpoints").iterdir())


def test_missing_or_bad_channels_fail_with_the_reason(environment: Path) -> None:
    opt_ml(environment, channels=())
    assert main([]) == 1
    assert "DataError: no train channel" in (environment / "output" / "failure").read_text()

    (environment / "output" / "failure").unlink()
    (environment / "input" / "data" / "train").mkdir(parents=True)
    (environment / "input" / "data" / "train" / "part.jsonl").write_bytes(b'{"text": "caf\xe9", "label": 1}\n')
    assert main([]) == 1
    assert "part.jsonl: line 1: bytes are not UTF-8" in (environment / "output" / "failure").read_text()


def test_a_channel_of_one_class_fails_naming_it(environment: Path) -> None:
    opt_ml(environment, channels=())
    table = made_up(100, 3)
    table.label[:] = 1
    write_channel(table, environment / "input" / "data" / "train", "train", "jsonl")
    assert main([]) == 1
    failure = (environment / "output" / "failure").read_text()
    assert "channel 'train': all 90 reviews are positive, none negative" in failure
    assert not any((environment / "model").iterdir())


def test_a_lone_surrogate_fails_naming_the_file_and_line(environment: Path) -> None:
    opt_ml(environment, channels=())
    train = environment / "input" / "data" / "train"
    train.mkdir(parents=True)
    lines = [json.dumps({"text": f"review {n} fine", "label": n % 2}) for n in range(5)]
    lines.insert(3, '{"text": "caf\\ud800 ok", "label": 1}')
    (train / "part.jsonl").write_text("\n".join(lines) + "\n")
    assert main([]) == 1
    failure = (environment / "output" / "failure").read_text()
    assert failure.startswith("DataError: ") and "part.jsonl: line 4: 'text' holds a lone surrogate" in failure


def run_toolkit(base: Path) -> subprocess.CompletedProcess[str]:
    """Run `train` (sagemaker-training) as the image does: our program in /opt/ml/code, named by
    SAGEMAKER_PROGRAM."""
    (base / "code").mkdir(exist_ok=True)
    shutil.copy(PROGRAM, base / "code")
    env = {**os.environ, "SAGEMAKER_PROGRAM": "train_sentiment.py", "SM_STUDIO_LOCAL_MODE": "true"}
    # (SM_STUDIO_LOCAL_MODE: there are no cluster hostnames to resolve outside SageMaker.)
    toolkit = Path(sys.executable).with_name("train")
    return subprocess.run([str(toolkit)], env=env, capture_output=True, text=True, timeout=600)


def test_the_sagemaker_toolkit_runs_the_program_with_the_hyperparameters(environment: Path) -> None:
    """`train` (sagemaker-training) turns hyperparameters.json into flags for our program."""
    opt_ml(environment, channels=("train", "validation"))
    result = run_toolkit(environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "--epochs 2" in result.stdout + result.stderr  # the toolkit logs the command it ran
    assert (environment / "output" / "success").exists()
    assert load_model(environment / "model").family == "ensemble"


def test_the_toolkit_keeps_our_failure_reason(environment: Path) -> None:
    opt_ml(environment, hyperparameters={"epochs": "-1"}, channels=("train",))
    result = run_toolkit(environment)
    assert result.returncode != 0
    assert (
        (environment / "output" / "failure")
        .read_text()
        .startswith("Invalid hyperparameters: hyperparameter --epochs: -1")
    )


def test_help_lists_every_hyperparameter(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "embedding_dim" in out and "SAGEMAKER_BASE_DIR" in out


def test_pretraining_on_several_hosts_is_refused_before_any_work(environment: Path) -> None:
    opt_ml(environment, {**HYPERPARAMETERS, "pretrain_epochs": "1"})
    (environment / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]})
    )
    assert main([]) == 1
    failure = (environment / "output" / "failure").read_text()
    assert failure.startswith("Invalid hyperparameters: pretrain_epochs=1: language-model pretraining runs on one rank")
    assert list((environment / "model").iterdir()) == [] and list((environment / "checkpoints").iterdir()) == []


def test_a_host_runs_one_rank_per_device_as_processes_of_its_own(environment: Path) -> None:
    """What a host with two GPUs does, here with two CPU ranks: spawned ranks share the host's channels."""
    opt_ml(environment, {**HYPERPARAMETERS, "device": "cpu"}, channels=("train", "validation", "test"))
    paths = TrainingPaths.from_environment()
    cluster = Cluster(hosts=("algo-1",), current_host="algo-1", master_address="127.0.0.1", master_port=free_port())
    job = Job(parse_hyperparameters(["--device", "cpu"], HYPERPARAMETERS), paths, cluster, {}, ranks_per_host=2)
    assert run_ranks_of_host(job) == 0
    assert (environment / "model" / "model.json").is_file()
    assert {path.name for path in (environment / "checkpoints").iterdir()} == {"rank-0-of-2", "rank-1-of-2"}
    card = json.loads((environment / "model" / "card.json").read_text())
    assert card["data"]["train"] == {"reviews": 200, "parts": 2, "sha256": card["data"]["train"]["sha256"]}


def test_a_sentences_channel_teaches_the_lstm_and_the_card_says_how_it_was_labelled(
    environment: Path, capsys: pytest.CaptureFixture
) -> None:
    opt_ml(environment, channels=("train", "test"))
    folder = environment / "input" / "data" / "sentences"
    folder.mkdir()
    write_sentences(soft_sentences(40, 3), folder / "sentences.jsonl")
    labelled_by = {"score": "0.5 x teacher + 0.5 x student", "teacher": {"base": "a sentence encoder"}}
    (folder / SENTENCES_DETAILS).write_text(json.dumps(labelled_by))
    assert main([]) == 0
    output = capsys.readouterr().out
    assert "channel sentences: 40 soft-labelled texts (mean score 0.500)" in output
    assert "sentences: the LSTM also learns from 40 soft-labelled texts" in output
    card = json.loads((environment / "model" / "card.json").read_text())
    entry = card["data"]["sentences"]
    assert entry["reviews"] == 40 and entry["mean_score"] == 0.5 and entry["labelled_by"] == labelled_by
    assert entry["sha256"] == read_sentences(folder).digest()
    shown = (environment / "model" / "card.md").read_text()
    assert "- sentences: 40 soft-labelled texts for the LSTM (mean score 0.500; labels 0.5 x teacher" in shown


def test_a_bad_sentences_channel_fails_naming_the_file_and_line(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opt_ml(environment, channels=("train",))
    folder = environment / "input" / "data" / "sentences"
    folder.mkdir()
    (folder / "sentences.jsonl").write_text('{"text": "fine", "score": 2}\n')
    assert main([]) == 1
    message = "sentences.jsonl: line 1: 'score' must be a number from 0 to 1"
    assert message in (environment / "output" / "failure").read_text()
    assert message in capsys.readouterr().err
