"""Prometheus metrics of one server: requests and latency by route and status, batch sizes, verdicts
by label, and the model's version. Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR
(`serve` sets it) and `/metrics` adds up all workers, whichever one answers the scrape."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sentiment_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sentiment_request_duration_seconds",
            "Time to answer a request, by route and status",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "sentiment_batch_size", "Reviews per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.predictions = Counter(
            "sentiment_predictions", "Verdicts given, by label", ["label"], registry=self.registry
        )
        self.model = Gauge(
            "sentiment_model_info",
            "The loaded model (1 while loaded)",
            ["version", "family"],
            multiprocess_mode="max",
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The text format a Prometheus scrape reads, for all workers when there are several."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
