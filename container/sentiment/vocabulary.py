"""Token <-> id mapping built from training reviews, saved as JSON, and fixed-length encoding.

Id 0 is padding and id 1 stands for every token outside the vocabulary, as in the tutorial.
Pure: `to_json`/`from_json` convert, callers read and write files. Imports nothing else of the package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

PAD_ID = 0
UNKNOWN_ID = 1
PAD_TOKEN = "<pad>"
UNKNOWN_TOKEN = "<unk>"

VOCABULARY_FORMAT = "sentiment-vocabulary"
VOCABULARY_FORMAT_VERSION = 1

Truncation = Literal["head", "tail", "head_tail"]
TRUNCATIONS: tuple[Truncation, ...] = ("head", "tail", "head_tail")


class VocabularyError(ValueError):
    """A vocabulary file or build argument that cannot be used."""


@dataclass(frozen=True)
class Vocabulary:
    """Tokens in id order (ids 0 and 1 reserved) and the tokenizer settings they came from."""

    tokens: tuple[str, ...]
    tokenizer: dict[str, Any]
    counts: tuple[int, ...] = ()
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD_TOKEN, UNKNOWN_TOKEN):
            raise VocabularyError(f"ids 0 and 1 must be {PAD_TOKEN!r} and {UNKNOWN_TOKEN!r}")
        if len(set(self.tokens)) != len(self.tokens):
            raise VocabularyError("vocabulary tokens must be unique")
        if self.counts and len(self.counts) != len(self.tokens):
            raise VocabularyError("counts must give one count per token")
        # The reserved tokens are left out of the index: a review that contains the text "<pad>"
        # must be encoded as an unknown word, never as padding.
        index = {token: i for i, token in enumerate(self.tokens) if i > UNKNOWN_ID}
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        tokenizer: dict[str, Any],
        max_size: int = 5000,
        min_count: int = 1,
    ) -> Vocabulary:
        """The `max_size - 2` most frequent tokens seen at least `min_count` times.

        Ties are broken alphabetically so that the same reviews always give the same ids.
        """
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        return cls.from_counts(counter, tokenizer, max_size, min_count)

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], tokenizer: dict[str, Any], max_size: int = 5000, min_count: int = 1
    ) -> Vocabulary:
        """`build` from token counts already made (summed over the ranks of a job on several instances)."""
        if max_size < 3:
            raise VocabularyError(f"max_size must be at least 3 (two ids are reserved), got {max_size}")
        if min_count < 1:
            raise VocabularyError(f"min_count must be at least 1, got {min_count}")
        counter = dict(counts)
        for reserved in (PAD_TOKEN, UNKNOWN_TOKEN):
            counter.pop(reserved, None)
        ranked = sorted(
            ((token, n) for token, n in counter.items() if n >= min_count),
            key=lambda item: (-item[1], item[0]),
        )[: max_size - 2]
        return cls(
            tokens=(PAD_TOKEN, UNKNOWN_TOKEN, *(token for token, _ in ranked)),
            tokenizer=dict(tokenizer),
            counts=(0, 0, *(n for _, n in ranked)),
        )

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> Mapping[str, int]:
        """Token -> id for every token but the reserved two (read-only use)."""
        return self._index

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def ids(self, tokens: Iterable[str]) -> list[int]:
        get = self._index.get
        return [get(token, UNKNOWN_ID) for token in tokens]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": VOCABULARY_FORMAT,
            "version": VOCABULARY_FORMAT_VERSION,
            "tokenizer": self.tokenizer,
            "size": len(self.tokens),
            "tokens": list(self.tokens),
            "counts": list(self.counts),
        }

    @classmethod
    def from_json(cls, document: Any, source: str = "vocabulary") -> Vocabulary:
        """Rebuild from `to_json` output, refusing anything of another format or version."""
        if not isinstance(document, dict) or document.get("format") != VOCABULARY_FORMAT:
            raise VocabularyError(f"{source}: not a {VOCABULARY_FORMAT} document")
        if document.get("version") != VOCABULARY_FORMAT_VERSION:
            raise VocabularyError(
                f"{source}: format version {document.get('version')!r} is not supported "
                f"(this code reads version {VOCABULARY_FORMAT_VERSION})"
            )
        tokens, counts = document.get("tokens"), document.get("counts", [])
        tokenizer = document.get("tokenizer")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise VocabularyError(f"{source}: 'tokens' must be a list of strings")
        if not isinstance(counts, list) or not all(isinstance(n, int) for n in counts):
            raise VocabularyError(f"{source}: 'counts' must be a list of integers")
        if not isinstance(tokenizer, dict):
            raise VocabularyError(f"{source}: 'tokenizer' must be an object")
        if document.get("size") != len(tokens):
            raise VocabularyError(f"{source}: 'size' does not match the number of tokens")
        try:
            return cls(tokens=tuple(tokens), tokenizer=tokenizer, counts=tuple(counts))
        except VocabularyError as error:
            raise VocabularyError(f"{source}: {error}") from None


@dataclass(frozen=True)
class EncodedBatch:
    """Token ids padded to one length (`ids[i, lengths[i]:]` is padding) and the real lengths."""

    ids: np.ndarray  # int32, shape (reviews, max_length)
    lengths: np.ndarray  # int64, shape (reviews,), each between 1 and max_length


def encode_batch(
    vocabulary: Vocabulary,
    token_lists: Sequence[Sequence[str]],
    max_length: int = 500,
    truncation: Truncation = "head",
    head_length: int | None = None,
) -> EncodedBatch:
    """Ids for each review, padded with 0 or truncated to `max_length`.

    `truncation` keeps the first tokens ("head", the tutorial's choice), the last ("tail"), or the
    first `head_length` (default: a quarter) and the rest from the end ("head_tail"): reviews often
    state their verdict in the last lines. An empty review is encoded as one unknown token with
    length 1, so every review has at least one step for a recurrent model to read.
    """
    if max_length < 1:
        raise VocabularyError(f"max_length must be at least 1, got {max_length}")
    if truncation not in TRUNCATIONS:
        raise VocabularyError(f"truncation must be one of {', '.join(TRUNCATIONS)}, got {truncation!r}")
    head = max_length // 4 if head_length is None else head_length
    if not 0 <= head <= max_length:
        raise VocabularyError(f"head_length must be between 0 and max_length, got {head_length}")

    ids = np.zeros((len(token_lists), max_length), dtype=np.int32)
    lengths = np.empty(len(token_lists), dtype=np.int64)
    for row, tokens in enumerate(token_lists):
        kept = _truncate(tokens, max_length, truncation, head) if tokens else (UNKNOWN_TOKEN,)
        ids[row, : len(kept)] = vocabulary.ids(kept)
        lengths[row] = len(kept)
    return EncodedBatch(ids=ids, lengths=lengths)


def kept_positions(count: int, max_length: int, truncation: Truncation, head_length: int | None = None) -> list[range]:
    """The positions of a `count`-token review that `encode_batch` keeps, as ranges in order."""
    if count <= max_length:
        return [range(count)]
    if truncation == "head":
        return [range(max_length)]
    if truncation == "tail":
        return [range(count - max_length, count)]
    head = max_length // 4 if head_length is None else head_length
    return [range(head), range(count - (max_length - head), count)]


def _truncate(tokens: Sequence[str], max_length: int, truncation: Truncation, head: int) -> Sequence[str]:
    if len(tokens) <= max_length:
        return tokens
    return [
        token
        for kept in kept_positions(len(tokens), max_length, truncation, head)
        for token in tokens[kept.start : kept.stop]
    ]


LENGTH_BUCKET_BATCHES = 50  # batches sorted by length together: little padding, still shuffled


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices in batches of similar length (little padding), in random order."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * LENGTH_BUCKET_BATCHES
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
