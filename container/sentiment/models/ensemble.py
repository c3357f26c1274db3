"""The ensemble family: the LSTM and the linear model combined by weights fitted on the validation split,
with its own weights for short texts. Its settings, its arithmetic, and what it saves and loads.

Its explanations are both members' contributions, each weighted as the ensemble weighs its logit.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    """logit = sum over members of weight x member logit + bias, fitted on the validation split.

    `weights` names each member family (`sentiment.models.MEMBERS`) with the weight of its logit, in
    the order they are added. Short texts get their own weights (`short_weights`, fitted on sentences
    cut from the validation reviews): on a few words the members' logits have other scales and
    reliabilities than on a whole review. A text of at most `short_below[0]` tokens uses them alone,
    one of at least `short_below[1]` tokens the review weights alone, and lengths between blend the
    two linearly.
    """

    weights: Mapping[str, float]
    bias: float
    short_weights: Mapping[str, float] | None = None  # None: one set for every length (models before them)
    short_bias: float | None = None
    short_below: tuple[int, int] = (20, 80)

    @property
    def members(self) -> tuple[str, ...]:
        """The member families it combines, in order."""
        return tuple(self.weights)

    def shortness(self, lengths: np.ndarray) -> np.ndarray:
        """1 for a short text, 0 for a review-length one, linear in between."""
        low, high = self.short_below
        return np.clip((high - np.asarray(lengths, dtype=np.float64)) / (high - low), 0.0, 1.0)

    def weights_at(self, lengths: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each member's weight, and the bias, for texts of these token counts."""
        short = self.shortness(lengths) if self.short_weights is not None else np.zeros(len(lengths))

        def blend(review: float, other: float | None) -> np.ndarray:
            return (1 - short) * review + short * (review if other is None else other)

        shorts = self.short_weights or {}
        members = {name: blend(weight, shorts.get(name)) for name, weight in self.weights.items()}
        return members, blend(self.bias, self.short_bias)

    def combine(self, parts: Mapping[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        """The ensemble's logits from its members' (`parts`, by name) for texts of these token counts."""
        weights, bias = self.weights_at(lengths)
        names = iter(self.members)
        first = next(names)
        total = weights[first] * parts[first]
        for name in names:
            total = total + weights[name] * parts[name]
        return total + bias


_NOT_MEMBERS = ("bias", "short_bias", "short_below")  # the manifest's other keys; short_<member> are short weights


def ensemble_document(weights: EnsembleWeights) -> dict[str, Any]:
    """The weights as the model's manifest holds them: `{"lstm": w, "linear": w, "bias": b, "short_lstm": ...}`
    (the layout of every model format so far)."""
    document: dict[str, Any] = {**weights.weights, "bias": weights.bias}
    for name in weights.members:
        document[f"short_{name}"] = None if weights.short_weights is None else weights.short_weights[name]
    document["short_bias"] = weights.short_bias
    document["short_below"] = weights.short_below
    return document


def load_ensemble(document: dict[str, Any]) -> EnsembleWeights:
    """The weights saved as `document` (`ensemble_document`)."""
    bounds = document.get("short_below", (20, 80))
    if not (
        isinstance(bounds, list | tuple)
        and len(bounds) == 2
        and all(isinstance(bound, int) for bound in bounds)
        and 0 <= bounds[0] < bounds[1]
    ):
        raise ValueError(f"ensemble short_below must be two token counts, low < high, not {bounds!r}")
    names = [key for key in document if key not in _NOT_MEMBERS and not key.startswith("short_")]
    if not names or not all(isinstance(document[name], int | float) for name in names):
        raise ValueError(f"ensemble weights must name each member with a number, not {document!r}")
    shorts = {name: document.get(f"short_{name}") for name in names}
    has_shorts = all(value is not None for value in shorts.values())
    return EnsembleWeights(
        weights={name: float(document[name]) for name in names},
        bias=float(document["bias"]),
        short_weights={name: float(value) for name, value in shorts.items()} if has_shorts else None,  # type: ignore[arg-type]
        short_bias=document.get("short_bias") if has_shorts else None,
        short_below=(bounds[0], bounds[1]),
    )
