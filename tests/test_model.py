"""sentiment.model: the networks' shapes, padding independence, and the linear model's arithmetic."""

from __future__ import annotations

import pytest
import torch

from sentiment.model import LinearConfig, LSTMClassifier, LSTMConfig, NgramLinear

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
    model = LSTMClassifier(LSTMConfig(vocab_size=40, embedding_dim=8, hidden_dim=6, **options)).eval()
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
    model = LSTMClassifier(LSTMConfig(vocab_size=40, embedding_dim=8, hidden_dim=6, pooling="last")).eval()
    first, second = torch.tensor([[5, 6, 7]]), torch.tensor([[9, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(model(first, torch.tensor([3])), model(second, torch.tensor([3])))


def test_gradients_reach_every_parameter() -> None:
    model = LSTMClassifier(LSTMConfig(vocab_size=30, embedding_dim=4, hidden_dim=3, layers=2))
    model(torch.randint(2, 30, (3, 7)), torch.tensor([7, 3, 1])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_linear_model_sums_weight_times_ratio_per_review() -> None:
    model = NgramLinear(LinearConfig(features=4))
    with torch.no_grad():
        model.weight.weight[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        model.ratio.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        model.bias.fill_(0.25)
    logits = model(torch.tensor([0, 2, 1, 3]), torch.tensor([0, 2, 4]))  # reviews {0, 2}, {1, 3}, {}
    assert logits.tolist() == pytest.approx([0.5 + 6.0 + 0.25, -2.0 + 0.0 + 0.25, 0.25])
    assert model.contributions(torch.tensor([2, 1])).tolist() == pytest.approx([6.0, -2.0])
