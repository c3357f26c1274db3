"""sentiment.models.lstm_tables: scoring from looked-up gates gives the network's own logits, for every
shape it covers; chunks spread over threads give the same logits as one thread; the member uses the
tables only where they apply (float32, one layer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sentiment.models.lstm import LSTMClassifier, LSTMConfig, LSTMMember, LSTMSettings, lstm_logits
from sentiment.models.lstm_tables import TABLED_FROM_REVIEWS, TabledLSTM
from sentiment.models.member import Encoding
from sentiment.text import tokenizer_settings
from sentiment.vocabulary import EncodedBatch, Vocabulary

VOCABULARY_SIZE = 60
SHAPES = [
    {},
    {"pooling": "last"},
    {"bidirectional": False},
    {"bidirectional": False, "pooling": "last"},
]


def network(seed: int = 0, **shape: Any) -> LSTMClassifier:
    torch.manual_seed(seed)
    settings = LSTMSettings(embedding_dim=12, hidden_dim=10, **shape)
    model = LSTMClassifier(LSTMConfig.of(settings, VOCABULARY_SIZE)).eval()
    with torch.no_grad():  # biases start at 0; random ones check they reach the tables
        for name, parameter in model.named_parameters():
            if "bias" in name:
                parameter.uniform_(-0.5, 0.5)
    return model


def right_padded(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, VOCABULARY_SIZE, (length,), generator=generator)
    return ids, torch.tensor(lengths)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lengths", [[9, 7, 3, 1, 9], [6, 6, 6]], ids=["padded", "all full"])
def test_tabled_logits_are_the_networks_own(shape: dict[str, Any], lengths: list[int]) -> None:
    model = network(**shape)
    ids, lengths_tensor = right_padded(lengths)
    tables = TabledLSTM.of(model)
    assert tables is not None
    with torch.inference_mode():
        expected = model(ids, lengths_tensor)
    assert torch.allclose(tables.logits(ids, lengths_tensor), expected, atol=1e-5)


def test_a_deeper_lstm_has_no_tables_and_building_them_changes_no_weight() -> None:
    assert TabledLSTM.of(network(layers=2)) is None
    model = network()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    TabledLSTM.of(model)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) and before[name].dtype == after[name].dtype for name in before)


def encoded(count: int, seed: int = 2) -> EncodedBatch:
    """`count` reviews of 1-40 ids, so some chunks are scored from the tables and some by the network."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 41, count)
    ids = np.zeros((count, 40), dtype=np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, VOCABULARY_SIZE, length)
    return EncodedBatch(ids=ids, lengths=lengths.astype(np.int64))


def test_scoring_with_tables_matches_the_network_over_chunks_of_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sentiment.models.lstm.INFERENCE_TOKENS_PER_BATCH", 200)  # chunks of 5 to 200 reviews
    model = network()
    batch = encoded(3_000)
    plain = lstm_logits(model, batch)
    tabled = lstm_logits(model, batch, tables=TabledLSTM.of(model))
    assert np.allclose(tabled, plain, atol=1e-5)
    assert not np.array_equal(tabled, plain)  # the tables were used (they round in another order)
    # The shortest chunks have more reviews than the threshold, the longest fewer: both paths ran.
    assert 200 // 40 < TABLED_FROM_REVIEWS <= 200


def test_chunks_spread_over_threads_give_one_threads_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sentiment.models.lstm.INFERENCE_TOKENS_PER_BATCH", 200)
    model = network()
    tables = TabledLSTM.of(model)
    batch = encoded(600)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [lstm_logits(model, batch), lstm_logits(model, batch, tables=tables)]
        torch.set_num_threads(3)
        spread = [lstm_logits(model, batch), lstm_logits(model, batch, tables=tables)]
        assert torch.get_num_threads() == 3  # the pool's threads set their own count, not the caller's
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(one, other) for one, other in zip(alone, spread, strict=True))


def member() -> LSTMMember:
    vocabulary = Vocabulary.build([["good", "bad"]], tokenizer_settings("default"), max_size=100, min_count=1)
    settings = LSTMSettings(embedding_dim=12, hidden_dim=10)
    model = LSTMClassifier(LSTMConfig.of(settings, len(vocabulary))).eval()
    return LSTMMember(model, vocabulary, Encoding(max_length=50, truncation="head"))


def test_the_member_scores_from_tables_in_float32_only() -> None:
    scorer = member()
    scorer.logits([["good", "bad"]] * (TABLED_FROM_REVIEWS - 1))
    assert scorer._tables is None  # too few reviews to use them
    assert scorer.use_precision("float32") == "float32"
    assert scorer._tables is not None  # a server builds them while it loads, not in its first batch
    token_lists = [["good"] * (row % 7 + 1) for row in range(40)]
    from_tables = scorer.logits(token_lists)
    scorer.precision = "bfloat16"
    assert scorer.tables is None  # bfloat16 runs oneDNN's kernel
    scorer.precision = "float32"
    assert np.allclose(from_tables, lstm_logits(scorer.network, scorer.encoding.encode(scorer.vocabulary, token_lists)))
