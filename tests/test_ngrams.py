"""sentiment.ngrams: n-gram keys, binarised counts, naive-Bayes ratios and lookups."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.ngrams import (
    ID_BITS,
    MAX_N,
    NEGATED,
    UNKNOWN,
    FeatureSpace,
    distinct_features,
    distinct_per_review,
    find,
    ngram_keys,
    token_ids,
)

INDEX = {"good": 2, "bad": 3, "film": 4, "not": 5}


def key(*ids: int) -> int:
    value = len(ids) << (ID_BITS * MAX_N)
    for position, token in enumerate(ids):
        value |= token << (ID_BITS * (len(ids) - 1 - position))
    return value


def test_keys_stay_inside_each_review_and_skip_unknown_tokens() -> None:
    ids, review_of = token_ids([["good", "film"], ["not", "zzz", "good"]], INDEX)
    assert ids.tolist() == [2, 4, 5, 0, 2]
    assert review_of.tolist() == [0, 0, 1, 1, 1]
    keys, reviews = ngram_keys(ids, review_of, 2)
    pairs = sorted(zip(reviews.tolist(), keys.tolist(), strict=True))
    assert pairs == sorted([(0, key(2)), (0, key(4)), (1, key(5)), (1, key(2)), (0, key(2, 4))])


def test_trigrams_and_distinct_pairs() -> None:
    ids, review_of = token_ids([["good", "good", "good", "good"]], INDEX)
    keys, reviews = distinct_per_review(*ngram_keys(ids, review_of, 3))
    assert sorted(keys.tolist()) == sorted([key(2), key(2, 2), key(2, 2, 2)])
    assert reviews.tolist() == [0, 0, 0]


def test_feature_space_counts_reviews_and_gives_nb_ratios() -> None:
    reviews = [["good", "film"], ["good"], ["bad", "film"], ["bad"]]
    labels = np.array([1, 1, 0, 0])
    ids, review_of = token_ids(reviews, INDEX)
    keys, rows = distinct_per_review(*ngram_keys(ids, review_of, 1))
    space = FeatureSpace.fit(keys, rows, labels, min_count=2)
    assert space.keys.tolist() == [key(2), key(3), key(4)]  # "film" is in 2 reviews, kept
    good, bad, film = space.ratios
    assert good > 0 > bad and film == pytest.approx(0.0, abs=1e-6)
    features, offsets = space.lookup(keys, rows, len(reviews))
    assert offsets.tolist() == [0, 2, 3, 5]
    assert sorted(features[:2].tolist()) == [0, 2]


def test_find_marks_missing_keys() -> None:
    position, found = find(np.array([3, 7, 9]), np.array([7, 8, 9, 10, 1]))
    assert found.tolist() == [True, False, True, False, False]
    assert position[found].tolist() == [1, 2]


def test_distinct_features_match_distinct_pairs_then_find() -> None:
    """The scoring path's one-step lookup gives exactly the (review, feature) pairs of the two-step one."""
    rng = np.random.default_rng(7)
    token_lists = [[f"w{rng.integers(0, 12)}" for _ in range(rng.integers(0, 40))] for _ in range(30)]
    index = {f"w{i}": i + 1 for i in range(10)}  # w10, w11: unknown
    keys, reviews = ngram_keys(*token_ids(token_lists, index), 3)
    feature_keys = np.unique(keys[rng.random(len(keys)) < 0.5])  # about half the n-grams are features
    distinct_keys, distinct_reviews = distinct_per_review(keys, reviews)
    position, found = find(feature_keys, distinct_keys)
    expected = sorted(zip(distinct_reviews[found].tolist(), position[found].tolist(), strict=True))
    got_reviews, got_features = distinct_features(feature_keys, keys, reviews)
    assert list(zip(got_reviews.tolist(), got_features.tolist(), strict=True)) == expected
    assert len(expected) > 100
    empty_reviews, empty_features = distinct_features(feature_keys, keys[:0], reviews[:0])
    assert len(empty_reviews) == len(empty_features) == 0


def negated(token_lists: list[list[str]], index: dict[str, int], window: int) -> list[list[str]]:
    """The words token_ids marks as negated, review by review."""
    ids, review_of = token_ids(token_lists, index, window)
    marked = [[] for _ in token_lists]
    words = [token for tokens in token_lists for token in tokens]
    for word, token_id, review in zip(words, ids.tolist(), review_of.tolist(), strict=True):
        if token_id & NEGATED:
            marked[review].append(word)
    return marked


def test_negation_scopes_run_a_few_words_after_a_negator_up_to_punctuation_or_but() -> None:
    reviews = [
        ["not", "bad", "at", "all", ".", "bad"],
        ["never", "boring", "but", "bad"],
        ["no", "no", "good", "film", "at", "all", "this"],  # a second negator starts the scope again
        ["good", "film", "not"],  # a scope does not reach into the next review
        ["bad", "film"],
        ["n't", "zzz", "bad"],  # unknown words stay unknown
    ]
    known = dict.fromkeys(token for tokens in reviews for token in tokens if token != "zzz")
    index = {word: i + 2 for i, word in enumerate(known)}
    assert negated(reviews, index, 3) == [["bad", "at", "all"], ["boring"], ["good", "film", "at"], [], [], ["bad"]]
    assert negated(reviews, index, 1) == [["bad"], ["boring"], ["good"], [], [], []]
    plain, _ = token_ids(reviews, index)
    scoped, _ = token_ids(reviews, index, 3)
    assert not np.any(plain & NEGATED) and np.array_equal(scoped & ~NEGATED, plain)
    assert np.count_nonzero(scoped == UNKNOWN) == np.count_nonzero(plain == UNKNOWN) == 1


def test_negation_scopes_need_room_for_their_ids() -> None:
    huge = dict.fromkeys((f"w{i}" for i in range(NEGATED)), 2)
    with pytest.raises(ValueError, match="vocabulary under"):
        token_ids([["not", "w1"]], huge, 3)
    assert token_ids([[]], huge, 3)[0].shape == (0,)


def test_no_tokens_and_too_long_ngrams() -> None:
    ids, review_of = token_ids([[], []], INDEX)
    keys, reviews = ngram_keys(ids, review_of, 3)
    assert len(keys) == len(reviews) == 0
    with pytest.raises(ValueError, match="1 to 3"):
        ngram_keys(ids, review_of, 4)
