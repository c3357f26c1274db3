"""`Predictor`: texts in, `Prediction`s out, with exactly the preprocessing the model was trained with.

Every model family (lstm, linear, ensemble) answers `predict(texts)` the same way; training's
evaluation, batch scoring and the HTTP server all call it, so nothing downstream re-implements
tokenization or encoding. The predictor composes the families' members (`sentiment.models`): a
member family's model scores alone, the ensemble adds its members' logits by its weights.
Imports no training or serving code.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sentiment.models import MEMBERS
from sentiment.models.ensemble import EnsembleWeights
from sentiment.models.member import Encoding, Member, Precision
from sentiment.spans import Span, span_tokenizer
from sentiment.text import tokenizer_from_settings
from sentiment.vocabulary import Vocabulary

LABELS = ("negative", "positive")
UNKNOWN = "unknown"  # the label of a text with no word the model knows: no evidence either way
THRESHOLD = 0.5  # a text is positive when its probability of positive is at least this
TOP_WORDS = 8  # the deciding words a verdict names
# Scores strictly inside this band are "uncertain": the page shows them as "Uncertain — leaning ..." (web/app.js
# holds the same two numbers; tests/test_predictor.py checks they agree), benchmarks and drift count them.
UNCERTAIN_BAND = (0.4, 0.6)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One review's verdict: `label` and `score`, the probability of positive.

    `label` is "positive" or "negative", or "unknown" (score 0.5) for a text with no word in the model's
    vocabulary: emoji-free symbols, another language, gibberish. Its logit would be the models' biases alone.
    """

    label: Literal["positive", "negative", "unknown"]
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score}


def is_uncertain(label: str, score: float) -> bool:
    """Whether a verdict falls in the uncertain band; an "unknown" verdict (no known word) is not a verdict at all."""
    return label != UNKNOWN and UNCERTAIN_BAND[0] < score < UNCERTAIN_BAND[1]


@dataclass(frozen=True)
class Explanation:
    """A review's tokens, in order, each with its share of the logit and where it stands in the text as typed.

    The shares add up to the review's logit: to how far its verdict is from 0.5, what a text of no known
    word scores. Each member's contributions measure a review against a baseline (the LSTM's: as many
    unknown words; the linear model's: its bias), whose own logit is rarely 0 (the bundled model's leans
    negative, near -0.7 for a sentence), so on their own they would show a mildly negative review's words
    pushing positive. What the baseline scores is spread equally over the tokens: it is a review of that
    many unknown words, each in the same place as a token, so by symmetry each holds an equal part of it.

    `spans[i]` is the (start, end) of token i in the review's text (`text[start:end]` is what was typed
    for it); empty when the explanation was made from tokens alone.
    """

    tokens: tuple[str, ...]
    contributions: tuple[float, ...]
    spans: tuple[Span, ...] = ()

    def to_json(self) -> list[dict[str, Any]]:
        """Each token with its share (rounded to 4 places) and, when known, its span."""
        documents: list[dict[str, Any]] = [
            {"token": token, "contribution": round(share, 4)}
            for token, share in zip(self.tokens, self.contributions, strict=True)
        ]
        for document, span in zip(documents, self.spans, strict=False):
            document["span"] = list(span)
        return documents

    def top_words(self, count: int = TOP_WORDS) -> list[dict[str, Any]]:
        """The `count` tokens that moved the verdict most, either way: each token once (its shares summed),
        strongest first, none that moved nothing. What the page lists under the verdict."""
        totals: dict[str, float] = {}
        for token, share in zip(self.tokens, self.contributions, strict=True):
            totals[token] = totals.get(token, 0.0) + share
        ranked = sorted(((word, share) for word, share in totals.items() if share != 0.0), key=lambda p: -abs(p[1]))
        return [{"word": word, "contribution": round(share, 4)} for word, share in ranked[:count]]


class Predictor:
    """A trained model with its text pipeline. Build it with `sentiment.artifacts.load_model` or training.

    `members` holds the member families' scorers by name (`sentiment.models.MEMBERS`); a member family
    needs its own, the ensemble every member its weights name.
    """

    def __init__(
        self,
        family: str,
        tokenizer: dict[str, Any],
        vocabulary: Vocabulary,
        encoding: Encoding,
        members: Mapping[str, Member],
        ensemble: EnsembleWeights | None = None,
        version: str = "unsaved",
    ) -> None:
        if family == "ensemble":
            if ensemble is None:
                raise ValueError("an ensemble predictor needs its weights")
            needed = ensemble.members
        elif family in MEMBERS:
            needed = (family,)
        else:
            raise ValueError(f"unknown model family {family!r}; known: {', '.join((*MEMBERS, 'ensemble'))}")
        missing = [name for name in needed if name not in members]
        if missing:
            raise ValueError(f"a {family} predictor needs its {' and '.join(missing)} part")
        self.family = family
        self.tokenizer_settings = tokenizer
        self.tokenize = tokenizer_from_settings(tokenizer)
        self.tokenize_with_spans = span_tokenizer(tokenizer)  # the same tokens, slower: for explanations
        self.vocabulary = vocabulary
        self.encoding = encoding
        self.members = dict(members)
        self.ensemble = ensemble if family == "ensemble" else None
        self.version = version  # identifies the saved model (a prefix of its manifest's sha256)
        self.precision: Precision = "float32"  # the arithmetic its members score in (see `use_precision`)

    @property
    def scoring(self) -> tuple[str, ...]:
        """The members whose logits make this predictor's verdicts, in order."""
        return self.ensemble.members if self.ensemble is not None else (self.family,)

    def use_precision(self, precision: Precision | Literal["auto"]) -> Precision:
        """Score in float32 or bfloat16, each member proving it on a probe review; the precision now used.

        "auto" picks bfloat16 where the CPU computes it natively and the probe agrees with float32, else
        float32; an explicit "bfloat16" that cannot be computed here raises PrecisionError. On the IMDb
        test set the bundled model gives the same accuracy either way (labels agree on 99.98 % of
        reviews, probabilities within 0.003), and bfloat16 is about 1.4x faster on CPUs with
        AVX512-BF16 or AMX.
        """
        used = {self.members[name].use_precision(precision) for name in self.scoring}
        self.precision = "bfloat16" if "bfloat16" in used else "float32"
        return self.precision

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """A `Prediction` per text, in order."""
        token_lists = [self.tokenize(text) for text in texts]
        return self.verdicts(token_lists, self.probabilities_of_tokens(token_lists))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The probability that each text is positive (0.5 for a text with no word the model knows)."""
        return self.probabilities_of_tokens([self.tokenize(text) for text in texts])

    def probabilities_of_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """The probability that each tokenized text is positive (tokens from `self.tokenize`)."""
        probabilities = 1.0 / (1.0 + np.exp(-self.logits_of_tokens(token_lists)))
        probabilities[~self.knows_a_word(token_lists)] = THRESHOLD
        return probabilities

    def verdicts(self, token_lists: Sequence[Sequence[str]], scores: np.ndarray) -> list[Prediction]:
        """The verdict on each tokenized text from its score (`probabilities_of_tokens`): labels are made here only."""
        known = self.knows_a_word(token_lists)
        return [
            Prediction(label=LABELS[int(score >= THRESHOLD)] if knows else UNKNOWN, score=float(score))
            for score, knows in zip(scores, known, strict=True)
        ]

    def knows_a_word(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Whether each tokenized text holds at least one word of the model's vocabulary."""
        index = self.vocabulary.index
        return np.array([any(token in index for token in tokens) for tokens in token_lists], dtype=bool)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        token_lists = [self.tokenize(text) for text in texts]
        return self.logits_of_tokens(token_lists)

    def logits_of_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        parts = self.part_logits(token_lists)
        if self.ensemble is None:
            return parts[self.family]
        return self.ensemble.combine(parts, np.array([len(tokens) for tokens in token_lists]))

    def part_logits(self, token_lists: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """Each scoring member's logits, by name, as the ensemble combines them."""
        return {name: self.members[name].logits(token_lists) for name in self.scoring}

    def explain(self, texts: Sequence[str]) -> list[Explanation]:
        """Each text's tokens with their share of its logit (each family's module says how it is computed)
        and their spans in the text."""
        return [self.explain_text(text, self.tokenize(text)) for text in texts]

    def explain_text(self, text: str, tokens: Sequence[str]) -> Explanation:
        """The explanation of `text`, whose tokens (`self.tokenize(text)`) are given, with each token's span."""
        traced, spans = self.tokenize_with_spans(text)
        if traced != list(tokens):  # the two tokenizers are tested to agree; never show spans of other tokens
            log.error("token spans disagree with the tokens of a %d-character text; explained without spans", len(text))
            spans = []
        return dataclasses.replace(self.explain_tokens(tokens), spans=tuple(spans))

    def explain_tokens(self, tokens: Sequence[str]) -> Explanation:
        if not self.knows_a_word([tokens])[0]:  # an "unknown" verdict: no word decided anything
            return Explanation(tokens=tuple(tokens), contributions=(0.0,) * len(tokens))
        weights = {self.family: 1.0}
        if self.ensemble is not None:
            at_length, _ = self.ensemble.weights_at(np.array([len(tokens)]))
            weights = {name: float(weight[0]) for name, weight in at_length.items()}
        shares = np.zeros(len(tokens), dtype=np.float64)
        for name in self.scoring:
            shares += weights[name] * self.members[name].contributions(tokens)
        baseline = self.logits_of_tokens([tokens])[0] - shares.sum()  # the baseline's logit (Explanation says why)
        shares += baseline / len(tokens)
        return Explanation(tokens=tuple(tokens), contributions=tuple(shares.tolist()))
