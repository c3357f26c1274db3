"""The linear family: naive-Bayes-weighted logistic regression over word 1-3-grams (Wang & Manning's
NBSVM): its settings, its n-gram features, scoring, each token's share of a verdict, and what it saves
and loads. numpy for the features, torch only for the trainable module.

Tokens become ids through the vocabulary; an n-gram of ids becomes one int64 key (n in the top bits,
20 bits per id), so n-grams are counted and looked up with sorts and binary searches instead of
millions of Python strings. Out-of-vocabulary words (id UNKNOWN_ID) take part in no n-gram.

Negation scopes (Das & Chen, 2001; Pang et al., 2002): with `negation_window`, the ids of up to that
many words after a negator ("not", "n't", "never", ...) carry the NEGATED bit, so "bad" in "not bad
at all" is a feature of its own and not the "bad" of "a bad film"; without them a linear model adds
up "not" and "bad", and a short negated review reads as its opposite. A scope stops at a scope end:
the default tokenizer keeps only "!" and "?" of the punctuation, so scopes mostly end at those, at
"but", at another negator or at the window's end; the seed tokenizer drops negators as stopwords, so
it has no scopes.

A review's logit is its bias plus one coefficient per distinct n-gram it contains, so the model is
additive: each n-gram's coefficient is split evenly over its occurrences and, within one, over its
tokens, and the shares add up exactly to the logit minus the bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sentiment.models.member import LoadContext
from sentiment.settings import setting
from sentiment.vocabulary import UNKNOWN_ID, Vocabulary

TENSOR_PREFIX = "linear."  # its tensors' names in the model's weights file


@dataclass(frozen=True)
class LinearSettings:
    """What the linear family is told. Defaults are the README's best configuration."""

    ngram_max: int = setting(3, "longest word n-gram of the linear model", low=1, high=3)
    ngram_min_count: int = setting(2, "an n-gram must occur this often in train", low=1)
    l2: float = setting(1e-4, "L2 penalty of the linear model", low=0.0, high=10.0)
    # Off by default: on the validation split it lifts the linear model alone (91.28 -> 91.52 % with 5) but
    # not the ensemble (92.20 -> 92.16 % of reviews, 75.12 -> 74.89 % of sentences; neither significant).
    negation_window: int = setting(
        0,
        "linear model: words after a negator (not, n't, never, ...) that become features of their own, up to "
        "'!', '?' or 'but'; 0: none",
        low=0,
        high=50,
    )


# -- n-gram features --------------------------------------------------------------------------------

ID_BITS = 20  # ids below 2**20: IMDb's training reviews hold about 100,000 distinct tokens
MAX_N = 3  # 3 ids of 20 bits and n in 4 bits fit in an int64 key
NEGATED = 1 << (ID_BITS - 1)  # set in the id of a word inside a negation scope; vocabulary ids stay below it
NEGATORS = frozenset({"not", "n't", "no", "never", "nothing", "nobody", "nor", "neither", "without", "hardly"})
SCOPE_ENDS = frozenset({".", ",", "!", "?", ";", ":", "(", ")", "but"})
_NEGATOR, _SCOPE_END = 1, 2
_SCOPE_CODES = {**dict.fromkeys(NEGATORS, _NEGATOR), **dict.fromkeys(SCOPE_ENDS, _SCOPE_END)}


def token_ids(
    token_lists: Sequence[Sequence[str]], index: dict[str, int], negation_window: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """All reviews' token ids in one array, and the review each position belongs to; with a
    `negation_window`, the ids of words in a negation scope carry NEGATED."""
    get = index.get
    ids = np.fromiter((get(token, UNKNOWN_ID) for tokens in token_lists for token in tokens), dtype=np.int64)
    lengths = [len(tokens) for tokens in token_lists]
    review_of = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
    if negation_window > 0 and len(ids):
        if len(index) + 2 > NEGATED:
            raise ValueError(f"negation scopes need a vocabulary under {NEGATED:,} words, not {len(index) + 2:,}")
        codes = np.fromiter((_SCOPE_CODES.get(token, 0) for tokens in token_lists for token in tokens), np.int8)
        ids[negation_scopes(codes, review_of, negation_window) & (ids != UNKNOWN_ID)] |= NEGATED
    return ids, review_of


def negation_scopes(codes: np.ndarray, review_of: np.ndarray, window: int) -> np.ndarray:
    """Which positions lie in a negation scope: at most `window` words after a negator (code 1) of
    the same review, with no scope end (code 2) or other negator between; negators and ends are not."""
    position = np.arange(len(codes))
    first_of_review = np.ones(len(codes), dtype=bool)
    first_of_review[1:] = review_of[1:] != review_of[:-1]
    last_negator = np.maximum.accumulate(np.where(codes == _NEGATOR, position, -1))
    # A review's start ends any scope just before its first word (which may itself be a negator).
    ends = np.where(codes == _SCOPE_END, position, np.where(first_of_review, position - 1, -1))
    last_end = np.maximum.accumulate(ends)
    return (last_negator > last_end) & (position - last_negator <= window) & (codes == 0)


def ngram_keys(ids: np.ndarray, review_of: np.ndarray, max_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys of every 1..max_n-gram that lies inside one review and has no unknown token,
    with the review of each key."""
    if not 1 <= max_n <= MAX_N:
        raise ValueError(f"n-grams of length 1 to {MAX_N} are supported, not {max_n}")
    keys, reviews = [], []
    for n in range(1, max_n + 1):
        key, start = ngrams_of_length(ids, review_of, n)
        keys.append(key)
        reviews.append(review_of[start])
    return np.concatenate(keys), np.concatenate(reviews)


def ngrams_of_length(ids: np.ndarray, review_of: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the n-grams inside one review with no unknown token, and the position each starts at."""
    count = max(0, len(ids) - n + 1)
    key = np.full(count, n << (ID_BITS * MAX_N), dtype=np.int64)
    valid = np.ones(count, dtype=bool)
    for offset in range(n):
        part = ids[offset : offset + count]
        key |= part << (ID_BITS * (n - 1 - offset))
        valid &= part != UNKNOWN_ID
    valid &= review_of[:count] == review_of[n - 1 : n - 1 + count]
    return key[valid], np.flatnonzero(valid)


def distinct_per_review(keys: np.ndarray, reviews: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (review, key) pair once: features are binary (present or not), as NBSVM's are."""
    order = np.lexsort((keys, reviews))
    keys, reviews = keys[order], reviews[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = (keys[1:] != keys[:-1]) | (reviews[1:] != reviews[:-1])
    return keys[first], reviews[first]


@dataclass(frozen=True)
class FeatureCounts:
    """Each distinct n-gram key (sorted), the reviews it occurs in, and how many of those are positive."""

    keys: np.ndarray  # int64, sorted
    reviews: np.ndarray  # int64
    positive: np.ndarray  # int64

    @classmethod
    def merge(cls, parts: Sequence[FeatureCounts]) -> FeatureCounts:
        """The counts of all `parts` together, as if counted over their reviews at once."""
        keys, which = np.unique(np.concatenate([part.keys for part in parts]), return_inverse=True)
        totals = [
            np.bincount(which, np.concatenate([getattr(p, name) for p in parts]), len(keys))
            for name in ("reviews", "positive")
        ]
        return cls(keys=keys, reviews=totals[0].astype(np.int64), positive=totals[1].astype(np.int64))


def feature_counts(keys: np.ndarray, reviews: np.ndarray, labels: np.ndarray) -> FeatureCounts:
    """Count (review, key) pairs, each given once (see `distinct_per_review`), per key and per positive label."""
    distinct, which, counts = np.unique(keys, return_inverse=True, return_counts=True)
    positive = np.bincount(which, weights=labels[reviews] == 1, minlength=len(distinct))
    return FeatureCounts(keys=distinct, reviews=counts.astype(np.int64), positive=positive.astype(np.int64))


@dataclass(frozen=True)
class FeatureSpace:
    """The n-gram keys that are features (sorted) and their naive-Bayes log-count ratios."""

    keys: np.ndarray  # int64, sorted
    ratios: np.ndarray  # float32, log((p / |p|) / (q / |q|)) with add-one smoothing

    @classmethod
    def fit(cls, keys: np.ndarray, reviews: np.ndarray, labels: np.ndarray, min_count: int) -> FeatureSpace:
        """Keep keys found in at least `min_count` training reviews; ratios from positive vs negative.

        `keys` and `reviews` hold each (review, key) pair once (see `distinct_per_review`).
        """
        return cls.from_counts(feature_counts(keys, reviews, labels), min_count)

    @classmethod
    def from_counts(cls, counts: FeatureCounts, min_count: int) -> FeatureSpace:
        """`fit` from counts already made (merged over the ranks of a job on several instances)."""
        kept = counts.reviews >= min_count
        p = 1.0 + counts.positive[kept]
        q = 1.0 + (counts.reviews - counts.positive)[kept]
        ratios = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
        return cls(keys=counts.keys[kept], ratios=ratios)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: np.ndarray, reviews: np.ndarray, review_count: int) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids of each review, flat and in review order, and where each review starts."""
        feature, known = find(self.keys, keys)
        feature, reviews = feature[known], reviews[known]
        order = np.argsort(reviews, kind="stable")
        offsets = np.searchsorted(reviews[order], np.arange(review_count))
        return feature[order], offsets


def distinct_features(feature_keys: np.ndarray, keys: np.ndarray, reviews: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each review's distinct features among its n-gram `keys`: (review, feature position) pairs,
    ordered by review, each pair once; keys that are not features are dropped.

    The scoring path's `distinct_per_review` + `find`, about 3x faster on a batch: the keys are
    searched in sorted order (the binary searches then walk `feature_keys` forward instead of
    jumping about a table larger than the cache), and the pairs are deduplicated with one sort of a
    single int64 (review in the high bits, feature in the low), not a two-key lexsort.
    """
    order = np.argsort(keys)
    position, found = find(feature_keys, keys[order])
    bits = max(1, len(feature_keys).bit_length())
    pairs = np.sort((reviews[order][found] << bits) | position[found])
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]
    pairs = pairs[first]
    return pairs >> bits, pairs & ((1 << bits) - 1)


def find(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each key in `sorted_keys`, and whether it is there at all."""
    position = np.searchsorted(sorted_keys, keys)
    found = position < len(sorted_keys)
    found[found] &= sorted_keys[position[found]] == keys[found]
    return position, found


# -- the trainable module, the folded scorer and contributions --------------------------------------


@dataclass(frozen=True)
class LinearConfig:
    features: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class NgramLinear(nn.Module):
    """Logistic regression over binary n-gram features scaled by naive-Bayes log-count ratios, for training.

    logit = bias + sum over the review's distinct n-grams of weight[f] * ratio[f]. The ratios are
    fixed from training counts; only weights and bias are learned. `LinearScorer` is what is kept.
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


@dataclass(frozen=True)
class LinearScorer:
    """The trained n-gram model folded for inference: one coefficient (weight x NB ratio) per n-gram key."""

    keys: np.ndarray  # int64, sorted n-gram keys
    coefficients: np.ndarray  # float32, one per key
    bias: float
    max_n: int
    negation_window: int = 0  # words after a negator with ids of their own; 0: none

    def logits(self, vocabulary: Vocabulary, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        ids, review_of = token_ids(token_lists, vocabulary.index, self.negation_window)
        reviews, features = distinct_features(self.keys, *ngram_keys(ids, review_of, self.max_n))
        sums = np.bincount(reviews, weights=self.coefficients[features], minlength=len(token_lists))
        return sums + self.bias

    def contributions(self, vocabulary: Vocabulary, tokens: Sequence[str]) -> np.ndarray:
        """Each token's share of the logit (without the bias); see the module's docstring."""
        ids, review_of = token_ids([tokens], vocabulary.index, self.negation_window)
        shares = np.zeros(len(tokens), dtype=np.float64)
        for n in range(1, min(self.max_n, MAX_N) + 1):
            ngrams, starts = ngrams_of_length(ids, review_of, n)
            position, found = find(self.keys, ngrams)
            if not found.any():
                continue
            ngrams, starts = ngrams[found], starts[found]
            # Features are binary: an n-gram's coefficient counts once however often it occurs.
            _, which, occurrences = np.unique(ngrams, return_inverse=True, return_counts=True)
            share = self.coefficients[position[found]].astype(np.float64) / occurrences[which] / n
            for offset in range(n):
                np.add.at(shares, starts + offset, share)
        return shares


# -- saving and loading -----------------------------------------------------------------------------


def linear_parts(scorer: LinearScorer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The scorer as the model's weights file (tensors) and manifest (JSON) hold it."""
    tensors = {
        f"{TENSOR_PREFIX}keys": torch.from_numpy(scorer.keys),
        f"{TENSOR_PREFIX}coefficients": torch.from_numpy(scorer.coefficients),
    }
    return tensors, {"bias": scorer.bias, "max_n": scorer.max_n, "negation_window": scorer.negation_window}


def load_linear(document: dict[str, Any], tensors: dict[str, torch.Tensor], format_version: int) -> LinearScorer:
    """The scorer saved as `document` and its tensors; models before format 3 had no negation scopes."""
    keys = tensors[f"{TENSOR_PREFIX}keys"].numpy()
    coefficients = tensors[f"{TENSOR_PREFIX}coefficients"].numpy().astype(np.float32)
    if keys.dtype != np.int64 or keys.shape != coefficients.shape or np.any(np.diff(keys) <= 0):
        raise ValueError("the linear model's keys must be sorted int64, one per coefficient")
    window = document.get("negation_window", 0) if format_version >= 3 else 0
    if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 50:
        raise ValueError(f"the linear model's negation_window must be a whole number from 0 to 50, not {window!r}")
    return LinearScorer(
        keys=keys,
        coefficients=coefficients,
        bias=float(document["bias"]),
        max_n=int(document["max_n"]),
        negation_window=window,
    )


# -- as a member of the predictor -------------------------------------------------------------------


@dataclass(frozen=True)
class LinearMember:
    """The linear model as the predictor composes it: the folded scorer and the vocabulary it reads."""

    scorer: LinearScorer
    vocabulary: Vocabulary

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        return self.scorer.logits(self.vocabulary, token_lists)

    def contributions(self, tokens: Sequence[str]) -> np.ndarray:
        return self.scorer.contributions(self.vocabulary, tokens)

    def use_precision(self, precision: str) -> Literal["float32"]:
        """Sums of float32 coefficients in float64: there is no other precision to prove."""
        return "float32"

    def saved(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return linear_parts(self.scorer)


def load_member(document: dict[str, Any], tensors: dict[str, torch.Tensor], context: LoadContext) -> LinearMember:
    """The linear member saved as `document` and its tensors."""
    return LinearMember(load_linear(document, tensors, context.format_version), context.vocabulary)
