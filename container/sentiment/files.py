"""Atomic file and directory writes, JSON files and checksums: the package's only way to write.

A reader (or a resumed run) sees either the previous complete file or the new complete file, never a
half-written one: everything is written to a temporary name beside its target, then renamed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users (a container's)
        text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}  # no newline translation
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def write_json_atomic(path: Path, document: Any) -> None:
    """Write `document` as indented UTF-8 JSON, atomically."""
    # allow_nan=False: a NaN or infinity would be written as bare NaN/Infinity, which is not JSON; fail instead.
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: Path) -> Any:
    """Parse a UTF-8 JSON file; `ValueError` naming the file when it is not one."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Build a directory under a temporary name; on success it takes the place of `path`.

    An existing `path` is moved aside and removed only after the new one is in place, so an
    interruption leaves the old complete directory (or nothing), never a mix of old and new.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        os.chmod(staging, 0o755)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = path.with_name(f".{path.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if path.exists():
        os.replace(path, previous)
    os.replace(staging, path)
    shutil.rmtree(previous, ignore_errors=True)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
