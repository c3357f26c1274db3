"""sentiment.models.ensemble: the weights that combine the members, blended from short texts to reviews,
and saving and loading them in the manifest's layout."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.models.ensemble import EnsembleWeights, ensemble_document, load_ensemble

BLENDED = EnsembleWeights(
    weights={"lstm": 1.0, "linear": 2.0},
    bias=0.5,
    short_weights={"lstm": 3.0, "linear": 4.0},
    short_bias=-1.0,
    short_below=(20, 80),
)


def test_short_texts_get_their_own_weights_blended_by_length() -> None:
    weights, bias = BLENDED.weights_at(np.array([0, 20, 50, 80, 400]))
    assert weights["lstm"].tolist() == [3.0, 3.0, 2.0, 1.0, 1.0]
    assert weights["linear"].tolist() == [4.0, 4.0, 3.0, 2.0, 2.0]
    assert bias.tolist() == [-1.0, -1.0, -0.25, 0.5, 0.5]
    parts = {"lstm": np.array([1.0, 1.0]), "linear": np.array([1.0, 1.0])}
    assert BLENDED.combine(parts, np.array([10, 500])).tolist() == [3.0 + 4.0 - 1.0, 1.0 + 2.0 + 0.5]
    assert BLENDED.members == ("lstm", "linear")


def test_models_without_short_weights_use_one_set_for_every_length() -> None:
    weights, bias = EnsembleWeights(weights={"lstm": 1.0, "linear": 2.0}, bias=0.5).weights_at(np.array([1, 1000]))
    assert weights["lstm"].tolist() == [1.0, 1.0] and weights["linear"].tolist() == [2.0, 2.0]
    assert bias.tolist() == [0.5, 0.5]


def test_any_members_combine_in_their_order() -> None:
    three = EnsembleWeights(weights={"a": 1.0, "b": -1.0, "c": 0.5}, bias=0.0)
    parts = {"a": np.array([2.0]), "b": np.array([1.0]), "c": np.array([4.0])}
    assert three.combine(parts, np.array([100])).tolist() == [3.0]


def test_the_manifests_layout_round_trips_and_impossible_documents_are_refused() -> None:
    document = ensemble_document(BLENDED)
    assert list(document) == ["lstm", "linear", "bias", "short_lstm", "short_linear", "short_bias", "short_below"]
    assert load_ensemble({**document, "short_below": list(document["short_below"])}) == BLENDED  # JSON: a list
    old = {"lstm": 1.0, "linear": 2.0, "bias": 0.5}  # format 1: no short-text weights
    assert load_ensemble(old) == EnsembleWeights(weights={"lstm": 1.0, "linear": 2.0}, bias=0.5)
    for bounds in ([80, 20], [5], ["a", "b"], [-1, 3]):
        with pytest.raises(ValueError, match="short_below must be two token counts"):
            load_ensemble({**document, "short_below": bounds})
    with pytest.raises(ValueError, match="name each member with a number"):
        load_ensemble({"bias": 0.5})
