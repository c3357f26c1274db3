"""SageMaker training channels: the files `train` reads from `/opt/ml/input/data/<channel>/`.

Channels: `train`, `validation` and `test` (labeled) and `unlabeled` (texts only). Each is a folder
holding any mix of, read in name order (files whose names start with "." are skipped):

- `*.jsonl` / `*.jsonl.gz`: one JSON object per line, `{"text": "...", "label": 1}`, plus optional
  `"id"`, `"rating"` (1-10) and `"movie"`;
- `*.csv` / `*.csv.gz`: a header row naming the columns, `text` and `label` required (`label` only in
  labeled channels), `id`, `rating` and `movie` optional;
- the aclImdb archive (`*.tar.gz`) or an extracted `aclImdb/` folder: the channel takes the split it
  is named for (`train`, `test`, `unlabeled`); validation is then carved from `train`.

A label is 1, 0, "positive", "negative", "pos" or "neg". Every bad record is a `DataError` naming the
file and line.

The optional `sentences` channel holds short texts with soft labels, `{"text": "...", "score": 0.83}` per
line of `*.jsonl` / `*.jsonl.gz` (`score`: the probability that the text is positive, from an offline
teacher: teacher/README.md). `read_sentences` gives them as `SoftLabeled`; only the LSTM learns from them.

A rank of a job on several instances reads its `ChannelPart`: whole files (what SageMaker's
`ShardedByS3Key` hands each host, dealt further to the host's ranks) or a block of the records (a
`FullyReplicated` channel, which every host holds whole). The parts, in rank order, are the channel.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sentiment.data.cache import load_imdb
from sentiment.data.table import NEGATIVE, POSITIVE, UNLABELED, ReviewTable
from sentiment.errors import DataError
from sentiment.files import atomic_directory, atomic_writer, file_digest, write_json_atomic

CHANNELS = ("train", "validation", "test", "unlabeled")
SENTENCES = "sentences"  # soft-labelled short texts: `read_sentences`
SENTENCES_DETAILS = "sentences.json"  # beside them, how they were labelled (teacher.label writes it)
LABELED_CHANNELS = ("train", "validation", "test")
_IMDB_SPLIT = {"train": "train", "test": "test", "unlabeled": "unsup"}

ChannelFormat = Literal["jsonl", "csv"]
CHANNEL_FORMATS: tuple[ChannelFormat, ...] = ("jsonl", "csv")
_ACCEPTED = "*.jsonl, *.jsonl.gz, *.csv, *.csv.gz, an aclImdb *.tar.gz archive or an aclImdb/ folder"

_LABELS: dict[Any, int] = {
    1: POSITIVE, "1": POSITIVE, "positive": POSITIVE, "pos": POSITIVE,
    0: NEGATIVE, "0": NEGATIVE, "negative": NEGATIVE, "neg": NEGATIVE,
}  # fmt: skip
_COLUMNS = ("id", "label", "rating", "movie", "text")
_MAX_CSV_FIELD = 16 * 1024 * 1024  # the csv module's default (128 KiB) would reject a long review


@dataclass(frozen=True)
class ChannelPart:
    """Part `index` of `count` of a channel: every `count`-th file from the `index`-th (by="files") or
    the `index`-th of `count` consecutive blocks of its records (by="records")."""

    index: int = 0
    count: int = 1
    by: Literal["files", "records"] = "records"

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"part {self.index} of {self.count} does not exist")

    def block(self, records: int) -> range:
        """The records of this part among `records`: consecutive, as even as whole records allow."""
        return range(records * self.index // self.count, records * (self.index + 1) // self.count)


WHOLE = ChannelPart()


def read_channel(
    directory: Path, channel: str, cache_dir: Path | None = None, part: ChannelPart = WHOLE
) -> ReviewTable:
    """The reviews of a channel folder (`part` of them); `cache_dir` keeps columnar copies of aclImdb sources."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; channels are {', '.join(CHANNELS)}")
    sources = _sources_of_part(directory, channel, part)
    tables = [_read_source(path, channel, cache_dir) for path in sources]
    table = ReviewTable.concat(tables) if tables else None
    if table is None or len(table) == 0:
        raise DataError(f"channel {channel!r}: {directory} holds no reviews (accepted: {_ACCEPTED})")
    block = _records_of_part(len(table), channel, directory, part)
    return table if block is None else table.take(np.arange(block.start, block.stop))


def _sources_of_part(directory: Path, channel: str, part: ChannelPart, skip: str = "") -> list[Path]:
    """The files of `directory` this part reads (but `skip`): all of them, or every `count`-th when dealt by files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"channel {channel!r}: {directory} is not a folder")
    sources = [path for path in _channel_sources(directory) if path != directory / skip]
    if part.by == "files" and part.count > 1:
        if len(sources) < part.count:
            raise DataError(
                f"channel {channel!r}: {directory} holds {len(sources)} file(s) for {part.count} ranks: a sharded "
                f"channel is dealt in whole files, so write it as at least {part.count} files per host "
                "(deploy/prepare_data.py --shards)"
            )
        sources = sources[part.index :: part.count]
    return sources


def _records_of_part(records: int, channel: str, directory: Path, part: ChannelPart) -> range | None:
    """The block of `records` this part keeps when dealt by records (None: all of them)."""
    if part.by != "records" or part.count == 1:
        return None
    block = part.block(records)
    if not block:
        raise DataError(
            f"channel {channel!r}: {records} record(s) in {directory} cannot give each of {part.count} ranks one"
        )
    return block


@dataclass(frozen=True)
class SoftLabeled:
    """Texts with soft labels: `scores[i]` is the probability (0 to 1) that `texts[i]` is positive."""

    texts: list[str]
    scores: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """sha256 of the texts and scores (as stored, to 5 decimals), for job fingerprints and cards."""
        digest = hashlib.sha256()
        for text, score in zip(self.texts, self.scores.tolist(), strict=True):
            digest.update(f"{score:.5f}\0{text}\0".encode())
        return digest.hexdigest()


def read_sentences(directory: Path, part: ChannelPart = WHOLE) -> SoftLabeled:
    """The soft-labelled texts of a `sentences` channel folder (`part` of them)."""
    texts: list[str] = []
    scores: list[float] = []
    for path in _sources_of_part(directory, SENTENCES, part, skip=SENTENCES_DETAILS):
        if not path.is_file() or not path.name.lower().endswith((".jsonl", ".jsonl.gz")):
            raise DataError(f"channel {SENTENCES!r}: {path} is not a *.jsonl or *.jsonl.gz file")
        for text, score in _sentence_rows(_text_of(path), str(path)):
            texts.append(text)
            scores.append(score)
    if not texts:
        raise DataError(f"channel {SENTENCES!r}: {directory} holds no sentences (accepted: *.jsonl, *.jsonl.gz)")
    block = _records_of_part(len(texts), SENTENCES, directory, part) or range(len(texts))
    return SoftLabeled(texts[block.start : block.stop], np.asarray(scores[block.start : block.stop], dtype=np.float32))


def sentences_details(directory: Path) -> dict[str, Any] | None:
    """What `sentences.json` beside the sentences says of how they were labelled (None without one)."""
    path = Path(directory) / SENTENCES_DETAILS
    if not path.is_file():
        return None
    try:
        details = json.loads(_text_of(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(details, dict):
        raise DataError(f"{path}: expected a JSON object describing the sentences")
    return details


def _sentence_rows(text: str, source: str) -> Iterator[tuple[str, float]]:
    for where, _, record in _json_records(text, source, "'text' and 'score'"):
        sentence = _text_field(record, where)
        score = record.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            # NaN fails both comparisons; json.loads reads NaN and Infinity, which are not probabilities.
            raise DataError(
                f"{where}: 'score' must be a number from 0 to 1 (the probability positive), got {_shown(score)}"
            )
        yield sentence, float(score)


def _text_field(record: dict[str, Any], where: str) -> str:
    """The record's 'text': a non-empty string of Unicode text."""
    text = record.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string, got {_shown(text)}")
    if not text.strip():
        raise DataError(f"{where}: 'text' is empty")
    _check_unicode(text, f"{where}: 'text'")
    return text


def write_sentences(sentences: SoftLabeled, path: Path) -> Path:
    """`sentences` as a `sentences` channel file (`{"text", "score"}` per line), atomically."""
    with atomic_writer(Path(path), "w") as handle:
        for text, score in zip(sentences.texts, sentences.scores.tolist(), strict=True):
            handle.write(json.dumps({"text": text, "score": round(score, 5)}, ensure_ascii=False) + "\n")
    return Path(path)


def read_labeled(path: Path, cache_dir: Path | None = None) -> ReviewTable:
    """Labeled reviews from a channel folder or a single channel file (an aclImdb source gives its test split)."""
    path = Path(path)
    if path.is_file():
        table = _read_source(path, "test", cache_dir)
        if len(table) == 0:
            raise DataError(f"{path} holds no reviews")
        return table
    return read_channel(path, "test", cache_dir)


def write_channel(table: ReviewTable, directory: Path, channel: str, format: ChannelFormat = "jsonl") -> Path:
    """Write `table` as `<directory>/<channel>.<format>`, atomically; returns the file's path."""
    if format not in CHANNEL_FORMATS:
        raise ValueError(f"unknown channel format {format!r}; formats are {', '.join(CHANNEL_FORMATS)}")
    path = Path(directory) / f"{channel}.{format}"
    _write_rows(table, path, format)
    return path


def write_shards(
    table: ReviewTable, directory: Path, channel: str, format: ChannelFormat = "jsonl", shards: int = 1
) -> list[Path]:
    """`table` as one file (`write_channel`) or as `shards` files `<channel>-00000-of-0000K.<format>` of
    consecutive reviews, which read in name order give the channel back; each a ShardedByS3Key host can take."""
    if shards == 1:
        return [write_channel(table, directory, channel, format)]
    if not 1 < shards <= len(table):
        raise DataError(f"channel {channel!r}: {len(table):,} review(s) cannot make {shards} shards of one or more")
    paths = []
    for index in range(shards):
        block = ChannelPart(index, shards).block(len(table))
        path = Path(directory) / f"{channel}-{index:05d}-of-{shards:05d}.{format}"
        _write_rows(table.take(np.arange(block.start, block.stop)), path, format)
        paths.append(path)
    return paths


def _write_rows(table: ReviewTable, path: Path, format: ChannelFormat) -> None:
    rows = zip(table.id, table.label.tolist(), table.rating.tolist(), table.movie, table.text, strict=True)
    with atomic_writer(path, "w") as handle:
        if format == "jsonl":
            for review_id, label, rating, movie, text in rows:
                record: dict[str, Any] = {"id": review_id}
                if label != UNLABELED:
                    record["label"] = label
                record |= {"rating": rating, "movie": movie, "text": text}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            # The csv module's default "\r\n" line ends (RFC 4180) make it quote any field holding
            # "\r" or "\n", so every review reads back exactly.
            writer = csv.writer(handle)
            writer.writerow(_COLUMNS)
            writer.writerows((i, "" if label == UNLABELED else label, r, m, t) for i, label, r, m, t in rows)


MANIFEST = "channels.json"
MANIFEST_FORMAT = "sentiment-channels"


def write_channels(
    tables: dict[str, ReviewTable],
    directory: Path,
    format: ChannelFormat = "jsonl",
    details: dict[str, Any] | None = None,
    shards: int = 1,
    sentences: SoftLabeled | None = None,
    labelled_by: dict[str, Any] | None = None,
) -> dict[str, list[Path]]:
    """Write each channel to `<directory>/<channel>/<channel>.<format>` (or as `shards` files: `write_shards`)
    plus a `channels.json` manifest (files, counts, sha256, `details`), replacing an earlier set in `directory` whole.
    `sentences` (with `labelled_by`, how they were labelled) become the `sentences` channel, always JSON Lines.

    The folder appears only once every channel is written: an interrupted run leaves the previous
    complete set (or none), never a mix. A non-empty folder without a manifest is not a channel
    set and is refused rather than replaced.
    """
    directory = Path(directory).resolve()
    check_replaceable(directory)
    with atomic_directory(directory) as staging:
        staged = {name: write_shards(table, staging / name, name, format, shards) for name, table in tables.items()}
        entries = {name: _manifest_entry(name, tables[name], paths) for name, paths in staged.items()}
        if sentences is not None:
            staged[SENTENCES] = _write_sentence_shards(sentences, staging / SENTENCES, shards)
            if labelled_by is not None:
                write_json_atomic(staging / SENTENCES / SENTENCES_DETAILS, labelled_by)
            entries[SENTENCES] = _files_entry(SENTENCES, staged[SENTENCES]) | {
                "texts": len(sentences),
                "mean_score": round(float(sentences.scores.mean()), 4),
            }
        manifest = {"format": MANIFEST_FORMAT, "version": 1, **(details or {}), "channels": entries}
        write_json_atomic(staging / MANIFEST, manifest)
    return {name: [directory / name / path.name for path in paths] for name, paths in staged.items()}


def _write_sentence_shards(sentences: SoftLabeled, directory: Path, shards: int) -> list[Path]:
    if shards == 1:
        return [write_sentences(sentences, directory / f"{SENTENCES}.jsonl")]
    if not 1 < shards <= len(sentences):
        raise DataError(f"channel {SENTENCES!r}: {len(sentences):,} text(s) cannot make {shards} shards of one or more")
    paths = []
    for index in range(shards):
        block = ChannelPart(index, shards).block(len(sentences))
        part = SoftLabeled(sentences.texts[block.start : block.stop], sentences.scores[block.start : block.stop])
        paths.append(write_sentences(part, directory / f"{SENTENCES}-{index:05d}-of-{shards:05d}.jsonl"))
    return paths


def _manifest_entry(name: str, table: ReviewTable, paths: list[Path]) -> dict[str, Any]:
    files = _files_entry(name, paths)
    entry: dict[str, Any] = {"reviews": len(table), "labels": table.label_counts()}
    if len(paths) == 1:
        return {"file": files["file"], **entry, "sha256": files["sha256"]}
    return files | entry


def _files_entry(name: str, paths: list[Path]) -> dict[str, Any]:
    if len(paths) == 1:
        return {"file": f"{name}/{paths[0].name}", "sha256": file_digest(paths[0])}
    return {"files": [{"file": f"{name}/{path.name}", "sha256": file_digest(path)} for path in paths]}


def check_replaceable(directory: Path) -> None:
    """Refuse a folder that is neither absent, empty, nor a channel set written by `write_channels`."""
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise DataError(
            f"{directory} is not empty and holds no {MANIFEST}: refusing to replace it with channels; "
            "choose an empty or new folder"
        )
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory} is a file, not a folder for channels")


def _channel_sources(directory: Path) -> Iterator[Path]:
    """Readable sources below `directory` in name order; an aclImdb/ folder is one source."""
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            yield from [path] if path.name == "aclImdb" else _channel_sources(path)
        else:
            yield path


def _read_source(path: Path, channel: str, cache_dir: Path | None) -> ReviewTable:
    name = path.name.lower()
    if path.is_dir() or name.endswith((".tar.gz", ".tgz")):
        return _read_imdb_split(path, channel, cache_dir)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _table(_jsonl_rows(_text_of(path), str(path), channel), channel)
    if name.endswith((".csv", ".csv.gz")):
        return _table(_csv_rows(_text_of(path), str(path), channel), channel)
    raise DataError(f"channel {channel!r}: {path} is not a channel file (accepted: {_ACCEPTED})")


def _read_imdb_split(source: Path, channel: str, cache_dir: Path | None) -> ReviewTable:
    split = _IMDB_SPLIT.get(channel)
    if split is None:
        raise DataError(
            f"channel {channel!r}: {source} is an aclImdb source, which has no validation split; "
            "give it as the train channel and validation is carved from it"
        )
    return load_imdb(source, cache_dir).where_split(split)


def _text_of(path: Path) -> str:
    """The file's text, gunzipped if its name ends in .gz; a clear error for bad bytes."""
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a complete gzip file ({error})") from None
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not text
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}: line {line}: bytes are not UTF-8 (at byte {error.start}: {error.reason})") from None


Row = tuple[str, int, int, str, str]  # id, label, rating, movie, text


def _jsonl_rows(text: str, source: str, channel: str) -> Iterator[Row]:
    for where, number, record in _json_records(text, source, "a 'text' field"):
        yield _row(record, where, channel, default_id=f"{Path(source).name}:{number}")


def _json_records(text: str, source: str, fields: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, line number, object) for each non-blank line of a JSON Lines file; a DataError for any other."""
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters it splits on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source}: line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object with {fields}, got {type(record).__name__}")
        yield where, number, record


def _csv_rows(text: str, source: str, channel: str) -> Iterator[Row]:
    csv.field_size_limit(_MAX_CSV_FIELD)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
        required = ("text", "label") if channel in LABELED_CHANNELS else ("text",)
        missing = [column for column in required if column not in header]
        if missing:
            raise DataError(f"{source}: the header row {header} lacks the column(s) {', '.join(missing)}")
        for record in reader:
            where = f"{source}: line {reader.line_num}"
            if None in record or None in record.values():
                raise DataError(f"{where}: {len(header)} columns in the header, a different number in this row")
            if record.get("rating") == "":
                record.pop("rating")
            yield _row(record, where, channel, default_id=f"{Path(source).name}:{reader.line_num}")
    except csv.Error as error:
        raise DataError(f"{source}: line {reader.line_num}: malformed CSV ({error})") from None


def _row(record: dict[str, Any], where: str, channel: str, default_id: str) -> Row:
    text = _text_field(record, where)
    label = _label(record.get("label"), where) if channel in LABELED_CHANNELS else UNLABELED
    rating = record.get("rating", 0)
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 10:
        raise DataError(f"{where}: 'rating' must be a whole number from 1 to 10 (0: unknown), got {_shown(rating)}")
    review_id = record.get("id")
    movie = record.get("movie") or ""
    for name, value in (("id", review_id), ("movie", movie)):
        if isinstance(value, str):
            _check_unicode(value, f"{where}: {name!r}")
    return (default_id if review_id in (None, "") else str(review_id)), label, rating, str(movie), text


def _check_unicode(text: str, where: str) -> None:
    """A JSON escape such as "\\ud800" decodes to half a surrogate pair: no UTF-8 text, so refuse it here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(
            f"{where} holds a lone surrogate {text[error.start]!r} at character {error.start}: "
            "not Unicode text (a broken \\uXXXX escape?)"
        ) from None


def _label(value: Any, where: str) -> int:
    key = value.strip().lower() if isinstance(value, str) else value
    if isinstance(value, bool) or not isinstance(key, (int, str)) or key not in _LABELS:
        raise DataError(f'{where}: \'label\' must be 1, 0, "positive" or "negative", got {_shown(value)}')
    return _LABELS[key]


def _shown(value: Any) -> str:
    text = "nothing" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _table(rows: Iterable[Row], channel: str) -> ReviewTable:
    ids, labels, ratings, movies, texts = [], [], [], [], []
    for review_id, label, rating, movie, text in rows:
        ids.append(review_id)
        labels.append(label)
        ratings.append(rating)
        movies.append(movie)
        texts.append(text)
    return ReviewTable.from_columns(id=ids, split=channel, label=labels, rating=ratings, movie=movies, text=texts)
