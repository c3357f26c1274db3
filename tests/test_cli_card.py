"""sentiment-card: a model's card gains the traffic figures drift compares with; its model files do not change."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sentiment.artifacts import save_model
from sentiment.cli.card import main
from sentiment.data.channels import write_channel
from sentiment.evaluation import card_traffic, model_card, render_card
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from tests.test_training import made_up


@pytest.fixture
def model(tmp_path: Path, small_ensemble: Predictor) -> Path:
    """A saved model with a card like training's, whose validation split is made_up(60, 2), without figures."""
    folder = tmp_path / "model"
    save_model(small_ensemble, folder)
    channels = {"train": made_up(200, 1), "validation": made_up(60, 2)}
    card = model_card(parse_hyperparameters([]), channels, {}, {"ensemble": 1.0}, 1.0, None)
    del card["traffic"]  # a card written before training measured its traffic, as the bundled model's was
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}


def test_the_card_gains_the_figures_of_its_own_validation_split_and_a_rerun_writes_nothing(
    tmp_path: Path, model: Path, small_ensemble: Predictor, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_channel(made_up(60, 2), tmp_path / "validation", "validation", "jsonl")
    before = digests(model)
    assert main([str(model), "--data", str(data)]) == 0
    assert "traffic figures of 60 validation reviews written" in capsys.readouterr().out
    card = json.loads((model / "card.json").read_text())
    assert card["traffic"] == card_traffic(small_ensemble, made_up(60, 2), "validation")
    assert card["traffic"]["reviews"] == 60 and card["traffic"]["source"] == "validation"
    assert (model / "card.md").read_text() == render_card(card)
    after = digests(model)
    assert {name: after[name] for name in ("model.json", "weights.safetensors", "vocabulary.json")} == {
        name: before[name] for name in ("model.json", "weights.safetensors", "vocabulary.json")
    }
    assert main([str(model), "--data", str(data)]) == 0
    assert "already holds these figures" in capsys.readouterr().out
    assert digests(model) == after


def test_other_reviews_are_named_by_their_path(tmp_path: Path, model: Path) -> None:
    data = write_channel(made_up(30, 9), tmp_path / "other", "validation", "jsonl")
    assert main([str(model), "--data", str(data)]) == 0
    assert json.loads((model / "card.json").read_text())["traffic"]["source"] == str(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no card", "no model card here"),
        ("not a card", "not a model card"),
        ("no data", "is not a folder"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, model: Path, change: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_channel(made_up(30, 2), tmp_path / "validation", "validation", "jsonl")
    if change == "no card":
        (model / "card.json").unlink()
    elif change == "not a card":
        (model / "card.json").write_text("[1, 2]")
    else:
        shutil.rmtree(data.parent if data.is_file() else data)
    before = digests(model)
    assert main([str(model), "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert digests(model) == before
