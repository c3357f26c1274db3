"""Read an aclImdb source once, then reuse its columnar copy: 0.5 s instead of 100,000 small reads.

The cache file is named after a fingerprint of the source (the archive's sha256, or the folder's
file names, sizes and modification times) and of the table format, so a changed source or a new
format is read afresh and a stale copy is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from sentiment.data.imdb import read_imdb
from sentiment.data.table import TABLE_FORMAT_VERSION, ReviewTable
from sentiment.errors import DataError
from sentiment.files import file_digest

log = logging.getLogger(__name__)

# Bump when `read_imdb` changes what it puts in a table, so older caches are not reused.
READER_VERSION = 1
KEPT_CACHE_FILES = 3  # the most recently used; each copy of the full dataset takes ~140 MB


def load_imdb(source: Path, cache_dir: Path | None) -> ReviewTable:
    """All reviews of an aclImdb archive or folder, from the cache in `cache_dir` when it has them."""
    source = Path(source)
    if cache_dir is None:
        return read_imdb(source)
    cache_file = Path(cache_dir) / f"imdb-{source_fingerprint(source)[:20]}.npz"
    if cache_file.is_file():
        try:
            table = ReviewTable.load(cache_file)
            os.utime(cache_file)  # marks it recently used, see _prune
            log.info("read %s reviews from the cache %s", f"{len(table):,}", cache_file)
            return table
        except DataError as error:
            log.warning("the cache is unreadable, reading the source again: %s", error)
    table = read_imdb(source)
    table.save(cache_file)
    log.info("cached %s reviews in %s", f"{len(table):,}", cache_file)
    _prune(Path(cache_dir))
    return table


def _prune(cache_dir: Path) -> None:
    """Delete all but the most recently used cache files (sources and formats change over time)."""
    cached = sorted(cache_dir.glob("imdb-*.npz"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for stale in cached[KEPT_CACHE_FILES:]:
        stale.unlink(missing_ok=True)
        log.info("removed the stale cache %s", stale)


def source_fingerprint(source: Path) -> str:
    """A hex digest that changes whenever the source's contents (or the table format) change."""
    digest = hashlib.sha256(f"reader={READER_VERSION};table={TABLE_FORMAT_VERSION};".encode())
    if source.is_file():
        digest.update(file_digest(source).encode())
        return digest.hexdigest()
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    for directory, subdirectories, files in os.walk(source):
        subdirectories.sort()
        for name in sorted(files):
            path = Path(directory, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
