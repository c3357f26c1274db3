"""sentiment.data.table: the columnar review table and its .npz form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sentiment.data.table import ReviewTable
from sentiment.errors import DataError


@pytest.fixture
def table() -> ReviewTable:
    return ReviewTable.from_columns(
        id=["a", "b", "c"],
        split=["train", "train", "test"],
        label=[1, 0, -1],
        rating=[9, 2, 0],
        movie=["tt1", "", "tt2"],
        text=["Great <br /> film", "日本語 and émojis 🎬", "\u2028 odd separators \x00"],
    )


def test_save_and_load_give_back_every_column(tmp_path: Path, table: ReviewTable) -> None:
    table.save(tmp_path / "t.npz")
    loaded = ReviewTable.load(tmp_path / "t.npz")
    assert loaded.id == table.id and loaded.split == table.split and loaded.movie == table.movie
    assert loaded.text == table.text
    assert np.array_equal(loaded.label, table.label) and np.array_equal(loaded.rating, table.rating)


def test_an_empty_table_round_trips(tmp_path: Path) -> None:
    empty = ReviewTable.from_columns(text=[], label=[])
    empty.save(tmp_path / "e.npz")
    assert len(ReviewTable.load(tmp_path / "e.npz")) == 0


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"PK" + bytes(100), lambda b: b""])
def test_a_damaged_file_is_refused(tmp_path: Path, table: ReviewTable, damage) -> None:
    table.save(tmp_path / "t.npz")
    (tmp_path / "t.npz").write_bytes(damage((tmp_path / "t.npz").read_bytes()))
    with pytest.raises(DataError, match="not a readable review table"):
        ReviewTable.load(tmp_path / "t.npz")


def test_a_plain_npy_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(3))
    with pytest.raises(DataError, match="not a readable review table"):
        ReviewTable.load(tmp_path / "t.npy")


def test_take_where_split_concat_and_counts(table: ReviewTable) -> None:
    assert table.take([2, 0]).id == ["c", "a"]
    assert table.where_split("train").id == ["a", "b"]
    both = ReviewTable.concat([table, table.take([1])])
    assert both.id == ["a", "b", "c", "b"] and both.label.tolist() == [1, 0, -1, 0]
    assert table.label_counts() == {"positive": 1, "negative": 1, "unlabeled": 1}


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="columns differ in length"):
        ReviewTable(id=["a"], split=["x"], label=np.array([1, 0]), rating=np.array([1]), movie=[""], text=["t"])
