"""sentiment.artifacts: round trips give identical predictions; altered or damaged files are refused."""

from __future__ import annotations

import copy
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sentiment.artifacts import MANIFEST, VOCABULARY, WEIGHTS, ArtifactError, load_model, save_model
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from sentiment.training import fit
from tests.test_training import SMALL, made_up

TEXTS = ["A wonderful, moving masterpiece.", "Dreadful and boring.", "", "good " * 2000, "<script>x</script> 日本語"]


@pytest.fixture(scope="module")
def ensemble() -> Predictor:
    hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--epochs", "2", "--negation_window", "5"])
    return fit(hp, made_up(160, 1), made_up(60, 2), report=lambda line: None).predictor


@pytest.fixture
def saved(tmp_path: Path, ensemble: Predictor) -> Path:
    save_model(ensemble, tmp_path / "model")
    return tmp_path / "model"


def test_a_saved_model_predicts_exactly_as_before(saved: Path, ensemble: Predictor) -> None:
    loaded = load_model(saved)
    assert loaded.family == "ensemble"
    assert np.array_equal(loaded.logits(TEXTS), ensemble.logits(TEXTS))
    assert [p.label for p in loaded.predict(TEXTS)] == [p.label for p in ensemble.predict(TEXTS)]
    assert sorted(p.name for p in saved.iterdir()) == [MANIFEST, VOCABULARY, WEIGHTS]
    assert set(loaded.members) == set(ensemble.members) == {"lstm", "linear"}
    assert loaded.members["linear"].scorer.negation_window == 5  # type: ignore[attr-defined]


def test_a_model_tarball_loads_like_the_folder(saved: Path, ensemble: Predictor, tmp_path: Path) -> None:
    # SageMaker packs /opt/ml/model as model.tar.gz with members named "./model.json" and so on.
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        archive.add(saved, arcname=".")
    assert np.array_equal(load_model(tmp_path / "model.tar.gz").logits(TEXTS), ensemble.logits(TEXTS))


def test_half_precision_weights_stay_close(tmp_path: Path, ensemble: Predictor) -> None:
    save_model(ensemble, tmp_path / "half", half=True)
    full_size = sum(len(p.read_bytes()) for p in (tmp_path / "half").iterdir())
    assert json.loads((tmp_path / "half" / MANIFEST).read_text())["weights_dtype"] == "float16"
    assert np.allclose(load_model(tmp_path / "half").predict_proba(TEXTS), ensemble.predict_proba(TEXTS), atol=2e-3)
    assert full_size > 0


@pytest.mark.parametrize("family", ["lstm", "linear"])
def test_single_families_round_trip(tmp_path: Path, family: str) -> None:
    hp = parse_hyperparameters([*SMALL, "--model", family, "--epochs", "1"])
    predictor = fit(hp, made_up(80, 1), made_up(40, 2), report=lambda line: None).predictor
    save_model(predictor, tmp_path / family)
    assert np.array_equal(load_model(tmp_path / family).logits(TEXTS), predictor.logits(TEXTS))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: flip_a_byte(d / WEIGHTS), "weights.safetensors does not match the checksum"),
        (lambda d: flip_a_byte(d / VOCABULARY), "vocabulary.json does not match the checksum"),
        (lambda d: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:100]), "does not match the checksum"),
        (lambda d: (d / MANIFEST).unlink(), "model.json missing"),
        (lambda d: (d / MANIFEST).write_text("{not json"), "model.json: not valid UTF-8 JSON"),
        (lambda d: (d / MANIFEST).write_text('{"format": "pickle"}'), "does not describe a sentiment-model"),
    ],
    ids=["weights", "vocabulary", "truncated", "no-manifest", "manifest-json", "other-format"],
)
def test_altered_or_damaged_models_are_refused(saved: Path, damage, message: str) -> None:
    damage(saved)
    with pytest.raises(ArtifactError, match=message):
        load_model(saved)


def test_a_manifest_edited_to_match_other_weights_is_still_checked(saved: Path, tmp_path: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["version"] = 99
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="model format version 99"):
        load_model(saved)
    manifest["version"] = 1
    manifest["lstm"]["hidden_dim"] = 7  # checksums still match, the shapes do not
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="do not fit together"):
        load_model(saved)


def test_missing_and_unreadable_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such model folder"):
        load_model(tmp_path / "nothing")
    (tmp_path / "model.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError, match="not a readable model.tar.gz"):
        load_model(tmp_path / "model.tar.gz")


def test_a_format_1_model_loads_with_one_set_of_ensemble_weights(saved: Path, ensemble: Predictor) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["version"] = 1  # as written before short-text weights existed
    manifest["ensemble"] = {name: manifest["ensemble"][name] for name in ("lstm", "linear", "bias")}
    (saved / MANIFEST).write_text(json.dumps(manifest))
    loaded = load_model(saved)
    assert loaded.ensemble is not None and loaded.ensemble.short_weights is None
    linear = loaded.members["linear"]
    assert linear.scorer.negation_window == 0  # type: ignore[attr-defined]  # format 1 had no negation scopes
    ensemble = copy.copy(ensemble)  # with its linear model read as format 1 reads it: no negation scopes
    ensemble.members = {**ensemble.members, "linear": linear}
    parts = ensemble.part_logits([ensemble.tokenize(text) for text in TEXTS])
    weights = ensemble.ensemble
    assert weights is not None
    expected = weights.weights["lstm"] * parts["lstm"] + weights.weights["linear"] * parts["linear"] + weights.bias
    assert np.allclose(loaded.logits(TEXTS), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("part", "setting", "value", "message"),
    [
        *(
            ("ensemble", "short_below", bounds, "short_below must be two token counts")
            for bounds in ([50, 50], [80, 20], [-1, 10], [20], "20-80", [20.5, 80])
        ),
        *(
            ("linear", "negation_window", window, "negation_window must be a whole number")
            for window in (-1, 51, "5", True, 2.5, None)
        ),
    ],
)
def test_impossible_settings_are_refused(saved: Path, part: str, setting: str, value: object, message: str) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest[part][setting] = value
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=message):
        load_model(saved)
