"""HTTP download that resumes where it stopped (HTTP Range) and checks the published md5.

Bytes arrive in `<destination>.partial`; only a complete file whose checksum matches is renamed to
`destination`. A dropped connection is retried from the byte it reached; an interrupted run leaves
the partial file for the next run to continue.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from sentiment.errors import ChecksumError, DownloadError
from sentiment.files import file_digest

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIABLE_RANGE = re.compile(r"bytes \*/(\d+)")


class _Interrupted(Exception):
    """The connection ended early; the attempt can be resumed."""


def download(
    url: str,
    destination: Path,
    md5: str | None,
    attempts: int = 5,
    timeout: float = 60.0,
    retry_delay: float = 1.0,
    progress: bool | None = None,
) -> Path:
    """Fetch `url` into `destination` unless it is already there, resuming and retrying as needed.

    `md5` (hex) is checked before the file takes its final name; a mismatch raises `ChecksumError`
    and removes the bad bytes. `progress` shows a bar (default: when stderr is a terminal).
    """
    destination = Path(destination)
    if destination.exists():
        _verify(destination, md5, keep_on_mismatch=True)
        log.info("%s is already downloaded and its checksum matches", destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    show = sys.stderr.isatty() if progress is None else progress
    for attempt in range(1, attempts + 1):
        try:
            _fetch(url, partial, timeout, show)
            break
        except (_Interrupted, OSError, http.client.HTTPException) as error:
            received = partial.stat().st_size if partial.exists() else 0
            if attempt == attempts:
                raise DownloadError(
                    f"could not download {url} after {attempts} attempts ({_describe(error)}); "
                    f"{received:,} bytes are kept in {partial} and the next run resumes from there"
                ) from None
            delay = retry_delay * 2 ** (attempt - 1)
            log.warning("download interrupted at %s bytes (%s); retrying in %.1f s", f"{received:,}", _describe(error), delay)
            time.sleep(delay)
    _verify(partial, md5, keep_on_mismatch=False)
    os.replace(partial, destination)
    log.info("downloaded %s (%s bytes)", destination, f"{destination.stat().st_size:,}")
    return destination


def _fetch(url: str, partial: Path, timeout: float, show_progress: bool) -> None:
    """One attempt: continue `partial` from its current size to the end of the resource."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            _handle_unsatisfiable_range(partial, offset, error.headers.get("Content-Range", ""))
            return
        if 400 <= error.code < 500:
            raise DownloadError(f"{url}: the server answered {error.code} {error.reason}") from None
        raise _Interrupted(f"server error {error.code} {error.reason}") from None
    with response:
        offset, total = _resume_point(response, offset)
        with open(partial, "r+b" if offset else "wb") as handle:
            handle.seek(offset)
            handle.truncate()
            _copy(response, handle, offset, total, show_progress, label=partial.name.removesuffix(".partial"))


def _resume_point(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's total size (None when unknown)."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) != offset:
            raise DownloadError(f"the server's Content-Range {response.headers.get('Content-Range')!r} does not continue at byte {offset}")
        return offset, None if match[3] == "*" else int(match[3])
    if offset:
        log.info("the server does not resume downloads; starting again from the first byte")
    return 0, int(length) if length is not None else None


def _handle_unsatisfiable_range(partial: Path, offset: int, content_range: str) -> None:
    """A 416 means the partial file already holds every byte, or more than the resource has."""
    match = _UNSATISFIABLE_RANGE.fullmatch(content_range)
    if match and int(match[1]) == offset:
        return
    partial.unlink()
    raise _Interrupted(f"the partial file ({offset:,} bytes) does not fit the resource; starting again")


def _copy(source: BinaryIO, handle: BinaryIO, offset: int, total: int | None, show_progress: bool, label: str) -> None:
    received = offset
    with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not show_progress) as bar:
        while chunk := source.read(CHUNK_BYTES):
            handle.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    handle.flush()
    os.fsync(handle.fileno())
    if total is not None and received < total:
        raise _Interrupted(f"connection closed at byte {received:,} of {total:,}")


def _verify(path: Path, md5: str | None, keep_on_mismatch: bool) -> None:
    if md5 is None:
        return
    actual = file_digest(path, "md5")
    if actual == md5.lower():
        return
    if keep_on_mismatch:
        raise ChecksumError(f"{path} has md5 {actual}, expected {md5}: delete it (or pass the file as a local source) and run again")
    path.unlink()
    raise ChecksumError(f"the download has md5 {actual}, expected {md5}: the bytes were discarded; try again later")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
