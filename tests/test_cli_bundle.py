"""sentiment-bundle: `train` (the toolkit) on channels, then a float16 model with its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sentiment.artifacts import load_model
from sentiment.cli.bundle import main
from sentiment.data.channels import write_channel
from tests.test_training import made_up

TINY = [
    "--model", "ensemble", "--epochs", "2", "--embedding_dim", "16", "--hidden_dim", "16", "--batch_size", "16",
    "--vocab_size", "300", "--min_count", "1", "--ngram_min_count", "1",
]  # fmt: skip


def channels(root: Path) -> Path:
    for seed, (name, size) in enumerate((("train", 160), ("validation", 60), ("test", 60))):
        write_channel(made_up(size, seed), root / name, name, "jsonl")
    return root


def test_bundle_trains_through_the_toolkit_and_writes_a_half_precision_model(tmp_path: Path) -> None:
    args = ["--channels", str(channels(tmp_path / "channels")), "--work", str(tmp_path / "work")]
    assert main([*args, "--output", str(tmp_path / "bundled"), *TINY]) == 0
    bundled = tmp_path / "bundled"
    assert {p.name for p in bundled.iterdir()} == {
        "model.json",
        "weights.safetensors",
        "vocabulary.json",
        "card.json",
        "card.md",
        "metrics.json",
    }
    assert json.loads((bundled / "model.json").read_text())["weights_dtype"] == "float16"
    assert json.loads((bundled / "card.json").read_text())["hyperparameters"]["epochs"] == 2
    texts = made_up(20, 9).text
    full = load_model(tmp_path / "work" / "model").predict_proba(texts)
    assert np.allclose(load_model(bundled).predict_proba(texts), full, atol=5e-3)


def test_a_failed_training_leaves_the_old_bundle(tmp_path: Path) -> None:
    (tmp_path / "bundled").mkdir()
    (tmp_path / "bundled" / "model.json").write_text("{}")
    args = ["--channels", str(channels(tmp_path / "channels")), "--work", str(tmp_path / "work")]
    assert main([*args, "--output", str(tmp_path / "bundled"), "--epochs", "zero"]) == 1
    assert (tmp_path / "bundled" / "model.json").read_text() == "{}"
    assert "'zero' is not a whole number" in (tmp_path / "work" / "output" / "failure").read_text()
