"""`predict_fn`, the third of SageMaker's serving steps: decoded reviews in, their results out.

Tokenizes each review once; its tokens are scored (through the micro-batcher the app passes in as
`score`), judged by the predictor (the one place labels are made) and, when asked for, explained
with each token's span and the deciding words. The work a request may ask for is bounded here, each
bound a 413 that states it: by reviews before the model is needed (`check_reviews`), by words once
they are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sentiment.contract import ServingSettings
from sentiment.predictor import Predictor
from sentiment.serving.codecs import Decoded, Result
from sentiment.serving.errors import PayloadTooLarge

MAX_EXPLAINED_REVIEWS = 64  # explanations cost a backward pass per review: not for whole batches

Scorer = Callable[[Sequence[Sequence[str]]], np.ndarray]  # token lists -> probability of positive


@dataclass(frozen=True)
class WorkLimits:
    """The most one request may ask for (SENTIMENT_MAX_RECORDS, SENTIMENT_MAX_TOKENS, ...)."""

    reviews: int
    words: int
    explained_reviews: int
    explained_words: int

    @classmethod
    def of(cls, settings: ServingSettings) -> WorkLimits:
        return cls(settings.max_records, settings.max_tokens, MAX_EXPLAINED_REVIEWS, settings.max_explained_tokens)


def check_reviews(decoded: Decoded, explain: bool, limits: WorkLimits) -> None:
    """PayloadTooLarge, naming the limit, for more reviews than one request may hold."""
    limit = limits.explained_reviews if explain else limits.reviews
    if len(decoded.reviews) > limit:
        what = "explained reviews" if explain else "reviews"
        raise PayloadTooLarge(
            f"the request holds {len(decoded.reviews):,} reviews; the limit is {limit:,} {what} per request: "
            "split it into smaller requests"
        )


def predict_fn(
    decoded: Decoded, predictor: Predictor, score: Scorer, explain: bool, limits: WorkLimits
) -> list[Result]:
    """Each review's verdict (and explanation when `explain`), in order."""
    token_lists = [predictor.tokenize(review) for review in decoded.reviews]
    _check_words(token_lists, explain, limits)
    verdicts = predictor.verdicts(token_lists, score(token_lists))
    if not explain:
        return [Result(label=verdict.label, score=verdict.score) for verdict in verdicts]
    explanations = [
        predictor.explain_text(review, tokens) for review, tokens in zip(decoded.reviews, token_lists, strict=True)
    ]
    return [
        Result(
            label=verdict.label,
            score=verdict.score,
            contributions=explanation.to_json(),
            top_words=explanation.top_words(),
        )
        for verdict, explanation in zip(verdicts, explanations, strict=True)
    ]


def _check_words(token_lists: list[list[str]], explain: bool, limits: WorkLimits) -> None:
    """PayloadTooLarge, naming the limit, for more words than one request may hold (the work grows with them)."""
    words = sum(len(tokens) for tokens in token_lists)
    limit = limits.explained_words if explain else limits.words
    if words > limit:
        what = "words to explain" if explain else "words"
        raise PayloadTooLarge(
            f"the request holds {words:,} words (tokens); the limit is {limit:,} {what} per request: "
            "split it into smaller requests"
        )
