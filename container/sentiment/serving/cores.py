"""Every core for a large request while no other worker holds them.

Each worker scores with its share of the cores (cores / workers threads), which is right under many
small requests: every core is busy with some worker. A large request (a Batch Transform payload, up to
thousands of reviews in one model call) is the opposite: its worker is busy while the others may be
idle, and one thread per worker would leave the other cores unused. So while it scores, a large
request takes every core, but only one worker at a time: they take turns through an exclusive lock on
a file in the server's run folder, and a worker that finds it held keeps its share rather than waiting
(two large requests at once each have a worker of their own).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from sentiment.contract import RUN_FOLDER_VARIABLE

LOCK_NAME = "all-cores.lock"


@contextmanager
def all_cores(run_folder: Path | None = None) -> Iterator[int]:
    """Torch threads on every core for the calling thread while inside, when no other worker has them;
    yields the number of threads it scores with. Without a run folder (one process) it takes them alone."""
    share = torch.get_num_threads()
    cores = os.cpu_count() or 1
    if cores <= share:
        yield share
        return
    folder = run_folder or _run_folder()
    if folder is None:
        with _threads(cores):
            yield cores
        return
    with open(folder / LOCK_NAME, "a+b") as lock:  # the lock goes with the file's closing
        if not _locked(lock.fileno()):  # another worker's large request has them: keep this worker's share
            yield share
            return
        with _threads(cores):
            yield cores


def _locked(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def _threads(count: int) -> Iterator[None]:
    # Per thread: torch's setting reaches this thread's oneDNN kernels (the LSTM), not the worker's others.
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_folder() -> Path | None:
    value = os.environ.get(RUN_FOLDER_VARIABLE)
    return Path(value) if value and Path(value).is_dir() else None
