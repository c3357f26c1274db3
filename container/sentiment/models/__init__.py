"""The model families, one module each, like nanoGPT's model.py: settings with their defaults (once),
scoring, each token's share of a verdict, and what the family saves and loads. Nothing here trains
(`sentiment.training` does, given a family's settings) or reads files (`sentiment.artifacts` does).

| module | family |
| --- | --- |
| `lstm.py` | a BiLSTM over word vectors (`LSTMSettings`, `LSTMClassifier`, `lstm_logits`, `lstm_contributions`) |
| `linear.py` | NB-weighted logistic regression over word 1-3-grams (`LinearSettings`, `LinearScorer`, its n-grams) |
| `ensemble.py` | both, weighted by what the validation split says (`EnsembleSettings`, `EnsembleWeights`) |

`sentiment.predictor` composes them into the one `Predictor` everything scores with.
"""

from __future__ import annotations

FAMILIES = ("lstm", "linear", "ensemble")  # what `--model` may name; each is a module here
