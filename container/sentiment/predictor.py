"""`Predictor`: texts in, `Prediction`s out, with exactly the preprocessing the model was trained with.

Every model family (lstm, linear, ensemble) answers `predict(texts)` the same way; training's
evaluation, batch scoring and the HTTP server all call it, so nothing downstream re-implements
tokenization or encoding. Imports no training or serving code.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from sentiment.errors import SentimentError
from sentiment.models.ensemble import EnsembleWeights
from sentiment.models.linear import LinearScorer
from sentiment.models.lstm import LSTMClassifier, lstm_contributions, lstm_logits
from sentiment.spans import Span, span_tokenizer
from sentiment.text import tokenizer_from_settings
from sentiment.vocabulary import EncodedBatch, Truncation, Vocabulary, encode_batch

LABELS = ("negative", "positive")
UNKNOWN = "unknown"  # the label of a text with no word the model knows: no evidence either way
THRESHOLD = 0.5  # a text is positive when its probability of positive is at least this
TOP_WORDS = 8  # the deciding words a verdict names
Precision = Literal["float32", "bfloat16"]
ENCODED_REVIEWS_AT_ONCE = 4_096  # reviews encoded together (4,096 x 400 ids: 6.5 MB)
PRECISION_PROBE = "A moving film, though not without its flaws: well acted, and I would watch it again."
PRECISION_PROBE_TOLERANCE = 0.25  # logits; bfloat16 keeps ~3 significant digits, a broken kernel is far off

log = logging.getLogger(__name__)


class PrecisionError(SentimentError):
    """A scoring precision asked for that this CPU cannot compute."""


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


@dataclass(frozen=True)
class Explanation:
    """A review's tokens, in order, each with its share of the logit and where it stands in the text as typed.

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


@dataclass(frozen=True)
class Encoding:
    """How tokens become the LSTM's fixed-length input."""

    max_length: int
    truncation: Truncation

    def encode(self, vocabulary: Vocabulary, token_lists: Sequence[Sequence[str]]) -> EncodedBatch:
        return encode_batch(vocabulary, token_lists, self.max_length, self.truncation)


class Predictor:
    """A trained model with its text pipeline. Build it with `sentiment.artifacts.load_model` or training."""

    def __init__(
        self,
        family: Literal["lstm", "linear", "ensemble"],
        tokenizer: dict[str, Any],
        vocabulary: Vocabulary,
        encoding: Encoding,
        lstm: LSTMClassifier | None = None,
        linear: LinearScorer | None = None,
        ensemble: EnsembleWeights | None = None,
        version: str = "unsaved",
        precision: Precision = "float32",
    ) -> None:
        needs = {"lstm": (lstm,), "linear": (linear,), "ensemble": (lstm, linear, ensemble)}[family]
        if any(part is None for part in needs):
            raise ValueError(
                f"a {family} predictor needs its "
                f"{'LSTM, linear model and weights' if family == 'ensemble' else family} part"
            )
        self.family = family
        self.tokenizer_settings = tokenizer
        self.tokenize = tokenizer_from_settings(tokenizer)
        self.tokenize_with_spans = span_tokenizer(tokenizer)  # the same tokens, slower: for explanations
        self.vocabulary = vocabulary
        self.encoding = encoding
        self.lstm = lstm.eval() if lstm is not None else None
        self.linear = linear
        self.ensemble = ensemble
        self.version = version  # identifies the saved model (a prefix of its manifest's sha256)
        self.precision = precision  # the LSTM's arithmetic when scoring (see `use_precision`)

    def use_precision(self, precision: Precision | Literal["auto"]) -> Precision:
        """Score the LSTM in float32 or bfloat16, proven by scoring a probe review; the precision now used.

        "auto" picks bfloat16 where the CPU computes it natively and the probe agrees with float32,
        else float32. An explicit "bfloat16" that cannot be computed here (oneDNN builds no bfloat16
        LSTM on CPUs with only AVX2) or that disagrees with float32 raises PrecisionError, so a server
        never reports ready with a model it cannot run. On the IMDb test set the bundled model gives
        the same accuracy either way (labels agree on 99.98 % of reviews, probabilities within
        0.003), and bfloat16 is about 1.4x faster on CPUs with AVX512-BF16 or AMX.
        """
        if precision == "float32" or self.lstm is None:
            self.precision = "float32"
            return self.precision
        if precision == "auto" and not native_bfloat16():
            self.precision = "float32"
            return self.precision
        failure = self._bfloat16_failure()
        if failure is None:
            self.precision = "bfloat16"
        elif precision == "auto":
            log.warning("bfloat16 scoring is not usable here (%s); scoring in float32", failure)
            self.precision = "float32"
        else:
            raise PrecisionError(
                f"bfloat16 scoring is not possible on this CPU ({cpu_description()}): {failure}; use float32 or auto"
            )
        return self.precision

    def _bfloat16_failure(self) -> str | None:
        """Why the LSTM cannot score in bfloat16 here (None when it can): the probe fails or disagrees."""
        assert self.lstm is not None
        encoded = self.encoding.encode(self.vocabulary, [self.tokenize(PRECISION_PROBE)])
        exact = lstm_logits(self.lstm, encoded)
        try:
            approximate = lstm_logits(self.lstm, encoded, bfloat16=True)
        except RuntimeError as error:  # oneDNN: "could not create a primitive descriptor for the LSTM ..."
            return f"the LSTM fails in bfloat16 ({str(error).split('.')[0]})"
        if not np.all(np.abs(approximate - exact) <= PRECISION_PROBE_TOLERANCE):
            return f"its logit {approximate[0]:.4f} differs from float32's {exact[0]:.4f}"
        return None

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
        if self.family != "ensemble":
            return parts[self.family]
        assert self.ensemble is not None
        return self.ensemble.combine(parts["lstm"], parts["linear"], np.array([len(tokens) for tokens in token_lists]))

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
        lstm_weight, linear_weight = 1.0, 1.0
        if self.ensemble is not None:
            lstm_weights, linear_weights, _ = self.ensemble.weights(np.array([len(tokens)]))
            lstm_weight, linear_weight = float(lstm_weights[0]), float(linear_weights[0])
        shares = np.zeros(len(tokens), dtype=np.float64)
        if self.lstm is not None:
            shares += lstm_weight * lstm_contributions(
                self.lstm, self.vocabulary, tokens, self.encoding.max_length, self.encoding.truncation
            )
        if self.linear is not None:
            shares += linear_weight * self.linear.contributions(self.vocabulary, tokens)
        return Explanation(tokens=tuple(tokens), contributions=tuple(shares.tolist()))

    def part_logits(self, token_lists: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """Each component's logits, as the ensemble combines them."""
        parts = {}
        if self.lstm is not None:
            parts["lstm"] = np.zeros(len(token_lists), dtype=np.float64)
            # Encoded a group at a time: every review takes max_length ids, so 100,000 one-word reviews
            # encoded at once would hold 160 MB of padding.
            for start in range(0, len(token_lists), ENCODED_REVIEWS_AT_ONCE):
                group = token_lists[start : start + ENCODED_REVIEWS_AT_ONCE]
                encoded = self.encoding.encode(self.vocabulary, group)
                logits = lstm_logits(self.lstm, encoded, bfloat16=self.precision == "bfloat16")
                parts["lstm"][start : start + len(group)] = logits
        if self.linear is not None:
            parts["linear"] = self.linear.logits(self.vocabulary, token_lists)
        return parts


def native_bfloat16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_description() -> str:
    """What torch sees of this CPU, for messages: its vector capability and native bfloat16."""
    return f"{torch.backends.cpu.get_cpu_capability()}, {'with' if native_bfloat16() else 'without'} native bfloat16"
