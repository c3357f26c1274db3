"""The ensemble family: the LSTM and the linear model combined by weights fitted on the validation split,
with its own weights for short texts. Its settings, its arithmetic, and what it saves and loads.

Its explanations are both members' contributions, each weighted as the ensemble weighs its logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sentiment.settings import setting


@dataclass(frozen=True)
class EnsembleSettings:
    """What the ensemble is told besides its members' settings."""

    short_text_weights: bool = setting(
        True,
        "ensemble: a second set of weights for texts of a few words, fitted on sentences cut from the validation "
        "reviews",
    )
    pseudo_labels: bool = setting(
        True, "ensemble: label the unlabeled reviews with a first ensemble, then train the linear model on them too"
    )


@dataclass(frozen=True)
class EnsembleWeights:
    """logit = lstm * lstm_logit + linear * linear_logit + bias, fitted on the validation split.

    Short texts get their own weights (`short_*`, fitted on sentences cut from the validation
    reviews): on a few words the two models' logits have other scales and reliabilities than on a
    whole review. A text of at most `short_below[0]` tokens uses them alone, one of at least
    `short_below[1]` tokens the review weights alone, and lengths between blend the two linearly.
    """

    lstm: float
    linear: float
    bias: float
    short_lstm: float | None = None  # None: one set of weights for every length (models before short weights)
    short_linear: float | None = None
    short_bias: float | None = None
    short_below: tuple[int, int] = (20, 80)

    def shortness(self, lengths: np.ndarray) -> np.ndarray:
        """1 for a short text, 0 for a review-length one, linear in between."""
        low, high = self.short_below
        return np.clip((high - np.asarray(lengths, dtype=np.float64)) / (high - low), 0.0, 1.0)

    def weights(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (lstm, linear, bias) weights of texts of these token counts."""
        short = self.shortness(lengths) if self.short_lstm is not None else np.zeros(len(lengths))
        blend = [
            (1 - short) * review + short * (review if other is None else other)
            for review, other in (
                (self.lstm, self.short_lstm),
                (self.linear, self.short_linear),
                (self.bias, self.short_bias),
            )
        ]
        return blend[0], blend[1], blend[2]

    def combine(self, lstm: np.ndarray, linear: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        lstm_weight, linear_weight, bias = self.weights(lengths)
        return lstm_weight * lstm + linear_weight * linear + bias


def ensemble_document(weights: EnsembleWeights) -> dict[str, Any]:
    """The weights as the model's manifest holds them."""
    return vars(weights).copy()


def load_ensemble(document: dict[str, Any]) -> EnsembleWeights:
    """The weights saved as `document` (`ensemble_document`)."""
    if "short_below" in document:  # JSON has no tuples
        bounds = document["short_below"]
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(bound, int) for bound in bounds)
            and 0 <= bounds[0] < bounds[1]
        ):
            raise ValueError(f"ensemble short_below must be two token counts, low < high, not {bounds!r}")
        document = {**document, "short_below": tuple(bounds)}
    return EnsembleWeights(**document)
