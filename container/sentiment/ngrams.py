"""Word n-gram features for the linear model, computed with numpy over a whole corpus at once.

Tokens become ids through a vocabulary; an n-gram of ids becomes one int64 key (n in the top bits,
20 bits per id), so n-grams are counted and looked up with sorts and binary searches instead of
millions of Python strings. Pure: no torch, no I/O.

Negation scopes (Das & Chen, 2001; Pang et al., 2002): up to `negation_window` words after a
negator ("not", "n't", "never", ...), stopping at a scope end, get ids of their own (the default
tokenizer keeps only "!" and "?" of the punctuation here, so scopes mostly end at those, "but",
another negator or the window; the seed tokenizer drops negators as stopwords: no scopes)
(NEGATED set), so "bad" in "not bad at all" is a feature of its own and not the "bad" of "a bad
film". Without them a linear model adds up "not" and "bad", and a short negated review reads as
its opposite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ID_BITS = 20  # ids below 2**20: IMDb's training reviews hold about 100,000 distinct tokens
MAX_N = 3  # 3 ids of 20 bits and n in 4 bits fit in an int64 key
UNKNOWN = 0  # the id of tokens outside the vocabulary; n-grams containing it are dropped
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
    ids = np.fromiter((get(token, UNKNOWN) for tokens in token_lists for token in tokens), dtype=np.int64)
    lengths = [len(tokens) for tokens in token_lists]
    review_of = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
    if negation_window > 0 and len(ids):
        if len(index) + 2 > NEGATED:
            raise ValueError(f"negation scopes need a vocabulary under {NEGATED:,} words, not {len(index) + 2:,}")
        codes = np.fromiter((_SCOPE_CODES.get(token, 0) for tokens in token_lists for token in tokens), np.int8)
        ids[negation_scopes(codes, review_of, negation_window) & (ids != UNKNOWN)] |= NEGATED
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
        valid &= part != UNKNOWN
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
class FeatureSpace:
    """The n-gram keys that are features (sorted) and their naive-Bayes log-count ratios."""

    keys: np.ndarray  # int64, sorted
    ratios: np.ndarray  # float32, log((p / |p|) / (q / |q|)) with add-one smoothing

    @classmethod
    def fit(cls, keys: np.ndarray, reviews: np.ndarray, labels: np.ndarray, min_count: int) -> FeatureSpace:
        """Keep keys found in at least `min_count` training reviews; ratios from positive vs negative.

        `keys` and `reviews` hold each (review, key) pair once (see `distinct_per_review`).
        """
        distinct, counts = np.unique(keys, return_counts=True)
        kept = distinct[counts >= min_count]
        positive = labels[reviews] == 1
        feature, known = find(kept, keys)
        p = 1.0 + np.bincount(feature[known & positive], minlength=len(kept))
        q = 1.0 + np.bincount(feature[known & ~positive], minlength=len(kept))
        ratios = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
        return cls(keys=kept, ratios=ratios)

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
