"""The Large Movie Review Dataset (aclImdb): its official address and checksum, layout checks, reading.

`read_imdb` accepts the `.tar.gz` archive (read as a stream, never extracted) or an extracted
`aclImdb/` folder, checks the layout, and returns every review as a `ReviewTable`. A damaged source
is refused with a `DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sentiment.data.table import NEGATIVE, POSITIVE, UNLABELED, ReviewTable
from sentiment.errors import DataError

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
IMDB_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
ROOT = "aclImdb"

# Review folders of the official layout with their review counts.
OFFICIAL_COUNTS = {
    "train/pos": 12_500,
    "train/neg": 12_500,
    "train/unsup": 50_000,
    "test/pos": 12_500,
    "test/neg": 12_500,
}
_LABELS = {"pos": POSITIVE, "neg": NEGATIVE, "unsup": UNLABELED}
_RATINGS = {"pos": range(7, 11), "neg": range(1, 5), "unsup": range(0, 1)}
_TABLE_SPLITS = {"train/pos": "train", "train/neg": "train", "train/unsup": "unsup", "test/pos": "test", "test/neg": "test"}
CHUNK_BYTES = 1 << 20
_REVIEW_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_MOVIE = re.compile(r"/title/(tt\d+)")


@dataclass
class _Folder:
    """What was found of one review folder while reading."""

    reviews: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (rating, text)
    urls: list[str] | None = None
    seen: bool = False


def read_imdb(source: Path) -> ReviewTable:
    """Every review of an aclImdb archive or folder, after checking its layout."""
    source = Path(source)
    if source.is_dir():
        folders = _read_folder(_imdb_root(source))
    elif source.is_file():
        folders = _read_archive(source)
    else:
        raise DataError(f"{source}: no such file or folder (expected {IMDB_ARCHIVE_NAME} or an aclImdb/ folder)")
    _check_layout(source, folders)
    return _to_table(folders)


def official_count_differences(table: ReviewTable) -> list[str]:
    """Folders whose review counts differ from the official dataset, e.g. "train/pos: 10 (official 12,500)"."""
    counts: dict[str, int] = {}
    for review_id in table.id:
        folder = review_id.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return [
        f"{folder}: {counts.get(folder, 0):,} (official {expected:,})"
        for folder, expected in OFFICIAL_COUNTS.items()
        if counts.get(folder, 0) != expected
    ]


def _imdb_root(folder: Path) -> Path:
    """Accept the aclImdb folder itself or a folder holding it."""
    if (folder / ROOT).is_dir():
        return folder / ROOT
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return folder
    raise DataError(f"{folder}: not an aclImdb folder (expected train/ and test/ inside, or an {ROOT}/ folder)")


def _read_folder(root: Path) -> dict[str, _Folder]:
    folders = {name: _Folder() for name in OFFICIAL_COUNTS}
    for name, found in folders.items():
        directory = root / name
        if not directory.is_dir():
            continue
        found.seen = True
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            where = f"{root}/{name}/{entry.name}"
            _add_review(found, where, lambda path=entry.path: _read_file(path, where), is_file=entry.is_file())
        urls = root / f"{name.split('/')[0]}/urls_{name.split('/')[1]}.txt"
        if urls.is_file():
            found.urls = _decode(_read_file(urls, str(urls)), str(urls)).splitlines()
    return folders


def _read_file(path: str | Path, where: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{where}: cannot be read ({error.strerror or error})") from None


def _read_archive(archive: Path) -> dict[str, _Folder]:
    folders = {name: _Folder() for name in OFFICIAL_COUNTS}
    last = "(none)"
    try:
        # Read front to back once ("r|", no index of members). GzipFile, not tarfile's own "r|gz",
        # so that draining the stream checks the gzip CRC; the recorder lets us check the tar's
        # end-of-archive marker, because tarfile stops quietly at a cut or garbled header.
        with gzip.open(archive, "rb") as unzipped:
            recorder = _TailRecorder(unzipped)
            with tarfile.open(fileobj=recorder, mode="r|") as stream:
                for member in stream:
                    last = member.name
                    _add_member(archive, folders, stream, member)
                _check_end_of_archive(recorder, stream.offset)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{archive}: corrupt or truncated archive after member {last!r} ({error}); "
            "download it again or pass the extracted aclImdb/ folder"
        ) from None
    return folders


class _TailRecorder:
    """A read-only stream that passes bytes through and remembers the last `keep` of them."""

    def __init__(self, stream: gzip.GzipFile, keep: int = 1 << 16) -> None:
        self.stream, self.keep = stream, keep
        self.tail = bytearray()
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.position += len(data)
        self.tail += data
        del self.tail[: max(0, len(self.tail) - self.keep)]
        return data


def _check_end_of_archive(recorder: _TailRecorder, end_of_members: int) -> None:
    """After the last member a tar holds only zero blocks, at least two: else it was cut or garbled."""
    # Bytes tarfile read past the last member (negative when the archive ends inside a member).
    unread_by_tar = recorder.position - end_of_members
    if unread_by_tar > len(recorder.tail):
        raise tarfile.ReadError(f"a garbled header at byte {end_of_members:,} ends the readable members")
    after = bytes(recorder.tail[len(recorder.tail) - unread_by_tar :]) if unread_by_tar > 0 else b""
    nonzero = len(after) - after.count(0)
    while chunk := recorder.read(CHUNK_BYTES):
        nonzero += len(chunk) - chunk.count(0)
    if recorder.position - end_of_members < 2 * tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"the tar stream ends at byte {recorder.position:,} without its end-of-archive marker")
    if nonzero:
        raise tarfile.ReadError(f"a garbled header at byte {end_of_members:,} ends the readable members")


def _add_member(archive: Path, folders: dict[str, _Folder], stream: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    name = member.name.removeprefix("./").rstrip("/")
    where = f"{archive}: {name}"
    if name != ROOT and not name.startswith(f"{ROOT}/"):
        raise DataError(f"{where}: lies outside {ROOT}/: not the aclImdb archive layout")
    relative = name.removeprefix(f"{ROOT}/")
    parent = relative.rpartition("/")[0]
    if member.isdir():
        if relative in folders:
            folders[relative].seen = True
        elif any(relative.startswith(f"{folder}/") for folder in folders):
            raise DataError(f"{where}: unexpected folder inside a review folder")
        return
    if parent in folders:
        folders[parent].seen = True
        _add_review(folders[parent], where, lambda: _read_member(stream, member), is_file=member.isfile())
        return
    if any(relative.startswith(f"{folder}/") for folder in folders):
        raise DataError(f"{where}: unexpected entry inside a review folder (reviews are files named <id>_<rating>.txt)")
    # Other files of the official archive (README, imdb.vocab, *.feat) are not needed.
    urls = re.fullmatch(r"(train|test)/urls_(pos|neg|unsup)\.txt", relative)
    if urls and member.isfile():
        folders[f"{urls[1]}/{urls[2]}"].urls = _decode(_read_member(stream, member), where).splitlines()


def _read_member(stream: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = stream.extractfile(member)
    assert handle is not None  # regular files always have contents
    return handle.read()


def _add_review(folder: _Folder, where: str, read: Callable[[], bytes], is_file: bool) -> None:
    """Check a review's name and rating, then read and decode it (names are checked before reading)."""
    match = _REVIEW_NAME.fullmatch(where.rsplit("/", 1)[-1])
    if not is_file or match is None:
        raise DataError(f"{where}: unexpected entry in a review folder (reviews are files named <id>_<rating>.txt)")
    review_id, rating = int(match[1]), int(match[2])
    kind = where.split("/")[-2]
    if rating not in _RATINGS[kind]:
        allowed = _RATINGS[kind]
        raise DataError(f"{where}: rating {rating} is outside {allowed.start}-{allowed.stop - 1} for {kind}/ reviews")
    if review_id in folder.reviews:
        raise DataError(f"{where}: review id {review_id} appears twice in its folder")
    text = _decode(read(), where)
    if not text.strip():
        raise DataError(f"{where}: the review is empty")
    folder.reviews[review_id] = (rating, text)


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{where}: line {line}: bytes are not UTF-8 (at byte {error.start}: {error.reason})") from None


def _check_layout(source: Path, folders: dict[str, _Folder]) -> None:
    """Every review folder present, ids 0..n-1 without gaps, one URL line per review."""
    for name, folder in folders.items():
        where = f"{source}: {ROOT}/{name}"
        if not folder.seen:
            raise DataError(f"{where}/ is missing (the aclImdb layout has train/pos, neg, unsup and test/pos, neg)")
        count = len(folder.reviews)
        if count == 0:
            raise DataError(f"{where}/ holds no reviews")
        missing = sorted(set(range(count)) - folder.reviews.keys())
        if missing:
            raise DataError(
                f"{where}/: {len(missing)} review ids missing between 0 and {count - 1} "
                f"(first: {missing[0]}): files were lost in copying or extraction"
            )
        urls_file = f"{ROOT}/{name.split('/')[0]}/urls_{name.split('/')[1]}.txt"
        if folder.urls is None:
            raise DataError(f"{source}: {urls_file} is missing")
        if len(folder.urls) != count:
            raise DataError(f"{source}: {urls_file} has {len(folder.urls):,} lines for {count:,} reviews")


def _to_table(folders: dict[str, _Folder]) -> ReviewTable:
    def rows() -> Iterator[tuple[str, str, int, int, str, str]]:
        for name, folder in folders.items():
            split = _TABLE_SPLITS[name]
            label = _LABELS[name.split("/")[1]]
            urls = folder.urls or []
            for review_id in range(len(folder.reviews)):
                rating, text = folder.reviews[review_id]
                movie = _MOVIE.search(urls[review_id])
                yield f"{name}/{review_id}_{rating}", split, label, rating, movie[1] if movie else "", text

    ids, splits, labels, ratings, movies, texts = zip(*rows(), strict=True)
    return ReviewTable.from_columns(id=ids, split=splits, label=labels, rating=ratings, movie=movies, text=texts)
