"""sentiment.serving.metrics: one process's counters, and every worker's added up through
PROMETHEUS_MULTIPROC_DIR as `serve` runs them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from sentiment.serving.metrics import Metrics


def value(text: str, sample: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample))


def test_one_process_counts_requests_batches_and_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = Metrics()
    metrics.requests.labels(route="/invocations", status="200").inc(3)
    metrics.batch_size.observe(16)
    metrics.predictions.labels(label="unknown").inc()
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert value(text, 'sentiment_requests_total{route="/invocations",status="200"}') == 3
    assert value(text, "sentiment_batch_size_count") == 1
    assert value(text, 'sentiment_predictions_total{label="unknown"}') == 1


def _count_in_a_worker(folder: str) -> None:
    import os

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    Metrics().requests.labels(route="/ping", status="200").inc(2)


def test_every_workers_counts_are_added_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    context = multiprocessing.get_context("spawn")  # fresh processes, as gunicorn's workers are to each other
    for _ in range(2):
        worker = context.Process(target=_count_in_a_worker, args=(str(tmp_path),))
        worker.start()
        worker.join(60)
        assert worker.exitcode == 0
    text = Metrics().exposition()[0].decode()
    assert value(text, 'sentiment_requests_total{route="/ping",status="200"}') == 4
