"""sentiment.serving.batching: concurrent requests share model calls, and each gets its own answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sentiment.serving.batching import MicroBatcher


class RecordingScorer:
    """Scores a review as its number (reviews are "0", "1", ...) / 1000, slowly, and records batch sizes."""

    def __init__(self, seconds: float = 0.01, fail_on: str | None = None) -> None:
        self.seconds = seconds
        self.fail_on = fail_on
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, reviews: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.batches.append(len(reviews))
        time.sleep(self.seconds)
        if self.fail_on in reviews:
            raise RuntimeError("the model broke")
        return np.array([int(review) / 1000 for review in reviews])


def run_clients(batcher: MicroBatcher, requests: list[list[str]]) -> list[np.ndarray]:
    def handle(reviews: list[str]) -> np.ndarray:
        with batcher.expecting():
            return batcher.submit(reviews, timeout=10)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(handle, requests))


def test_concurrent_requests_are_batched_and_each_gets_its_own_scores() -> None:
    scorer = RecordingScorer()
    batcher = MicroBatcher(scorer, max_batch=16, max_wait_seconds=0.02)
    requests = [[str(i)] if i % 3 else [str(i), str(i + 1000)] for i in range(64)]
    answers = run_clients(batcher, requests)
    for reviews, scores in zip(requests, answers, strict=True):
        assert scores.tolist() == [int(review) / 1000 for review in reviews]
    assert sum(scorer.batches) == sum(map(len, requests))
    assert max(scorer.batches) > 1 and max(scorer.batches) <= 16
    assert len(scorer.batches) < len(requests) / 2


class OverlapCheckingScorer(RecordingScorer):
    """A RecordingScorer that also notes the threads it runs in and whether two calls ever overlapped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.threads: set[str] = set()
        self.running = 0
        self.overlapped = False

    def __call__(self, reviews: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.overlapped |= self.running > 1
            self.threads.add(threading.current_thread().name)
        try:
            return super().__call__(reviews)
        finally:
            with self.lock:
                self.running -= 1


def test_max_batch_one_scores_each_request_alone_in_its_own_thread_one_at_a_time() -> None:
    scorer = OverlapCheckingScorer(seconds=0.002)
    batcher = MicroBatcher(scorer, max_batch=1, max_wait_seconds=0.01)
    answers = run_clients(batcher, [[str(i)] for i in range(20)])
    assert [a.tolist() for a in answers] == [[i / 1000] for i in range(20)]
    assert scorer.batches == [1] * 20
    assert not scorer.overlapped  # one model call at a time, as with batching on
    assert "micro-batcher" not in scorer.threads and len(scorer.threads) > 1  # no hand-off to a batching thread


def test_a_request_larger_than_a_batch_is_scored_alone_and_whole() -> None:
    scorer = RecordingScorer(seconds=0)
    sizes: list[int] = []
    batcher = MicroBatcher(scorer, max_batch=4, max_wait_seconds=0.01, on_batch=sizes.append)
    reviews = [str(i) for i in range(10)]
    assert batcher.submit(reviews).tolist() == [i / 1000 for i in range(10)]
    assert scorer.batches == [10] and sizes == [10]


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = MicroBatcher(RecordingScorer(seconds=0), max_batch=64, max_wait_seconds=5.0)
    started = time.perf_counter()
    with batcher.expecting():
        batcher.submit(["1"])
    assert time.perf_counter() - started < 1.0


def test_a_request_waits_at_most_max_wait_for_others_being_handled() -> None:
    scorer = RecordingScorer(seconds=0)
    batcher = MicroBatcher(scorer, max_batch=64, max_wait_seconds=0.2)
    with batcher.expecting(), batcher.expecting():  # another request is being handled but never submits
        started = time.perf_counter()
        batcher.submit(["1"])
        waited = time.perf_counter() - started
    assert 0.15 < waited < 2.0 and scorer.batches == [1]


def test_a_failed_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    scorer = RecordingScorer(fail_on="13")
    batcher = MicroBatcher(scorer, max_batch=64, max_wait_seconds=0.05)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(batcher.submit, [str(i)], 10) for i in (11, 12, 13)]
        outcomes = [future.exception() for future in futures]
    assert any(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert batcher.submit(["5"], timeout=10).tolist() == [0.005]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(RecordingScorer(), max_batch=0, max_wait_seconds=0.01)
