"""sentiment.models.linear: n-gram keys, binarised counts, naive-Bayes ratios, lookups, negation scopes,
the model's arithmetic, each token's share of the logit, and saving and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.models.linear import (
    ID_BITS,
    MAX_N,
    NEGATED,
    FeatureCounts,
    FeatureSpace,
    LinearConfig,
    LinearScorer,
    NgramLinear,
    distinct_features,
    distinct_per_review,
    feature_counts,
    find,
    linear_parts,
    load_linear,
    ngram_keys,
    token_ids,
)
from sentiment.text import tokenizer_settings
from sentiment.vocabulary import UNKNOWN_ID, Vocabulary

WORDS = ["good", "bad", "not", "film", "plot", "great"]


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([WORDS], tokenizer_settings("default"), max_size=100, min_count=1)


def scorer(keys: np.ndarray, coefficients: np.ndarray, max_n: int, negation_window: int = 0) -> LinearScorer:
    return LinearScorer(keys=keys, coefficients=coefficients, bias=0.0, max_n=max_n, negation_window=negation_window)


INDEX = {"good": 2, "bad": 3, "film": 4, "not": 5}


def key(*ids: int) -> int:
    value = len(ids) << (ID_BITS * MAX_N)
    for position, token in enumerate(ids):
        value |= token << (ID_BITS * (len(ids) - 1 - position))
    return value


def test_keys_stay_inside_each_review_and_skip_unknown_tokens() -> None:
    ids, review_of = token_ids([["good", "film"], ["not", "zzz", "good"]], INDEX)
    assert ids.tolist() == [2, 4, 5, UNKNOWN_ID, 2]
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


def test_counts_merged_over_parts_give_the_feature_space_of_all_reviews() -> None:
    reviews = [["good", "film"], ["good"], ["bad", "film"], ["bad"], ["good", "bad"], ["film"]]
    labels = np.array([1, 1, 0, 0, 1, 0])

    def counts(rows: slice) -> FeatureCounts:
        ids, review_of = token_ids(reviews[rows], INDEX)
        keys, which = distinct_per_review(*ngram_keys(ids, review_of, 2))
        return feature_counts(keys, which, labels[rows])

    ids, review_of = token_ids(reviews, INDEX)
    whole = FeatureSpace.fit(*distinct_per_review(*ngram_keys(ids, review_of, 2)), labels, min_count=2)
    merged = FeatureSpace.from_counts(FeatureCounts.merge([counts(slice(0, 3)), counts(slice(3, 6))]), min_count=2)
    assert np.array_equal(merged.keys, whole.keys) and np.array_equal(merged.ratios, whole.ratios)


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
    assert np.count_nonzero(scoped == UNKNOWN_ID) == np.count_nonzero(plain == UNKNOWN_ID) == 1


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


def test_linear_model_sums_weight_times_ratio_per_review() -> None:
    model = NgramLinear(LinearConfig(features=4))
    with torch.no_grad():
        model.weight.weight[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        model.ratio.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        model.bias.fill_(0.25)
    logits = model(torch.tensor([0, 2, 1, 3]), torch.tensor([0, 2, 4]))  # reviews {0, 2}, {1, 3}, {}
    assert logits.tolist() == pytest.approx([0.5 + 6.0 + 0.25, -2.0 + 0.0 + 0.25, 0.25])


def all_keys(vocabulary: Vocabulary, max_n: int = 3) -> np.ndarray:
    """Every n-gram key of WORDS' vocabulary up to max_n, found by listing all n-grams of a long text."""
    rng = np.random.default_rng(0)
    tokens = [WORDS[i] for i in rng.integers(0, len(WORDS), 2_000)]
    keys, _ = ngram_keys(*token_ids([tokens], vocabulary.index), max_n)
    return np.unique(keys)


def test_linear_shares_add_up_to_the_logit_without_bias(vocabulary: Vocabulary) -> None:
    keys = all_keys(vocabulary)
    coefficients = np.random.default_rng(1).normal(size=len(keys)).astype(np.float32)
    tokens = ["not", "good", "film", "not", "good", "unseen", "plot"]
    shares = scorer(keys, coefficients, MAX_N).contributions(vocabulary, tokens)
    # The logit of binary features: each distinct n-gram of the review once.
    present, _ = ngram_keys(*token_ids([tokens], vocabulary.index), MAX_N)
    expected = coefficients[np.searchsorted(keys, np.unique(present))].sum()
    assert shares.sum() == pytest.approx(expected, rel=1e-5)
    assert shares[tokens.index("unseen")] == 0.0  # outside the vocabulary: in no n-gram


def test_linear_shares_of_negated_words_are_their_negated_features(vocabulary: Vocabulary) -> None:
    tokens = ["not", "bad", "good", ".", "bad"]  # "bad" once inside the scope of "not", once outside
    keys = np.unique(ngram_keys(*token_ids([tokens], vocabulary.index, 3), 1)[0])  # not, bad, not-bad, not-good
    assert len(keys) == 4
    coefficients = np.arange(1, len(keys) + 1, dtype=np.float32)
    with_scopes = scorer(keys, coefficients, 1, 3).contributions(vocabulary, tokens)
    assert with_scopes[1] != with_scopes[4] and with_scopes[3] == 0.0  # two features for "bad"; "." unknown
    assert with_scopes.sum() == pytest.approx(coefficients.sum())  # each feature counted once
    without = scorer(keys, coefficients, 1).contributions(vocabulary, tokens)
    assert without[1] == without[4] and without[2] != with_scopes[2]  # without scopes: plain "bad" and "good"


def test_a_unigram_model_gives_each_word_its_coefficient_split_over_repeats(vocabulary: Vocabulary) -> None:
    keys = all_keys(vocabulary, max_n=1)
    coefficients = np.zeros(len(keys), dtype=np.float32)
    good = np.searchsorted(keys, ngram_keys(*token_ids([["good"]], vocabulary.index), 1)[0][0])
    coefficients[good] = 2.0
    shares = scorer(keys, coefficients, 1).contributions(vocabulary, ["good", "film", "good"])
    assert shares.tolist() == [1.0, 0.0, 1.0]


def test_saving_and_loading_keep_the_scorer_and_refuse_bad_parts(vocabulary: Vocabulary) -> None:
    keys = all_keys(vocabulary)
    original = LinearScorer(
        keys=keys, coefficients=np.ones(len(keys), np.float32), bias=0.5, max_n=3, negation_window=4
    )
    tensors, document = linear_parts(original)
    loaded = load_linear(document, tensors, format_version=3)
    assert loaded.negation_window == 4 and loaded.bias == 0.5 and np.array_equal(loaded.keys, keys)
    assert load_linear(document, tensors, format_version=2).negation_window == 0  # before format 3: no scopes
    with pytest.raises(ValueError, match="negation_window"):
        load_linear({**document, "negation_window": 99}, tensors, format_version=3)
    with pytest.raises(ValueError, match="sorted int64"):
        load_linear(document, {**tensors, "linear.keys": torch.from_numpy(keys[::-1].copy())}, format_version=3)
