"""sentiment.data.splits: the validation split carved from train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentiment.data.imdb import read_imdb
from sentiment.data.splits import carve_validation, imdb_channels
from sentiment.data.table import ReviewTable
from sentiment.errors import DataError


def labeled(n: int, movies: bool) -> ReviewTable:
    return ReviewTable.from_columns(
        id=[f"r{i}" for i in range(n)],
        text=[f"review {i}" for i in range(n)],
        label=[i % 2 for i in range(n)],
        movie=[f"tt{i // 5}" for i in range(n)] if movies else None,
    )


def test_whole_movies_go_to_validation() -> None:
    train, validation = carve_validation(labeled(200, movies=True), fraction=0.1, seed=1)
    assert not set(train.movie) & set(validation.movie)
    assert 20 <= len(validation) <= 25
    assert len(train) + len(validation) == 200


def test_whole_movies_keep_the_balance_of_labels() -> None:
    # Each movie's reviews share one label, and positive movies come first: a naive cut would
    # fill validation with one label.
    table = ReviewTable.from_columns(
        text=[f"review {i}" for i in range(160)],
        label=[1] * 80 + [0] * 80,
        movie=[f"tt{i // 4}" for i in range(160)],
    )
    for seed in range(20):
        _, validation = carve_validation(table, fraction=0.1, seed=seed)
        assert validation.label_counts() == {"positive": 8, "negative": 8, "unlabeled": 0}


def test_without_movies_each_label_keeps_its_share() -> None:
    train, validation = carve_validation(labeled(200, movies=False), fraction=0.25, seed=1)
    assert validation.label_counts() == {"positive": 25, "negative": 25, "unlabeled": 0}
    assert not set(train.id) & set(validation.id)


@pytest.mark.parametrize("movies", [True, False])
def test_the_same_seed_gives_the_same_split_and_another_seed_another(movies: bool) -> None:
    table = labeled(400, movies)
    assert carve_validation(table, 0.1, seed=7)[1].id == carve_validation(table, 0.1, seed=7)[1].id
    assert carve_validation(table, 0.1, seed=7)[1].id != carve_validation(table, 0.1, seed=8)[1].id


def test_rows_keep_their_order_in_each_part() -> None:
    train, validation = carve_validation(labeled(100, movies=False), 0.2, seed=3)
    for part in (train, validation):
        numbers = [int(i[1:]) for i in part.id]
        assert numbers == sorted(numbers)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_fraction_outside_zero_and_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        carve_validation(labeled(20, movies=False), fraction)


def test_too_few_reviews_or_movies_are_refused() -> None:
    with pytest.raises(DataError, match="too few"):
        carve_validation(labeled(3, movies=False), 0.1)
    one_movie = ReviewTable.from_columns(text=["a", "b", "c", "d"], label=[1, 0, 1, 0], movie=["tt1"] * 4)
    with pytest.raises(DataError, match="cannot be split 50% / rest with both labels in each part"):
        carve_validation(one_movie, 0.5)


def test_unlabeled_reviews_are_refused() -> None:
    with pytest.raises(DataError, match="labeled reviews only"):
        carve_validation(ReviewTable.from_columns(text=["a"] * 10, label=[-1] * 10), 0.2)


def test_imdb_channels_from_an_archive(small_imdb_archive: Path) -> None:
    channels = imdb_channels(read_imdb(small_imdb_archive), validation_fraction=0.25, seed=0)
    assert set(channels) == {"train", "validation", "test", "unlabeled"}
    assert len(channels["train"]) + len(channels["validation"]) == 24
    assert len(channels["test"]) == 24 and len(channels["unlabeled"]) == 12
    assert (channels["unlabeled"].label == -1).all()
    assert np.isin(channels["validation"].label, (0, 1)).all()
    assert "unlabeled" not in imdb_channels(read_imdb(small_imdb_archive), 0.25, unlabeled=False)
