"""The real IMDb archive (../shared/data): layout, channels, and both tokenizers on real reviews."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sentiment.data import ReviewTable, official_count_differences, read_imdb
from sentiment.spans import token_spans
from sentiment.text import seed_tokenize, tokenize
from tests.conftest import REPOSITORY
from tests.test_text import tutorial_review_to_words

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def imdb(shared_archive: Path) -> ReviewTable:
    return read_imdb(shared_archive)


def test_the_archive_has_the_official_layout_and_counts(imdb: ReviewTable) -> None:
    assert official_count_differences(imdb) == []
    assert imdb.label_counts() == {"positive": 25_000, "negative": 25_000, "unlabeled": 50_000}
    assert {split: imdb.split.count(split) for split in ("train", "test", "unsup")} == {
        "train": 25_000,
        "test": 25_000,
        "unsup": 50_000,
    }
    assert all(imdb.movie), "every review has its movie from the urls files"


def test_prepare_data_writes_every_channel_from_the_archive(tmp_path: Path, shared_archive: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "deploy" / "prepare_data.py"), "--source", str(shared_archive),
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    channels = tmp_path / "channels"
    counts = {
        name: (channels / name / f"{name}.jsonl").read_text().count("\n")
        for name in ("train", "validation", "test", "unlabeled")
    }
    assert counts["train"] + counts["validation"] == 25_000
    assert 2_400 <= counts["validation"] <= 2_600
    assert counts["test"] == 25_000 and counts["unlabeled"] == 50_000
    train_movies, validation_movies = (
        {json.loads(line)["movie"] for line in (channels / name / f"{name}.jsonl").read_text().split("\n") if line}
        for name in ("train", "validation")
    )
    assert not train_movies & validation_movies


def test_seed_tokenize_matches_the_tutorial_on_real_reviews(imdb: ReviewTable) -> None:
    # Every review the fast path cannot take (entities, markup other than <br />), and a random sample.
    unusual = [text for text in imdb.text if "&" in text or "<" in text.replace("<br />", "")]
    sample = random.Random(0).sample(imdb.text, 500)
    for review in unusual + sample:
        assert seed_tokenize(review) == tutorial_review_to_words(review)


def test_tokenize_takes_every_review(imdb: ReviewTable) -> None:
    lengths = [len(tokenize(text)) for text in imdb.text]
    assert min(lengths) >= 1
    assert 200 < sum(lengths) / len(lengths) < 350


def test_token_spans_give_the_tokens_of_every_kind_of_real_review(imdb: ReviewTable) -> None:
    # Every review with markup, entities or non-ASCII text (where spans need tracing), and a random sample.
    unusual = [text for text in imdb.text if "&" in text or "<" in text.replace("<br />", "") or not text.isascii()]
    sample = random.Random(1).sample(imdb.text, 300)
    for review in unusual[:3000] + sample:
        tokens, spans = token_spans(review)
        assert tokens == tokenize(review)
        assert all(0 <= start < end <= len(review) for start, end in spans)
