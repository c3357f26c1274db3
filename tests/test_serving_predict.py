"""sentiment.serving.predict: predict_fn's verdicts and explanations, and the work bounds it enforces."""

from __future__ import annotations

import pytest

from sentiment.predictor import Predictor
from sentiment.serving.codecs import Decoded, Result
from sentiment.serving.errors import PayloadTooLarge
from sentiment.serving.predict import WorkLimits, check_reviews, predict_fn

LIMITS = WorkLimits(reviews=3, words=12, explained_reviews=2, explained_words=8)
REVIEWS = ["A superb, moving film.", "Awful and boring.", "zqxj"]


def predict(predictor: Predictor, reviews: list[str], explain: bool) -> list[Result]:
    decoded = Decoded(reviews, "list", "application/json")
    return predict_fn(decoded, predictor, predictor.probabilities_of_tokens, explain, LIMITS)


def test_verdicts_come_from_the_predictor_in_order(small_ensemble: Predictor) -> None:
    results = predict_fn(
        Decoded(REVIEWS, "list", "application/json"),
        small_ensemble,
        small_ensemble.probabilities_of_tokens,
        False,
        LIMITS,
    )
    expected = small_ensemble.predict(REVIEWS)
    assert [(r.label, r.score) for r in results] == [(p.label, p.score) for p in expected]
    assert results[2].label == "unknown" and all(r.contributions is None and r.top_words is None for r in results)


def test_explained_verdicts_carry_spans_and_deciding_words(small_ensemble: Predictor) -> None:
    (result,) = predict_fn(
        Decoded(REVIEWS[:1], "single", "text/plain"),
        small_ensemble,
        small_ensemble.probabilities_of_tokens,
        True,
        LIMITS,
    )
    assert result.contributions is not None and result.top_words is not None
    assert [REVIEWS[0][slice(*c["span"])].lower() for c in result.contributions] == small_ensemble.tokenize(REVIEWS[0])
    assert {w["word"] for w in result.top_words} <= set(small_ensemble.tokenize(REVIEWS[0]))


def test_work_over_the_limits_is_refused_stating_them(small_ensemble: Predictor) -> None:
    with pytest.raises(PayloadTooLarge, match="holds 4 reviews; the limit is 3 reviews"):
        check_reviews(Decoded([*REVIEWS, "more"], "list", "application/json"), False, LIMITS)
    with pytest.raises(PayloadTooLarge, match="holds 3 reviews; the limit is 2 explained reviews"):
        check_reviews(Decoded(REVIEWS, "list", "application/json"), True, LIMITS)
    many = Decoded(["good " * 13], "single", "text/plain")
    with pytest.raises(PayloadTooLarge, match="holds 13 words \\(tokens\\); the limit is 12 words per request"):
        predict_fn(many, small_ensemble, small_ensemble.probabilities_of_tokens, False, LIMITS)
    with pytest.raises(PayloadTooLarge, match="the limit is 8 words to explain"):
        predict_fn(
            Decoded(["good " * 9], "single", "text/plain"),
            small_ensemble,
            small_ensemble.probabilities_of_tokens,
            True,
            LIMITS,
        )
