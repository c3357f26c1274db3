"""sentiment.data.channels: the SageMaker channel formats, written and read back, and bad records."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentiment.data.channels import ChannelPart, read_channel, write_channel, write_channels
from sentiment.data.table import ReviewTable
from sentiment.errors import DataError


@pytest.fixture
def table() -> ReviewTable:
    return ReviewTable.from_columns(
        id=["train/pos/0_9", "train/neg/0_2"],
        label=[1, 0],
        rating=[9, 2],
        movie=["tt1", "tt2"],
        text=['Loved it, "truly".<br />Line two\nand a newline', "Awful, with U+2028:\u2028, a lone \r and 日本語"],
    )


@pytest.mark.parametrize("format", ["jsonl", "csv"])
def test_written_channels_read_back_identically(tmp_path: Path, table: ReviewTable, format: str) -> None:
    path = write_channel(table, tmp_path / "train", "train", format)
    assert path == tmp_path / "train" / f"train.{format}"
    loaded = read_channel(tmp_path / "train", "train")
    assert loaded.id == table.id and loaded.text == table.text and loaded.movie == table.movie
    assert np.array_equal(loaded.label, table.label) and np.array_equal(loaded.rating, table.rating)


def test_unlabeled_channel_has_no_labels(tmp_path: Path) -> None:
    unlabeled = ReviewTable.from_columns(text=["Just text."], label=[-1])
    write_channel(unlabeled, tmp_path / "unlabeled", "unlabeled", "jsonl")
    assert "label" not in json.loads((tmp_path / "unlabeled" / "unlabeled.jsonl").read_text())
    assert read_channel(tmp_path / "unlabeled", "unlabeled").label.tolist() == [-1]


def test_minimal_records_and_label_spellings(tmp_path: Path) -> None:
    lines = [
        {"text": "a", "label": 1},
        {"text": "b", "label": "negative"},
        {"text": "c", "label": " POS "},
        {"text": "d", "label": "0", "rating": "3"},
    ]
    (tmp_path / "part-1.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    table = read_channel(tmp_path, "test")
    assert table.label.tolist() == [1, 0, 1, 0]
    assert table.id == ["part-1.jsonl:1", "part-1.jsonl:2", "part-1.jsonl:3", "part-1.jsonl:4"]
    assert table.rating.tolist() == [0, 0, 0, 3]


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    (tmp_path / "excel.csv").write_bytes("text,label\nfrom a spreadsheet,positive\n".encode("utf-8-sig"))
    assert read_channel(tmp_path, "train").text == ["from a spreadsheet"]


def test_a_channel_folder_reads_every_file_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("text,label\nfrom csv,1\n")
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "from gzip", "label": 0}\n'))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.jsonl").write_text('{"text": "nested", "label": 1}\n')
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    assert read_channel(tmp_path, "train").text == ["from gzip", "from csv", "nested"]


def test_an_imdb_archive_or_folder_is_a_channel(
    tmp_path: Path, small_imdb_archive: Path, small_imdb_folder: Path
) -> None:
    (tmp_path / "train").mkdir()
    shutil.copy(small_imdb_archive, tmp_path / "train")
    train = read_channel(tmp_path / "train", "train", cache_dir=tmp_path / "cache")
    assert len(train) == 24 and set(train.split) == {"train"}
    assert len(read_channel(small_imdb_folder.parent, "test")) == 24
    assert len(read_channel(small_imdb_folder.parent, "unlabeled")) == 12
    with pytest.raises(DataError, match="no validation split"):
        read_channel(tmp_path / "train", "validation")


def test_write_channels_replaces_an_earlier_set_whole_and_writes_a_manifest(tmp_path: Path, table: ReviewTable) -> None:
    write_channels({"train": table, "unlabeled": table}, tmp_path / "channels", "jsonl")
    paths = write_channels({"train": table, "test": table}, tmp_path / "channels", "jsonl", details={"seed": 7})
    assert paths == {
        "train": [tmp_path / "channels/train/train.jsonl"],
        "test": [tmp_path / "channels/test/test.jsonl"],
    }
    assert sorted(p.name for p in (tmp_path / "channels").iterdir()) == ["channels.json", "test", "train"]
    manifest = json.loads((tmp_path / "channels" / "channels.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["channels"]["train"]["reviews"] == 2
    assert manifest["channels"]["train"]["sha256"] == hashlib.sha256(paths["train"][0].read_bytes()).hexdigest()


def test_write_channels_refuses_a_folder_it_did_not_write(tmp_path: Path, table: ReviewTable) -> None:
    (tmp_path / "work" / "cache").mkdir(parents=True)
    (tmp_path / "work" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no channels.json: refusing to replace it"):
        write_channels({"train": table}, tmp_path / "work", "jsonl")
    assert (tmp_path / "work" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_write_channels_into_the_current_folder_resolves_it(tmp_path: Path, table: ReviewTable, monkeypatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    write_channels({"train": table}, Path("."), "jsonl")
    assert (tmp_path / "empty" / "train" / "train.jsonl").is_file()


def test_write_channels_leaves_the_old_folder_when_interrupted(tmp_path: Path, table: ReviewTable) -> None:
    write_channels({"train": table}, tmp_path / "channels", "jsonl")
    broken = ReviewTable.from_columns(text=["x"], label=[1])
    object.__setattr__(broken, "id", [object()])  # not JSON: writing fails half-way
    with pytest.raises(TypeError):
        write_channels({"test": table, "train": broken}, tmp_path / "channels", "jsonl")
    assert sorted(p.name for p in (tmp_path / "channels").iterdir()) == ["channels.json", "train"]
    assert read_channel(tmp_path / "channels" / "train", "train").text == table.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["channels"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.jsonl", b'{"text": "ok", "label": 1}\n{"text": "broken"\n', r"t.jsonl: line 2: not valid JSON"),
        ("t.jsonl", b'["a list"]\n', r"line 1: expected a JSON object"),
        ("t.jsonl", b'{"label": 1}\n', r"line 1: 'text' must be a string, got nothing"),
        ("t.jsonl", b'{"text": "   ", "label": 1}\n', r"line 1: 'text' is empty"),
        ("t.jsonl", b'{"text": "x"}\n', r"line 1: 'label' must be 1, 0"),
        ("t.jsonl", b'{"text": "x", "label": "maybe"}\n', r"got 'maybe'"),
        ("t.jsonl", b'{"text": "x", "label": true}\n', r"'label' must be"),
        ("t.jsonl", b'{"text": "x", "label": [1]}\n', r"'label' must be"),
        ("t.jsonl", b'{"text": "x", "label": 1, "rating": 11}\n', r"'rating' must be a whole number"),
        (
            "t.jsonl",
            b'{"text": "ok", "label": 1}\n{"text": "caf\xe9", "label": 1}\n',
            r"t.jsonl: line 2: bytes are not UTF-8",
        ),
        ("t.jsonl.gz", b"not gzip", r"t.jsonl.gz: not a complete gzip file"),
        ("t.csv", b"review,label\nx,1\n", r"lacks the column\(s\) text"),
        ("t.csv", b"text,label\nx,1,extra\n", r"t.csv: line 2: 2 columns in the header"),
        ("t.csv", b'text,label\n"unterminated,1\n', r"t.csv: line \d+: malformed CSV"),
        ("t.csv", b"text,label\nx,\n", r"line 2: 'label' must be"),
        ("t.parquet", b"PAR1", r"t.parquet is not a channel file"),
        ("empty.jsonl", b"", r"holds no reviews"),
    ],
)
def test_bad_channel_files_are_refused_with_file_and_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_channel(tmp_path, "train")


def test_missing_or_unknown_channels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a folder"):
        read_channel(tmp_path / "absent", "train")
    with pytest.raises(DataError, match="holds no reviews"):
        read_channel(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown channel 'training'"):
        read_channel(tmp_path, "training")


def test_the_parts_of_a_channel_in_order_are_the_channel(tmp_path: Path) -> None:
    for number in range(3):
        rows = ReviewTable.from_columns(
            text=[f"review {number}-{i}" for i in range(4)], label=[i % 2 for i in range(4)]
        )
        write_channel(rows, tmp_path, f"train-{number}")
    whole = read_channel(tmp_path, "train")
    by_records = [read_channel(tmp_path, "train", part=ChannelPart(i, 5, "records")) for i in range(5)]
    assert [len(part) for part in by_records] == [2, 2, 3, 2, 3]
    assert [text for part in by_records for text in part.text] == whole.text
    by_files = [read_channel(tmp_path, "train", part=ChannelPart(i, 2, "files")) for i in range(2)]
    assert [len(part) for part in by_files] == [8, 4]  # files 0 and 2, then file 1
    assert sorted(text for part in by_files for text in part.text) == sorted(whole.text)


def test_a_sharded_channel_with_fewer_files_than_ranks_is_refused(tmp_path: Path, table: ReviewTable) -> None:
    write_channel(table, tmp_path, "train")
    with pytest.raises(DataError, match=r"1 file\(s\) for 2 ranks.*--shards"):
        read_channel(tmp_path, "train", part=ChannelPart(1, 2, "files"))
    with pytest.raises(DataError, match="cannot give each of 3 ranks one"):
        read_channel(tmp_path, "train", part=ChannelPart(0, 3, "records"))


def test_a_channel_written_as_shards_reads_back_whole_and_the_manifest_lists_each_file(tmp_path: Path) -> None:
    table = ReviewTable.from_columns(text=[f"review {i}" for i in range(7)], label=[i % 2 for i in range(7)])
    paths = write_channels({"train": table}, tmp_path / "channels", "jsonl", shards=3)
    assert [path.name for path in paths["train"]] == [f"train-0000{i}-of-00003.jsonl" for i in range(3)]
    assert read_channel(tmp_path / "channels" / "train", "train").text == table.text
    entry = json.loads((tmp_path / "channels" / "channels.json").read_text())["channels"]["train"]
    assert entry["reviews"] == 7 and [item["file"] for item in entry["files"]] == [
        f"train/{path.name}" for path in paths["train"]
    ]
    assert entry["files"][0]["sha256"] == hashlib.sha256(paths["train"][0].read_bytes()).hexdigest()
    with pytest.raises(DataError, match="7 review\\(s\\) cannot make 8 shards"):
        write_channels({"train": table}, tmp_path / "channels", "jsonl", shards=8)
    assert read_channel(tmp_path / "channels" / "train", "train").text == table.text  # the earlier set stays
