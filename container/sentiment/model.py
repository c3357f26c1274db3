"""The networks: the LSTM classifier and the n-gram linear model. Torch only; no training, no I/O.

Both map a batch to one logit per review (the log-odds of "positive"); each is built from a small
config dataclass that artifacts store as JSON, so loading needs nothing but this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int
    embedding_dim: int = 128
    hidden_dim: int = 128
    layers: int = 1
    bidirectional: bool = True
    pooling: Literal["max_mean", "last"] = "max_mean"
    dropout: float = 0.4
    embedding_dropout: float = 0.2
    word_dropout: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LSTMClassifier(nn.Module):
    """Embedding -> (Bi)LSTM -> pooled features -> one logit, where padding never reaches a real step.

    Batches are right-padded, so a forward LSTM reaches the padding only after a review's last
    token. The backward direction reads each review reversed *within its length* (padding stays
    at the end), so it too sees real tokens only; outputs at padded steps are masked out of the
    pooling. This keeps CPU training on oneDNN's fast LSTM kernels, which packed sequences leave
    (their backward pass costs time quadratic in review length there).

    `pooling="last"` reads each review's last real step (the tutorial's model); `"max_mean"`
    concatenates the max and the mean over all real steps, so a verdict can come from anywhere.
    """

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        # Dropout1d on (batch, dims, time) drops whole vector dimensions for a review ("spatial").
        self.embedding_dropout = nn.Dropout1d(config.embedding_dropout)
        directions = 2 if config.bidirectional else 1
        inputs = [config.embedding_dim] + [config.hidden_dim * directions] * (config.layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, config.hidden_dim, batch_first=True) for size in inputs)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(size, config.hidden_dim, batch_first=True) for size in (inputs if config.bidirectional else [])
        )
        pooled = config.hidden_dim * directions * (2 if config.pooling == "max_mean" else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(pooled, 1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch,) for `ids` (batch, time) padded with 0 after `lengths` real steps."""
        if self.training and self.config.word_dropout > 0:
            # Hide random words (as unknown) so no single word carries a review.
            real = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
            hidden_words = torch.rand(ids.shape, device=ids.device) < self.config.word_dropout
            ids = ids.masked_fill(hidden_words & real, 1)
        return self.from_embeddings(self.embedding(ids), lengths)

    def from_embeddings(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits for already embedded reviews (batch, time, embedding_dim); explanations start here."""
        lengths = lengths.to(embedded.device)
        steps = torch.arange(embedded.shape[1], device=embedded.device)[None, :]
        real = steps < lengths[:, None]
        # For each review, the step that mirrors each step within the review (padding maps to itself).
        mirror = torch.where(real, lengths[:, None] - 1 - steps, steps)
        hidden = self.embedding_dropout(embedded.transpose(1, 2)).transpose(1, 2)
        for layer, forward_lstm in enumerate(self.forward_layers):
            outputs = [forward_lstm(hidden)[0]]
            if self.config.bidirectional:
                reversed_input = _gather_steps(hidden, mirror)
                outputs.append(_gather_steps(self.backward_layers[layer](reversed_input)[0], mirror))
            hidden = torch.cat(outputs, dim=2)
        if self.config.pooling == "last":
            size = self.config.hidden_dim
            last = _gather_steps(hidden[..., :size], (lengths - 1)[:, None].expand(-1, 1))[:, 0]
            # The backward direction ends at the first step.
            features = torch.cat([last, hidden[:, 0, size:]], dim=1) if self.config.bidirectional else last
        else:
            largest = hidden.masked_fill(~real[..., None], float("-inf")).amax(dim=1)
            mean = hidden.masked_fill(~real[..., None], 0.0).sum(dim=1) / lengths[:, None].to(hidden.dtype)
            features = torch.cat([largest, mean], dim=1)
        return self.classifier(self.dropout(features)).squeeze(-1)


def _gather_steps(values: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """values[b, steps[b, t], :] for every b, t.

    Picks whole rows of the flattened (batch * time, dims) values: `gather` would need an index
    per element (an int64 tensor as large as the values) and is about 15x slower on CPU.
    """
    batch, count = steps.shape
    rows = steps + torch.arange(batch, device=steps.device)[:, None] * values.shape[1]
    return values.reshape(-1, values.shape[2]).index_select(0, rows.reshape(-1)).view(batch, count, values.shape[2])


@dataclass(frozen=True)
class LinearConfig:
    features: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class NgramLinear(nn.Module):
    """Logistic regression over binary n-gram features scaled by naive-Bayes log-count ratios.

    logit = bias + sum over the review's distinct n-grams of weight[f] * ratio[f]. The ratios are
    fixed from training counts (Wang & Manning's NBSVM); only weights and bias are learned.
    """

    def __init__(self, config: LinearConfig) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.EmbeddingBag(config.features, 1, mode="sum")
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("ratio", torch.ones(config.features))

    def forward(self, features: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Logits (reviews,) for a flat tensor of feature ids and the offset where each review starts."""
        scaled = self.weight(features, offsets, per_sample_weights=self.ratio[features])
        return scaled.squeeze(-1) + self.bias

    def contributions(self, features: torch.Tensor) -> torch.Tensor:
        """Each feature's share of the logit (weight x ratio), for explanations."""
        return self.weight.weight[features, 0] * self.ratio[features]
