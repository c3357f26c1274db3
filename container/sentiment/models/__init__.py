"""The model families, one module each, like nanoGPT's model.py: settings with their defaults (once),
scoring, each token's share of a verdict, and what the family saves and loads. Nothing here trains
(`sentiment.training` does, given a family's settings) or reads files (`sentiment.artifacts` does).

| module | family |
| --- | --- |
| `lstm.py` | a BiLSTM over word vectors (`LSTMSettings`, `LSTMClassifier`, `lstm_logits`, `lstm_contributions`) |
| `lstm_tables.py` | the LSTM's float32 scoring from looked-up input gates (`TabledLSTM`), for `lstm.py` |
| `linear.py` | NB-weighted logistic regression over word 1-3-grams (`LinearSettings`, `LinearScorer`, its n-grams) |
| `ensemble.py` | both, weighted by what the validation split says (`EnsembleSettings`, `EnsembleWeights`) |

`sentiment.predictor` composes them into the one `Predictor` everything scores with: a member family
(`member.py` says what that is) scores texts itself, the ensemble combines members. A new member
family is one module here and one line in `MEMBERS` (and its trainer in `sentiment.training`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sentiment.models import linear, lstm
from sentiment.models.member import LoadContext, Member

# How each member family is read back from a model's files, in the order the ensemble adds them.
MEMBERS: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor], LoadContext], Member]] = {
    "lstm": lstm.load_member,
    "linear": linear.load_member,
}
FAMILIES = (*MEMBERS, "ensemble")  # what `--model` may name
