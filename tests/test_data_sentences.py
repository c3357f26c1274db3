"""The `sentences` channel: soft-labelled short texts read, validated and dealt to ranks like the others."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from sentiment.data.channels import (
    SENTENCES_DETAILS,
    ChannelPart,
    SoftLabeled,
    read_sentences,
    sentences_details,
    write_sentences,
)
from sentiment.errors import DataError

TEXTS = ["Not bad at all.", "A dull, lazy film.", "Funny — and ça marche!", "Never boring."]
SCORES = np.array([0.81, 0.04, 0.66789, 1.0], dtype=np.float32)


def written(folder: Path, name: str = "sentences.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_sentences(SoftLabeled(TEXTS, SCORES), folder / name)


def test_written_sentences_read_back_with_their_scores_and_digest(tmp_path: Path) -> None:
    written(tmp_path)
    sentences = read_sentences(tmp_path)
    assert sentences.texts == TEXTS
    assert sentences.scores.dtype == np.float32
    assert np.allclose(sentences.scores, SCORES, atol=1e-5)
    assert sentences.digest() == SoftLabeled(TEXTS, SCORES).digest()
    assert SoftLabeled(TEXTS, SCORES + np.float32(0.01)).digest() != sentences.digest()
    first = json.loads((tmp_path / "sentences.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == {"text": "Not bad at all.", "score": 0.81}


def test_gzip_files_read_in_name_order_and_details_are_not_sentences(tmp_path: Path) -> None:
    lines = [json.dumps({"text": text, "score": float(score)}) for text, score in zip(TEXTS, SCORES, strict=True)]
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress("\n".join(lines[2:]).encode()))
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:2]) + "\n\n", encoding="utf-8")
    (tmp_path / SENTENCES_DETAILS).write_text(json.dumps({"teacher": {"base": "minilm"}}), encoding="utf-8")
    assert read_sentences(tmp_path).texts == TEXTS
    assert sentences_details(tmp_path) == {"teacher": {"base": "minilm"}}


def test_a_folder_without_details_has_none(tmp_path: Path) -> None:
    written(tmp_path)
    assert sentences_details(tmp_path) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "fine", "score": 1.5}', "'score' must be a number from 0 to 1"),
        ('{"text": "fine", "score": -0.1}', "'score' must be a number from 0 to 1"),
        ('{"text": "fine", "score": NaN}', "'score' must be a number from 0 to 1"),
        ('{"text": "fine", "score": Infinity}', "'score' must be a number from 0 to 1"),
        ('{"text": "fine", "score": true}', "got True"),
        ('{"text": "fine", "score": "0.5"}', "got '0.5'"),
        ('{"text": "fine"}', "got nothing"),
        ('{"score": 0.5}', "'text' must be a string"),
        ('{"text": "  ", "score": 0.5}', "'text' is empty"),
        ('{"text": "\\ud800", "score": 0.5}', "lone surrogate"),
        ('["fine", 0.5]', "expected a JSON object"),
        ('{"text": "fine", "score": 0.5', "not valid JSON"),
    ],
)
def test_bad_records_are_refused_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "s.jsonl").write_text('{"text": "good", "score": 0.9}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="s.jsonl: line 2: ") as error:
        read_sentences(tmp_path)
    assert message in str(error.value)


def test_bad_files_and_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a folder"):
        read_sentences(tmp_path / "absent")
    with pytest.raises(DataError, match="holds no sentences"):
        read_sentences(tmp_path)
    (tmp_path / "s.jsonl").write_bytes(b'{"text": "caf\xe9", "score": 0.5}\n')
    with pytest.raises(DataError, match="line 1: bytes are not UTF-8"):
        read_sentences(tmp_path)
    (tmp_path / "s.jsonl").unlink()
    (tmp_path / "s.jsonl.gz").write_bytes(gzip.compress(b'{"text": "ok", "score": 0.5}\n')[:-6])
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_sentences(tmp_path)
    (tmp_path / "s.jsonl.gz").unlink()
    (tmp_path / "s.csv").write_text("text,score\nfine,0.5\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"is not a \*.jsonl or \*.jsonl.gz file"):
        read_sentences(tmp_path)
    (tmp_path / "s.csv").unlink()
    written(tmp_path)
    (tmp_path / SENTENCES_DETAILS).write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="sentences.json: not valid JSON"):
        sentences_details(tmp_path)
    (tmp_path / SENTENCES_DETAILS).write_text("[1]", encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON object"):
        sentences_details(tmp_path)


def test_the_parts_in_rank_order_are_the_channel(tmp_path: Path) -> None:
    written(tmp_path)
    by_records = [read_sentences(tmp_path, ChannelPart(index, 3, "records")) for index in range(3)]
    assert [text for part in by_records for text in part.texts] == TEXTS
    assert np.array_equal(np.concatenate([part.scores for part in by_records]), read_sentences(tmp_path).scores)
    with pytest.raises(DataError, match="cannot give each of 5 ranks one"):
        read_sentences(tmp_path, ChannelPart(0, 5, "records"))
    written(tmp_path / "sharded", "a.jsonl")
    written(tmp_path / "sharded", "b.jsonl")
    by_files = [read_sentences(tmp_path / "sharded", ChannelPart(index, 2, "files")) for index in range(2)]
    assert [part.texts for part in by_files] == [TEXTS, TEXTS]
    with pytest.raises(DataError, match="holds 2 file"):
        read_sentences(tmp_path / "sharded", ChannelPart(0, 3, "files"))
