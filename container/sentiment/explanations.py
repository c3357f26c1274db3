"""Why a model decided: each token's share of a review's logit (the log-odds of "positive").

- The linear model is additive already: a review's logit is its bias plus one coefficient per
  distinct n-gram it contains. Each n-gram's coefficient is split evenly over its occurrences and,
  within one, over its tokens, so the shares add up exactly to the logit minus the bias.
- The LSTM is not additive; its shares are integrated gradients (Sundararajan et al., 2017) from a
  baseline where every word is the unknown word, so they add up, up to a small integration error,
  to how far the review's logit is from that of a review of unknown words.
- The ensemble's shares are both, weighted as the ensemble weighs the two logits.

A positive share pushes towards "positive". Tokens are the tokenizer's (lowercased, HTML removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sentiment.model import LSTMClassifier
from sentiment.ngrams import MAX_N, find, ngrams_of_length, token_ids
from sentiment.vocabulary import UNKNOWN_ID, Truncation, Vocabulary, kept_positions

INTEGRATION_STEPS = 16  # Riemann steps of integrated gradients, run as one batch


@dataclass(frozen=True)
class Explanation:
    """A review's tokens, in order, each with its share of the logit."""

    tokens: tuple[str, ...]
    contributions: tuple[float, ...]

    def top(self, count: int) -> list[tuple[str, float]]:
        """The `count` tokens that moved the verdict most (either way), each token once, strongest first."""
        by_token: dict[str, float] = {}
        for token, share in zip(self.tokens, self.contributions, strict=True):
            by_token[token] = by_token.get(token, 0.0) + share
        ranked = sorted(by_token.items(), key=lambda item: abs(item[1]), reverse=True)
        return [(token, share) for token, share in ranked[:count] if share != 0.0]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"token": token, "contribution": round(share, 4)}
            for token, share in zip(self.tokens, self.contributions, strict=True)
        ]


def linear_contributions(
    keys: np.ndarray,
    coefficients: np.ndarray,
    max_n: int,
    vocabulary: Vocabulary,
    tokens: Sequence[str],
    negation_window: int = 0,
) -> np.ndarray:
    """Each token's share of a linear model's logit (without its bias); see the module's docstring."""
    ids, review_of = token_ids([tokens], vocabulary.index, negation_window)
    shares = np.zeros(len(tokens), dtype=np.float64)
    for n in range(1, min(max_n, MAX_N) + 1):
        ngrams, starts = ngrams_of_length(ids, review_of, n)
        position, found = find(keys, ngrams)
        if not found.any():
            continue
        ngrams, starts = ngrams[found], starts[found]
        # Features are binary: an n-gram's coefficient counts once however often it occurs.
        _, which, occurrences = np.unique(ngrams, return_inverse=True, return_counts=True)
        share = coefficients[position[found]].astype(np.float64) / occurrences[which] / n
        for offset in range(n):
            np.add.at(shares, starts + offset, share)
    return shares


def lstm_contributions(
    model: LSTMClassifier,
    vocabulary: Vocabulary,
    tokens: Sequence[str],
    max_length: int,
    truncation: Truncation,
    steps: int = INTEGRATION_STEPS,
) -> np.ndarray:
    """Each token's integrated gradient on the LSTM's logit; tokens the encoding cuts off get 0."""
    shares = np.zeros(len(tokens), dtype=np.float64)
    kept = kept_positions(len(tokens), max_length, truncation)
    positions = np.concatenate([np.arange(part.start, part.stop) for part in kept]).astype(np.int64)
    if len(positions) == 0:
        return shares
    ids = torch.tensor([vocabulary.ids([tokens[p] for p in positions])], dtype=torch.int64)
    lengths = torch.tensor([len(positions)])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        embedded = model.embedding(ids)
        baseline = model.embedding(torch.full_like(ids, UNKNOWN_ID))
    # All steps of the path from baseline to review in one batch; the midpoint rule.
    alphas = (torch.arange(steps, dtype=embedded.dtype) + 0.5) / steps
    path = (baseline + alphas[:, None, None] * (embedded - baseline)).requires_grad_(True)
    logits = model.from_embeddings(path, lengths.expand(steps))
    (gradients,) = torch.autograd.grad(logits.sum(), path)
    model.train(was_training)
    attributions = (gradients.mean(dim=0) * (embedded - baseline)[0]).sum(dim=-1)
    shares[positions] = attributions.detach().double().numpy()
    return shares
