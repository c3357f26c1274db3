"""sentiment.files: atomic writes leave the old complete file or the new one, nothing between."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentiment.files import atomic_directory, atomic_writer, file_digest, read_json, write_json_atomic


def test_atomic_writer_replaces_the_file_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind
    with atomic_writer(target, "w") as handle:
        handle.write("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_atomic_directory_swaps_in_a_complete_folder(tmp_path: Path) -> None:
    target = tmp_path / "channels"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "b.txt").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(os.listdir(target)) == ["a.txt"]
    with atomic_directory(target) as staging:
        (staging / "c.txt").write_text("3")
    assert sorted(os.listdir(target)) == ["c.txt"]
    assert sorted(os.listdir(tmp_path)) == ["channels"]


def test_json_round_trip_and_digest(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "d.json", {"name": "café", "n": [1, 2]})
    assert read_json(tmp_path / "d.json") == {"name": "café", "n": [1, 2]}
    (tmp_path / "x").write_bytes(b"abc")
    assert file_digest(tmp_path / "x", "md5") == "900150983cd24fb0d6963f7d28e17f72"
