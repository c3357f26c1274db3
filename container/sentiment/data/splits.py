"""The validation split, carved from the training reviews with a fixed seed.

IMDb caps each movie at 30 reviews and keeps train and test movies apart, because reviews of one
movie share names and plot words. Validation does the same: when the movie of every review is known,
whole movies go to validation, so its accuracy predicts the test split's instead of flattering it.
"""

from __future__ import annotations

import numpy as np

from sentiment.data.table import NEGATIVE, POSITIVE, ReviewTable
from sentiment.errors import DataError

DEFAULT_VALIDATION_FRACTION = 0.1  # 2,500 of IMDb's 25,000: +-0.6 points of accuracy, 90% left to learn
DEFAULT_SEED = 20111  # any fixed number; this one recalls the dataset's year (2011)
_LABELS = (POSITIVE, NEGATIVE)


def carve_validation(
    train: ReviewTable, fraction: float = DEFAULT_VALIDATION_FRACTION, seed: int = DEFAULT_SEED
) -> tuple[ReviewTable, ReviewTable]:
    """Split labeled reviews into (rest, validation) with about `fraction` of them in validation.

    Rows keep their original order within each part. The same reviews and seed give the same split.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    if not np.isin(train.label, _LABELS).all():
        raise DataError("validation is carved from labeled reviews only")
    wanted = round(len(train) * fraction)
    if wanted < 1 or wanted >= len(train):
        raise DataError(f"{len(train)} reviews are too few to carve a validation fraction of {fraction}")
    rng = np.random.default_rng(seed)
    in_validation = _whole_movies(train, fraction, rng) if all(train.movie) else _stratified(train.label, fraction, rng)
    for part, rows in (("validation", in_validation), ("the rest", ~in_validation)):
        if set(train.label[rows].tolist()) != set(train.label.tolist()):
            raise DataError(
                f"{len(train)} reviews of {len(set(train.movie))} movies cannot be split {fraction:.0%} / rest "
                f"with both labels in each part ({part} would lack one)"
            )
    return train.take(np.flatnonzero(~in_validation)), train.take(np.flatnonzero(in_validation))


def _whole_movies(train: ReviewTable, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Whole movies, in seeded random order, join validation while they fit what each label still
    needs (`fraction` of its reviews), so validation keeps train's balance of labels."""
    names, movie_of_row = np.unique(train.movie, return_inverse=True)
    per_movie = {label: np.bincount(movie_of_row[train.label == label], minlength=len(names)) for label in _LABELS}
    needed = {label: round(int(counts.sum()) * fraction) for label, counts in per_movie.items()}
    chosen = np.zeros(len(names), dtype=bool)
    for movie in rng.permutation(len(names)):
        if all(per_movie[label][movie] <= needed[label] for label in _LABELS):
            chosen[movie] = True
            for label in _LABELS:
                needed[label] -= int(per_movie[label][movie])
            if not any(needed.values()):
                break
    return chosen[movie_of_row]


def _stratified(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The same fraction of each label, rows drawn at random."""
    in_validation = np.zeros(len(labels), dtype=bool)
    for label in _LABELS:
        rows = np.flatnonzero(labels == label)
        in_validation[rng.permutation(rows)[: round(len(rows) * fraction)]] = True
    return in_validation


def imdb_channels(
    table: ReviewTable,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
    unlabeled: bool = True,
) -> dict[str, ReviewTable]:
    """The training channels of an aclImdb table: train and validation (carved), test, unlabeled."""
    train, validation = carve_validation(table.where_split("train"), validation_fraction, seed)
    channels = {"train": train, "validation": validation, "test": table.where_split("test")}
    if unlabeled:
        channels["unlabeled"] = table.where_split("unsup")
    return channels
