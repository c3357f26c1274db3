"""sentiment.models.ensemble: the weights that combine the members, blended from short texts to reviews,
and saving and loading them."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.models.ensemble import EnsembleWeights, ensemble_document, load_ensemble


def test_short_texts_get_their_own_weights_blended_by_length() -> None:
    weights = EnsembleWeights(
        lstm=1.0, linear=2.0, bias=0.5, short_lstm=3.0, short_linear=4.0, short_bias=-1.0, short_below=(20, 80)
    )
    lstm, linear, bias = weights.weights(np.array([0, 20, 50, 80, 400]))
    assert lstm.tolist() == [3.0, 3.0, 2.0, 1.0, 1.0]
    assert linear.tolist() == [4.0, 4.0, 3.0, 2.0, 2.0]
    assert bias.tolist() == [-1.0, -1.0, -0.25, 0.5, 0.5]
    combined = weights.combine(np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([10, 500]))
    assert combined.tolist() == [3.0 + 4.0 - 1.0, 1.0 + 2.0 + 0.5]


def test_models_without_short_weights_use_one_set_for_every_length() -> None:
    weights = EnsembleWeights(lstm=1.0, linear=2.0, bias=0.5)
    lstm, linear, bias = weights.weights(np.array([1, 1000]))
    assert lstm.tolist() == [1.0, 1.0] and linear.tolist() == [2.0, 2.0] and bias.tolist() == [0.5, 0.5]


def test_saving_and_loading_keep_the_weights_and_refuse_impossible_bounds() -> None:
    weights = EnsembleWeights(lstm=1.0, linear=2.0, bias=0.5, short_lstm=3.0, short_linear=4.0, short_bias=-1.0)
    document = ensemble_document(weights)
    assert load_ensemble({**document, "short_below": list(document["short_below"])}) == weights  # JSON: a list
    for bounds in ([80, 20], [5], ["a", "b"], [-1, 3]):
        with pytest.raises(ValueError, match="short_below must be two token counts"):
            load_ensemble({**document, "short_below": bounds})
