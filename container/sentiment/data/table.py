"""`ReviewTable`: reviews as columns (id, split, label, rating, movie, text), and its on-disk form.

The on-disk form is one uncompressed `.npz` of plain arrays (strings as one UTF-8 buffer plus
offsets), loaded with `allow_pickle=False`: reading 100,000 reviews back takes well under a second
and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentiment.errors import DataError
from sentiment.files import atomic_writer

POSITIVE, NEGATIVE, UNLABELED = 1, 0, -1
LABEL_NAMES = {POSITIVE: "positive", NEGATIVE: "negative"}

TABLE_FORMAT_VERSION = 1
_STRING_COLUMNS = ("id", "split", "movie", "text")
_NUMBER_COLUMNS = {"label": np.int8, "rating": np.int8}


@dataclass(frozen=True)
class ReviewTable:
    """Reviews in columns of equal length.

    `label` is 1 (positive), 0 (negative) or -1 (unlabeled); `rating` the star rating 1-10 from the
    file name, 0 when unknown; `movie` the IMDb title ("tt0453418") or "" when unknown.
    """

    id: list[str]
    split: list[str]
    label: np.ndarray
    rating: np.ndarray
    movie: list[str]
    text: list[str]

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in (*_STRING_COLUMNS, *_NUMBER_COLUMNS)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns differ in length: {lengths}")

    @classmethod
    def from_columns(
        cls,
        *,
        text: Sequence[str],
        label: Sequence[int],
        id: Sequence[str] | None = None,
        split: Sequence[str] | str = "",
        rating: Sequence[int] | None = None,
        movie: Sequence[str] | None = None,
    ) -> ReviewTable:
        """Build a table from Python sequences; missing columns get their "unknown" values."""
        n = len(text)
        return cls(
            id=list(id) if id is not None else [str(i) for i in range(n)],
            split=[split] * n if isinstance(split, str) else list(split),
            label=np.asarray(label, dtype=np.int8).reshape(n),
            rating=np.asarray(rating if rating is not None else [0] * n, dtype=np.int8).reshape(n),
            movie=list(movie) if movie is not None else [""] * n,
            text=list(text),
        )

    @classmethod
    def concat(cls, tables: Sequence[ReviewTable]) -> ReviewTable:
        return cls(
            id=[value for table in tables for value in table.id],
            split=[value for table in tables for value in table.split],
            label=np.concatenate([table.label for table in tables]).astype(np.int8),
            rating=np.concatenate([table.rating for table in tables]).astype(np.int8),
            movie=[value for table in tables for value in table.movie],
            text=[value for table in tables for value in table.text],
        )

    def __len__(self) -> int:
        return len(self.text)

    def take(self, indices: Sequence[int] | np.ndarray) -> ReviewTable:
        """The rows at `indices`, in that order."""
        rows = np.asarray(indices, dtype=np.int64)
        return ReviewTable(
            id=[self.id[i] for i in rows],
            split=[self.split[i] for i in rows],
            label=self.label[rows],
            rating=self.rating[rows],
            movie=[self.movie[i] for i in rows],
            text=[self.text[i] for i in rows],
        )

    def where_split(self, split: str) -> ReviewTable:
        return self.take([i for i, name in enumerate(self.split) if name == split])

    def digest(self) -> str:
        """sha256 of the labels and texts, in order: identifies the data a model was trained on."""
        digest = hashlib.sha256()
        for label, text in zip(self.label.tolist(), self.text, strict=True):
            digest.update(f"{label}\0{text}\0".encode())
        return digest.hexdigest()

    def label_counts(self) -> dict[str, int]:
        """Reviews per label name ("positive", "negative", "unlabeled")."""
        return {
            "positive": int(np.sum(self.label == POSITIVE)),
            "negative": int(np.sum(self.label == NEGATIVE)),
            "unlabeled": int(np.sum(self.label == UNLABELED)),
        }

    def save(self, path: Path) -> None:
        """Write the table as one `.npz` file, atomically."""
        arrays: dict[str, np.ndarray] = {"format_version": np.array(TABLE_FORMAT_VERSION)}
        for name in _STRING_COLUMNS:
            arrays[f"{name}.utf8"], arrays[f"{name}.offsets"] = _pack_strings(getattr(self, name))
        for name, dtype in _NUMBER_COLUMNS.items():
            arrays[name] = np.asarray(getattr(self, name), dtype=dtype)
        with atomic_writer(Path(path)) as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> ReviewTable:
        """Read a table written by `save`; `DataError` if the file is not one (or is damaged)."""
        try:
            with _open_npz(path) as archive:
                version = int(archive["format_version"])
                if version != TABLE_FORMAT_VERSION:
                    raise DataError(f"{path}: review table version {version}, expected {TABLE_FORMAT_VERSION}")
                strings = {
                    name: _unpack_strings(archive[f"{name}.utf8"], archive[f"{name}.offsets"])
                    for name in _STRING_COLUMNS
                }
                numbers = {name: archive[name].astype(dtype) for name, dtype in _NUMBER_COLUMNS.items()}
            return cls(**strings, **numbers)
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not a readable review table ({error})") from None


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not a table")
    return loaded


def _pack_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack_strings(buffer: np.ndarray, offsets: np.ndarray) -> list[str]:
    data = buffer.tobytes()
    bounds = offsets.tolist()
    if len(bounds) == 0 or bounds[0] != 0 or bounds[-1] != len(data):
        raise ValueError("string offsets do not match the buffer")
    return [data[start:end].decode("utf-8") for start, end in zip(bounds, bounds[1:], strict=False)]
