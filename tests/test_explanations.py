"""sentiment.explanations: each token's share of the logit, for the linear model, the LSTM and both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.explanations import Explanation, linear_contributions, lstm_contributions
from sentiment.model import LSTMClassifier, LSTMConfig
from sentiment.ngrams import MAX_N, ngram_keys, token_ids
from sentiment.predictor import Predictor
from sentiment.text import tokenizer_settings
from sentiment.vocabulary import Vocabulary, encode_batch

WORDS = ["good", "bad", "not", "film", "plot", "great"]


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([WORDS], tokenizer_settings("default"), max_size=100, min_count=1)


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
    shares = linear_contributions(keys, coefficients, MAX_N, vocabulary, tokens)
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
    with_scopes = linear_contributions(keys, coefficients, 1, vocabulary, tokens, 3)
    assert with_scopes[1] != with_scopes[4] and with_scopes[3] == 0.0  # two features for "bad"; "." unknown
    assert with_scopes.sum() == pytest.approx(coefficients.sum())  # each feature counted once
    without = linear_contributions(keys, coefficients, 1, vocabulary, tokens)
    assert without[1] == without[4] and without[2] != with_scopes[2]  # without scopes: plain "bad" and "good"


def test_a_unigram_model_gives_each_word_its_coefficient_split_over_repeats(vocabulary: Vocabulary) -> None:
    keys = all_keys(vocabulary, max_n=1)
    coefficients = np.zeros(len(keys), dtype=np.float32)
    good = np.searchsorted(keys, ngram_keys(*token_ids([["good"]], vocabulary.index), 1)[0][0])
    coefficients[good] = 2.0
    shares = linear_contributions(keys, coefficients, 1, vocabulary, ["good", "film", "good"])
    assert shares.tolist() == [1.0, 0.0, 1.0]


def small_lstm(vocabulary: Vocabulary) -> LSTMClassifier:
    torch.manual_seed(0)
    model = LSTMClassifier(LSTMConfig(vocab_size=len(vocabulary), embedding_dim=8, hidden_dim=8))
    with torch.no_grad():
        model.classifier.weight.mul_(20)  # a model with opinions, so shares are far from zero
    return model.eval()


def logit(model: LSTMClassifier, vocabulary: Vocabulary, tokens: list[str], max_length: int) -> float:
    encoded = encode_batch(vocabulary, [tokens], max_length, "head_tail")
    with torch.no_grad():
        return model(torch.from_numpy(encoded.ids.astype(np.int64)), torch.from_numpy(encoded.lengths)).item()


def test_lstm_shares_add_up_to_the_distance_from_a_review_of_unknown_words(vocabulary: Vocabulary) -> None:
    model = small_lstm(vocabulary)
    tokens = ["great", "film", "not", "bad", "plot", "good"]
    gap = logit(model, vocabulary, tokens, 500) - logit(model, vocabulary, ["<unk>"] * len(tokens), 500)
    assert abs(gap) > 0.1
    # Max pooling makes the path piecewise smooth: the sum converges as the steps grow.
    fine = lstm_contributions(model, vocabulary, tokens, 500, "head_tail", steps=512)
    assert fine.sum() == pytest.approx(gap, rel=0.01)
    coarse = lstm_contributions(model, vocabulary, tokens, 500, "head_tail")
    assert coarse.sum() == pytest.approx(gap, rel=0.25)
    assert np.corrcoef(coarse, fine)[0, 1] > 0.9


def test_lstm_gives_nothing_to_tokens_the_encoding_cuts_off(vocabulary: Vocabulary) -> None:
    model = small_lstm(vocabulary)
    tokens = ["good"] * 3 + ["bad"] * 10 + ["great"] * 5
    shares = lstm_contributions(model, vocabulary, tokens, 8, "head_tail")  # keeps the first 2, last 6
    assert np.all(shares[2:12] == 0.0)
    assert np.all(shares[:2] != 0.0) and np.all(shares[12:] != 0.0)
    assert lstm_contributions(model, vocabulary, [], 8, "head_tail").shape == (0,)


def test_the_ensemble_explains_with_its_own_weights(small_ensemble: Predictor) -> None:
    (explanation,) = small_ensemble.explain(["A superb, moving film. I loved it, not awful at all!"])
    assert explanation.tokens == tuple(small_ensemble.tokenize("A superb, moving film. I loved it, not awful at all!"))
    tokens = list(explanation.tokens)
    weights = small_ensemble.ensemble
    assert weights is not None and small_ensemble.lstm is not None and small_ensemble.linear is not None
    linear = small_ensemble.linear
    lstm_weight, linear_weight, _ = weights.weights(np.array([len(tokens)]))  # this text's length decides
    assert weights.short_lstm is not None and lstm_weight[0] != weights.lstm  # a short text: blended weights
    assert linear.negation_window > 0  # "not awful at all": a negation scope, explained with its own features
    expected = linear_weight[0] * linear_contributions(
        linear.keys, linear.coefficients, linear.max_n, small_ensemble.vocabulary, tokens, linear.negation_window
    ) + lstm_weight[0] * lstm_contributions(small_ensemble.lstm, small_ensemble.vocabulary, tokens, 500, "head_tail")
    assert np.allclose(explanation.contributions, expected, atol=1e-6)
    top = dict(explanation.top(3))
    assert {"superb", "loved"} & set(top) and all(top[word] > 0 for word in {"superb", "loved"} & set(top))


def test_explanations_of_nothing_are_empty(small_ensemble: Predictor) -> None:
    assert small_ensemble.explain([]) == []
    (empty,) = small_ensemble.explain([""])
    assert empty.tokens == () and empty.top(5) == [] and empty.to_json() == []


def test_top_merges_repeated_tokens_and_ranks_by_strength() -> None:
    explanation = Explanation(tokens=("good", "plot", "good", "bad", "the"), contributions=(0.5, 0.1, 0.5, -2.0, 0.0))
    assert explanation.top(5) == [("bad", -2.0), ("good", 1.0), ("plot", 0.1)]
    assert explanation.to_json()[0] == {"token": "good", "contribution": 0.5}
