"""sentiment.models.lstm: its settings and shape, padding independence, scoring, integrated gradients,
and saving and loading."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sentiment.models.lstm import (
    LSTMClassifier,
    LSTMConfig,
    LSTMSettings,
    load_lstm,
    lstm_contributions,
    lstm_logits,
    lstm_tensors,
    native_bfloat16,
)
from sentiment.text import tokenizer_settings
from sentiment.vocabulary import Vocabulary, encode_batch
from tests.test_models_lstm_tables import member

WORDS = ["good", "bad", "not", "film", "plot", "great"]


def config(vocab_size: int, **shape: Any) -> LSTMConfig:
    return LSTMConfig.of(LSTMSettings(**shape), vocab_size)


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([WORDS], tokenizer_settings("default"), max_size=100, min_count=1)


def test_the_shape_comes_from_the_settings_and_training_settings_stay_out() -> None:
    shape = config(50, hidden_dim=32, epochs=3).to_json()
    assert shape["vocab_size"] == 50 and shape["hidden_dim"] == 32 and shape["embedding_dim"] == 128
    assert "epochs" not in shape and "learning_rate" not in shape


CONFIGS = [
    {},
    {"pooling": "last"},
    {"bidirectional": False, "pooling": "last"},
    {"bidirectional": False},
    {"layers": 2},
]


@pytest.mark.parametrize("options", CONFIGS)
def test_padding_never_changes_a_reviews_logit(options: dict) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(config(40, embedding_dim=8, hidden_dim=6, **options)).eval()
    short, long = torch.randint(2, 40, (1, 4)), torch.randint(2, 40, (1, 11))
    batch = torch.zeros(2, 11, dtype=torch.long)
    batch[0, :4], batch[1] = short, long
    with torch.no_grad():
        alone = model(short, torch.tensor([4]))
        together = model(batch, torch.tensor([4, 11]))
        garbage_padding = batch.clone()
        garbage_padding[0, 4:] = torch.randint(2, 40, (7,))  # what lies past the length must not matter
        ignored = model(garbage_padding, torch.tensor([4, 11]))
    assert together.shape == (2,)
    assert torch.allclose(alone, together[:1], atol=1e-6)
    assert torch.allclose(together, ignored, atol=1e-6)


def test_the_backward_direction_reads_the_review_reversed() -> None:
    # A one-word difference at the start must reach the "last" features through the backward LSTM.
    torch.manual_seed(0)
    model = LSTMClassifier(config(40, embedding_dim=8, hidden_dim=6, pooling="last")).eval()
    first, second = torch.tensor([[5, 6, 7]]), torch.tensor([[9, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(model(first, torch.tensor([3])), model(second, torch.tensor([3])))


def test_gradients_reach_every_parameter() -> None:
    model = LSTMClassifier(config(30, embedding_dim=4, hidden_dim=3, layers=2))
    model(torch.randint(2, 30, (3, 7)), torch.tensor([7, 3, 1])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def small_lstm(vocabulary: Vocabulary) -> LSTMClassifier:
    torch.manual_seed(0)
    model = LSTMClassifier(config(len(vocabulary), embedding_dim=8, hidden_dim=8))
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


def test_scoring_in_chunks_matches_one_batch_and_saving_keeps_every_weight(vocabulary: Vocabulary) -> None:
    model = small_lstm(vocabulary)
    reviews = [WORDS[: 1 + n % 6] * (1 + n % 4) for n in range(40)]
    encoded = encode_batch(vocabulary, reviews, 50, "head_tail")
    with torch.no_grad():
        whole = model(torch.from_numpy(encoded.ids.astype(np.int64)), torch.from_numpy(encoded.lengths)).numpy()
    assert np.allclose(lstm_logits(model, encoded), whole, atol=1e-5)
    loaded = load_lstm(model.config.to_json(), lstm_tensors(model), len(vocabulary))
    assert np.array_equal(lstm_logits(loaded, encoded), lstm_logits(model, encoded))
    with pytest.raises(ValueError, match="embeddings for"):
        load_lstm(model.config.to_json(), lstm_tensors(model), len(vocabulary) + 1)


@pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16 (the refusal is tested elsewhere)")
def test_bfloat16_scoring_casts_the_weights_once_and_scores_as_autocast_does() -> None:
    scorer = member()
    token_lists = [["good"] * (row % 7 + 1) + ["bad"] for row in range(20)]
    assert scorer.use_precision("bfloat16") == "bfloat16"
    cast_once = scorer.bfloat16_network
    scored = scorer.logits(token_lists)
    assert scorer.bfloat16_network is cast_once
    assert {parameter.dtype for parameter in cast_once.parameters()} == {torch.bfloat16}
    # Explanations and the float32 tables read the network itself, which stays float32.
    assert {parameter.dtype for parameter in scorer.network.parameters()} == {torch.float32}
    encoded = scorer.encoding.encode(scorer.vocabulary, token_lists)
    assert np.array_equal(scored, lstm_logits(scorer.network, encoded, bfloat16=True))
    assert scorer.use_precision("float32") == "float32"
    assert scorer._bfloat16_network is None
