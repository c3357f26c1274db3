"""sentiment.vocabulary: building, JSON round trip, and fixed-length encoding."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentiment.files import read_json, write_json_atomic
from sentiment.vocabulary import (
    PAD_ID,
    UNKNOWN_ID,
    Vocabulary,
    VocabularyError,
    encode_batch,
)

TOKENIZER = {"name": "default", "version": 1}
REVIEWS = [["good", "film", "good"], ["bad", "film"], ["good", "bad", "plot"]]


def test_build_ranks_by_count_then_alphabet_after_the_reserved_ids() -> None:
    vocabulary = Vocabulary.build(REVIEWS, TOKENIZER)
    assert vocabulary.tokens == ("<pad>", "<unk>", "good", "bad", "film", "plot")
    assert vocabulary.counts == (0, 0, 3, 2, 2, 1)
    assert vocabulary.index["good"] == 2
    assert vocabulary.ids(["never seen"]) == [UNKNOWN_ID]


def test_build_respects_max_size_and_min_count() -> None:
    assert Vocabulary.build(REVIEWS, TOKENIZER, max_size=4).tokens == ("<pad>", "<unk>", "good", "bad")
    assert Vocabulary.build(REVIEWS, TOKENIZER, min_count=2).tokens == ("<pad>", "<unk>", "good", "bad", "film")


def test_counts_summed_over_parts_build_the_vocabulary_of_all_reviews() -> None:
    reviews = [["b", "a", "c"], ["a", "b"], ["c", "d", "a"], ["e"]]
    counts: Counter[str] = Counter()
    for tokens in reviews[2:]:
        counts.update(tokens)
    counts.update(Counter(["b", "a", "c", "a", "b"]))
    assert Vocabulary.from_counts(counts, {}, 5, 1) == Vocabulary.build(reviews, {}, 5, 1)


def test_build_never_gives_reserved_tokens_a_second_id() -> None:
    vocabulary = Vocabulary.build([["<pad>", "<unk>", "<unk>", "word"]], TOKENIZER)
    assert vocabulary.tokens == ("<pad>", "<unk>", "word")


def test_reserved_token_texts_in_a_review_encode_as_unknown() -> None:
    vocabulary = Vocabulary.build(REVIEWS, TOKENIZER)
    assert vocabulary.ids(["<pad>", "<unk>", "good"]) == [UNKNOWN_ID, UNKNOWN_ID, vocabulary.index["good"]]


@pytest.mark.parametrize(("max_size", "min_count"), [(2, 1), (0, 1), (10, 0)])
def test_build_refuses_impossible_settings(max_size: int, min_count: int) -> None:
    with pytest.raises(VocabularyError):
        Vocabulary.build(REVIEWS, TOKENIZER, max_size=max_size, min_count=min_count)


def test_json_round_trip_keeps_tokens_counts_and_tokenizer(tmp_path: Path) -> None:
    vocabulary = Vocabulary.build([*REVIEWS, ["café", "日本"]], TOKENIZER)
    write_json_atomic(tmp_path / "vocabulary.json", vocabulary.to_json())
    loaded = Vocabulary.from_json(read_json(tmp_path / "vocabulary.json"))
    assert loaded == vocabulary
    assert loaded.tokenizer == TOKENIZER
    assert loaded.ids(["good", "café", "zzz"]) == vocabulary.ids(["good", "café", "zzz"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something-else"}, "not a sentiment-vocabulary"),
        ({"version": 99}, "version 99 is not supported"),
        ({"tokens": ["<pad>", "<unk>", 3]}, "list of strings"),
        ({"tokens": ["<unk>", "<pad>"], "size": 2, "counts": []}, "ids 0 and 1"),
        ({"tokens": ["<pad>", "<unk>", "a", "a"], "size": 4, "counts": []}, "unique"),
        ({"size": 1000}, "'size' does not match"),
        ({"tokenizer": "default"}, "'tokenizer' must be an object"),
    ],
)
def test_from_json_refuses_damaged_documents(change: dict, message: str) -> None:
    document = Vocabulary.build(REVIEWS, TOKENIZER).to_json() | change
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.from_json(document)


def test_read_json_names_a_file_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "vocabulary.json").write_bytes(b'{"tokens": [')
    with pytest.raises(ValueError, match="vocabulary.json: not valid JSON"):
        read_json(tmp_path / "vocabulary.json")
    (tmp_path / "vocabulary.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_json(tmp_path / "vocabulary.json")


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.build([[f"w{i}" for i in range(20)]], TOKENIZER)


def ids(vocabulary: Vocabulary, *tokens: str) -> list[int]:
    return vocabulary.ids(tokens)


def test_encode_pads_with_zero_and_reports_lengths(vocabulary: Vocabulary) -> None:
    batch = encode_batch(vocabulary, [["w0", "w1"], ["w2", "nope", "w3"]], max_length=4)
    assert batch.ids.tolist() == [
        [*ids(vocabulary, "w0", "w1"), PAD_ID, PAD_ID],
        [*ids(vocabulary, "w2"), UNKNOWN_ID, *ids(vocabulary, "w3"), PAD_ID],
    ]
    assert batch.lengths.tolist() == [2, 3]
    assert batch.ids.dtype == np.int32


def test_encode_truncates_head_tail_or_both(vocabulary: Vocabulary) -> None:
    tokens = [f"w{i}" for i in range(10)]
    head = encode_batch(vocabulary, [tokens], max_length=4, truncation="head")
    tail = encode_batch(vocabulary, [tokens], max_length=4, truncation="tail")
    both = encode_batch(vocabulary, [tokens], max_length=4, truncation="head_tail", head_length=1)
    assert head.ids[0].tolist() == ids(vocabulary, "w0", "w1", "w2", "w3")
    assert tail.ids[0].tolist() == ids(vocabulary, "w6", "w7", "w8", "w9")
    assert both.ids[0].tolist() == ids(vocabulary, "w0", "w7", "w8", "w9")
    assert head.lengths.tolist() == tail.lengths.tolist() == both.lengths.tolist() == [4]


def test_head_tail_keeps_a_quarter_from_the_start_by_default(vocabulary: Vocabulary) -> None:
    tokens = [f"w{i}" for i in range(20)]
    both = encode_batch(vocabulary, [tokens], max_length=8, truncation="head_tail")
    assert both.ids[0].tolist() == ids(vocabulary, "w0", "w1", *(f"w{i}" for i in range(14, 20)))


def test_empty_and_all_unknown_reviews_have_a_defined_encoding(vocabulary: Vocabulary) -> None:
    batch = encode_batch(vocabulary, [[], ["zz", "yy"]], max_length=3)
    assert batch.ids.tolist() == [[UNKNOWN_ID, PAD_ID, PAD_ID], [UNKNOWN_ID, UNKNOWN_ID, PAD_ID]]
    assert batch.lengths.tolist() == [1, 2]


def test_encode_of_no_reviews_is_an_empty_batch(vocabulary: Vocabulary) -> None:
    batch = encode_batch(vocabulary, [], max_length=5)
    assert batch.ids.shape == (0, 5)
    assert batch.lengths.shape == (0,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_length": 0}, "max_length"),
        ({"truncation": "middle"}, "truncation must be one of"),
        ({"truncation": "head_tail", "head_length": 9}, "head_length"),
    ],
)
def test_encode_refuses_bad_settings(vocabulary: Vocabulary, options: dict, message: str) -> None:
    with pytest.raises(VocabularyError, match=message):
        encode_batch(vocabulary, [["w1"]], **({"max_length": 5} | options))


@given(
    reviews=st.lists(st.lists(st.text(min_size=1, max_size=5), max_size=30), max_size=8),
    max_length=st.integers(min_value=1, max_value=12),
    truncation=st.sampled_from(["head", "tail", "head_tail"]),
)
def test_encode_properties_on_arbitrary_unicode(reviews: list[list[str]], max_length: int, truncation: str) -> None:
    vocabulary = Vocabulary.build(reviews, TOKENIZER, max_size=10)
    batch = encode_batch(vocabulary, reviews, max_length=max_length, truncation=truncation)
    assert batch.ids.shape == (len(reviews), max_length)
    for row, tokens in enumerate(reviews):
        length = int(batch.lengths[row])
        assert length == max(1, min(len(tokens), max_length))
        assert (batch.ids[row, :length] != PAD_ID).all()
        assert (batch.ids[row, length:] == PAD_ID).all()
        assert (batch.ids[row] < len(vocabulary)).all()
    json.dumps(vocabulary.to_json())  # always serialisable
