"""What a member family is to the predictor: it scores tokenized texts, shares a logit out over a text's
tokens, proves its precision, and says what it saves. `sentiment.models.MEMBERS` lists how each is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch

from sentiment.vocabulary import EncodedBatch, Truncation, Vocabulary, encode_batch

Precision = Literal["float32", "bfloat16"]


@dataclass(frozen=True)
class Encoding:
    """How tokens become a fixed-length input (the LSTM's): the model's text pipeline records it."""

    max_length: int
    truncation: Truncation

    def encode(self, vocabulary: Vocabulary, token_lists: Sequence[Sequence[str]]) -> EncodedBatch:
        return encode_batch(vocabulary, token_lists, self.max_length, self.truncation)


@dataclass(frozen=True)
class LoadContext:
    """What a member's saved parts are read with: the model's vocabulary, encoding and format version."""

    vocabulary: Vocabulary
    encoding: Encoding
    format_version: int


class Member(Protocol):
    """A family that scores texts on its own (the LSTM, the linear model); the ensemble combines them."""

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """One logit (log-odds of positive) per tokenized text, in order."""
        ...

    def contributions(self, tokens: Sequence[str]) -> np.ndarray:
        """Each token's share of the text's logit."""
        ...

    def use_precision(self, precision: Precision | Literal["auto"]) -> Precision:
        """Score in this precision where the family can (proven, or a clear error); the one now used."""
        ...

    def saved(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Its tensors (named with its own prefix) and its JSON, as the model's files hold them."""
        ...
