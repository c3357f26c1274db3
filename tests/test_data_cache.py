"""sentiment.data.cache: read a source once, reuse its columnar copy while the source is unchanged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import sentiment.data.cache as cache
from sentiment.data.cache import load_imdb, source_fingerprint
from sentiment.data.imdb import read_imdb
from tests.builders import imdb_files, write_archive


def test_second_load_reads_the_cache_not_the_source(
    tmp_path: Path, small_imdb_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_imdb(small_imdb_archive, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("imdb-*.npz"))) == 1

    def no_reading(source: Path) -> None:
        raise AssertionError("the source was read again")

    monkeypatch.setattr(cache, "read_imdb", no_reading)
    second = load_imdb(small_imdb_archive, tmp_path / "cache")
    assert second.id == first.id and second.text == first.text


def test_a_changed_archive_gets_a_new_cache_entry(tmp_path: Path) -> None:
    archive = write_archive(imdb_files(per_folder=12, seed=1), tmp_path / "a.tar.gz")
    first = load_imdb(archive, tmp_path / "cache")
    write_archive(imdb_files(per_folder=12, seed=2), archive)
    second = load_imdb(archive, tmp_path / "cache")
    assert first.text != second.text
    assert second.text == read_imdb(archive).text


def test_a_changed_folder_changes_its_fingerprint(small_imdb_folder: Path) -> None:
    before = source_fingerprint(small_imdb_folder)
    review = small_imdb_folder / "train" / "pos" / "0_7.txt"
    review.write_text("A different, longer review text than before.")
    os.utime(review, ns=(1, 1))
    assert source_fingerprint(small_imdb_folder) != before


def test_an_unreadable_cache_is_rebuilt(
    tmp_path: Path, small_imdb_archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_imdb(small_imdb_archive, tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("imdb-*.npz")
    cached.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        table = load_imdb(small_imdb_archive, tmp_path / "cache")
    assert len(table) == 60
    assert "cache is unreadable" in caplog.text
    assert len(cached.read_bytes()) > 1000


def test_without_a_cache_dir_nothing_is_written(tmp_path: Path, small_imdb_archive: Path) -> None:
    before = sorted(os.listdir(tmp_path))
    assert len(load_imdb(small_imdb_archive, None)) == 60
    assert sorted(os.listdir(tmp_path)) == before


def test_only_the_most_recently_used_cache_files_are_kept(tmp_path: Path) -> None:
    archives = [write_archive(imdb_files(per_folder=12, seed=seed), tmp_path / f"a{seed}.tar.gz") for seed in range(5)]
    for archive in archives:
        load_imdb(archive, tmp_path / "cache")
    kept = list((tmp_path / "cache").glob("imdb-*.npz"))
    assert len(kept) == cache.KEPT_CACHE_FILES
    assert {path.name for path in kept} == {f"imdb-{source_fingerprint(a)[:20]}.npz" for a in archives[-3:]}
