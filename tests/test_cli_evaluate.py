"""sentiment-evaluate: a model scored on labeled reviews, with the JSON and HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentiment.artifacts import save_model
from sentiment.cli.evaluate import main
from sentiment.data.channels import write_channel
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.training import fit
from tests.test_training import SMALL, made_up


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hp = parse_hyperparameters([*SMALL, "--model", "linear"])
    directory = tmp_path_factory.mktemp("model")
    save_model(fit(hp, made_up(200, 1), made_up(60, 2), report=lambda line: None).predictor, directory)
    return directory


def test_a_channel_file_is_scored_and_reported(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_channel(made_up(50, 3), tmp_path / "test", "test", "csv")
    assert main(["--model", str(model_dir), "--data", str(path), "--output", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accuracy=1.0000") and "reviews=50" in out
    metrics = json.loads((tmp_path / "report" / "evaluation.json").read_text())["metrics"]
    assert metrics["confusion"]["true_positive"] + metrics["confusion"]["false_negative"] == 25
    html = (tmp_path / "report" / "evaluation.html").read_text()
    assert "<svg" in html and "ROC curve" in html and "<script" not in html


def test_a_channel_folder_and_an_imdb_archive_work_too(
    model_dir: Path, tmp_path: Path, small_imdb_archive: Path
) -> None:
    write_channel(made_up(20, 4), tmp_path / "channel", "test", "jsonl")
    assert main(["--model", str(model_dir), "--data", str(tmp_path / "channel"), "--output", str(tmp_path / "a")]) == 0
    assert main(["--model", str(model_dir), "--data", str(small_imdb_archive), "--output", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "evaluation.json").read_text())["metrics"]["reviews"] == 24


def test_bad_inputs_are_clear_errors(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "no label"}\n')
    assert main(["--model", str(model_dir), "--data", str(tmp_path / "bad.jsonl")]) == 1
    assert "bad.jsonl: line 1: 'label' must be" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "missing"), "--data", str(tmp_path / "bad.jsonl")]) == 1
    assert "no such model folder" in capsys.readouterr().err
