"""Small aclImdb-shaped datasets made up by the tests (never reviews taken from IMDb)."""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Callable
from pathlib import Path

POSITIVE_WORDS = ["wonderful", "superb", "moving", "brilliant", "delightful", "masterpiece", "loved", "great"]
NEGATIVE_WORDS = ["awful", "boring", "dreadful", "waste", "terrible", "clumsy", "hated", "worst"]
FILLER_WORDS = ["the", "film", "plot", "actor", "scene", "director", "story", "camera", "and", "it", "was"]

# Review folders and the ratings their file names may carry.
FOLDER_RATINGS = {
    "train/pos": [7, 8, 9, 10],
    "train/neg": [1, 2, 3, 4],
    "train/unsup": [0],
    "test/pos": [7, 8, 9, 10],
    "test/neg": [1, 2, 3, 4],
}


def make_review(rng: random.Random, positive: bool | None, words: int = 40) -> str:
    """A made-up review: filler with sentiment words, HTML line breaks like IMDb's."""
    lexicon = FILLER_WORDS + (POSITIVE_WORDS if positive else NEGATIVE_WORDS if positive is False else [])
    sentences = [" ".join(rng.choice(lexicon) for _ in range(words // 4)).capitalize() + "." for _ in range(4)]
    return "<br /><br />".join(sentences)


def imdb_files(per_folder: int = 12, seed: int = 0, movies_per_folder: int = 4) -> dict[str, bytes]:
    """Relative path -> bytes of a complete small aclImdb tree (reviews, urls files, README)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {"aclImdb/README": b"A small made-up dataset in the aclImdb layout.\n"}
    for folder, ratings in FOLDER_RATINGS.items():
        split, kind = folder.split("/")
        positive = {"pos": True, "neg": False, "unsup": None}[kind]
        urls = []
        for review_id in range(per_folder):
            rating = ratings[review_id % len(ratings)]
            text = make_review(rng, positive)
            files[f"aclImdb/{folder}/{review_id}_{rating}.txt"] = text.encode("utf-8")
            # Distinct movie numbers per split, like IMDb's disjoint train and test movies.
            movie = 1000 * (split == "test") + 100 * list(FOLDER_RATINGS).index(folder) + review_id % movies_per_folder
            urls.append(f"http://www.imdb.com/title/tt{movie:07d}/usercomments")
        files[f"aclImdb/{split}/urls_{kind}.txt"] = ("\n".join(urls) + "\n").encode()
    return files


def write_tree(files: dict[str, bytes], root: Path) -> Path:
    """Write `files` below `root`; returns the aclImdb folder."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root / "aclImdb"


def write_archive(
    files: dict[str, bytes], path: Path, member_filter: Callable[[str], bool] = lambda name: True
) -> Path:
    """Write `files` as a .tar.gz with directory entries, like the official archive."""
    directories = sorted({str(Path(name).parent) for name in files} - {"."})
    with tarfile.open(path, "w:gz") as archive:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data in sorted(files.items()):
            if member_filter(name):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path
