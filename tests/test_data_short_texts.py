"""sentiment.data.short_texts: built short reviews whose labels follow from how they are built."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sentiment.data import short_texts as built
from sentiment.data.short_texts import QUALITIES, short_texts

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED_SENTENCES = REPOSITORY.parent / "shared" / "data" / "sentences" / "imdb_labelled.tsv"
SCRIPT = ("the script", False)
SONGS = ("the songs", True)


def first(options: tuple) -> object:
    """A `pick` that always takes the first option: each builder's output can be written out in full."""
    return options[0]


def taking(*indices: int) -> Callable[[tuple], object]:
    """A `pick` that takes these options in turn."""
    choices = iter(indices)
    return lambda options: options[next(choices)]


def normal(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def test_the_count_is_exact_balanced_distinct_and_the_seed_decides() -> None:
    texts, labels = short_texts(2000, seed=1)
    assert len(texts) == len(labels) == 2000
    assert abs(labels.sum() - 1000) <= 20
    assert len(set(texts)) == 2000
    assert short_texts(2000, seed=1)[0] == texts
    assert short_texts(2000, seed=2)[0] != texts
    assert short_texts(0, seed=1)[0] == []


def test_a_negated_quality_takes_the_opposite_label() -> None:
    assert built.negated(first, 1, SCRIPT) == (f"the script is not {QUALITIES[0][0]}", 1)
    assert built.negated(first, 0, SONGS) == (f"the songs are not {QUALITIES[1][0]}", 0)
    # "{be}n't" and "never": 'the script wasn't good' is negative, 'the script was never bad' positive.
    assert built.negated(taking(1, 1, 0), 0, SCRIPT) == ("the script wasn't good", 0)
    assert built.negated(taking(2, 1, 0), 1, SCRIPT) == ("the script was never bad", 1)


def test_a_plain_quality_and_a_feeling_keep_their_word_s_label() -> None:
    assert built.plain(first, 0, SCRIPT) == ("the script is bad", 0)
    assert built.feeling(first, 1, SCRIPT) == ("I was impressed by the script", 1)
    assert built.feeling(taking(1, 0, 0), 1, SCRIPT) == ("I wasn't bored by the script", 1)
    assert built.feeling(taking(2, 0, 0), 0, SCRIPT) == ("I didn't like the script", 0)
    assert built.feeling(taking(2, 0, 2), 0, SCRIPT) == ("I never liked the script", 0)  # "never" takes the past


def test_a_contrast_takes_its_second_clause_s_label_about_another_part() -> None:
    # The other part (the first: the acting), a plain clause of the opposite label, "but", then the second.
    text, label = built.contrast(first, 1, SCRIPT)
    assert (text, label) == ("the acting is bad, but the script is good", 1)
    text = "Although the acting was good, the songs were bad"
    assert built.contrast(taking(0, 1, 0, 0, 0, 1, 0, 0, 1), 0, SONGS) == (text, 0)
    # A second clause that negates: praise, then "never" and praise, is negative.
    text = "the acting is good, but the songs are never good"
    assert built.contrast(taking(0, 0, 0, 0, 1, 2, 0, 0, 0), 0, SONGS) == (text, 0)


def test_a_score_follows_a_clause_of_its_label() -> None:
    assert built.score(first, 1, SCRIPT) == ("The script is good. 4/5", 1)
    assert built.score(taking(1, 0, 0, 0, 0, 0, 0), 0, SCRIPT) == ("The script is bad. 0/10", 0)


def test_every_built_text_keeps_its_label_by_construction() -> None:
    """The label of each text, read back from its words: a quality, negated or not, in the last clause."""
    positive, negative = set(QUALITIES[1]), set(QUALITIES[0])
    negators = ("not", "n't", "never", "far from", "by no means")
    texts, labels = short_texts(3000, seed=3)
    for text, label in zip(texts, labels, strict=True):
        last = re.split(r", but |, yet |; however, |, but overall |, ", text.split(". ")[0])[-1].lower()
        words = set(re.findall(r"[a-z]+", last))
        if " by " in last or " i " in f" {last} " or not (words & (positive | negative)):
            continue  # a feeling or a liking: its own word lists, checked in the tests above
        quality_positive = bool(words & positive)
        negated = any(negator in last for negator in negators)
        assert int(quality_positive != negated) == label, text


def test_no_built_text_is_a_sentence_of_the_benchmark_sets() -> None:
    texts = {normal(text) for text in short_texts(50_000, seed=1)[0]}
    for name in ("probes.jsonl", "short_reviews.jsonl"):
        lines = (REPOSITORY / "benchmarks" / "data" / name).read_text().splitlines()
        assert not [row["text"] for row in map(json.loads, lines) if normal(row["text"]) in texts]
    if not SHARED_SENTENCES.exists():
        if os.environ.get("REQUIRE_SHARED_DATA"):
            pytest.fail(f"REQUIRE_SHARED_DATA is set but {SHARED_SENTENCES} is missing")
        pytest.skip("the shared sentences are not beside this checkout")
    shared = [line.rsplit("\t", 1)[0] for line in SHARED_SENTENCES.read_text(encoding="utf-8").splitlines()[1:]]
    assert not [sentence for sentence in shared if normal(sentence) in texts]
