"""`serve`: SageMaker's serving entry point (`docker run IMAGE serve`): gunicorn running the Flask
app of `sentiment.serving.app` on port 8080, configured by the environment (see
`sentiment.contract`: SM_MODEL_DIR, USE_BUNDLED_MODEL, SAGEMAKER_BIND_TO_PORT, MODEL_SERVER_WORKERS,
MODEL_SERVER_THREADS, MODEL_SERVER_TIMEOUT, SENTIMENT_MAX_BATCH, SENTIMENT_MAX_WAIT_MS).

    USE_BUNDLED_MODEL=1 SENTIMENT_BIND_HOST=127.0.0.1 serve

Before any worker starts it finds the model and checks its files against their checksums, so a
missing or damaged model ends `serve` with a clear message and exit status 1. Each worker loads its
own copy in the background (`/ping` answers 503 until then) and uses cores / workers torch threads.
SIGTERM stops gracefully: requests in flight are answered first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from sentiment.artifacts import verify_model
from sentiment.contract import ServingSettings
from sentiment.errors import SentimentError
from sentiment.predictor import Predictor
from sentiment.serving.loading import model_fn, model_source

log = logging.getLogger("sentiment.serve")

GRACEFUL_SECONDS = 30  # SageMaker waits this long after SIGTERM before it kills a container


class SentimentServer(BaseApplication):
    """gunicorn, configured in code: no config file to find or get wrong."""

    def __init__(self, settings: ServingSettings, source: Path) -> None:
        self.settings = settings
        self.source = source
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            "timeout": settings.timeout,
            "graceful_timeout": GRACEFUL_SECONDS,
            "keepalive": 75,  # longer than SageMaker's and API Gateway's idle connections
            "errorlog": "-",
            "loglevel": "info",
            "post_fork": _post_fork,
            "child_exit": _child_exit,
            # No gunicornc control socket: by default every server on a machine shares one file in
            # ~/.gunicorn, and the image's `sentiment` user may have no writable home.
            "control_socket_disable": True,
        }
        for name, value in options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from sentiment.serving.app import create_app

        source = self.source

        def load_or_halt() -> Predictor:
            try:
                return model_fn(source, self.settings.precision)
            except SentimentError as error:  # e.g. SENTIMENT_PRECISION=bfloat16 on a CPU without it
                log.error("serve: %s; stopping the server", error)
            except Exception:
                log.exception("this worker cannot load the model; stopping the server")
            os._exit(Arbiter.WORKER_BOOT_ERROR)  # gunicorn halts on a worker's boot error

        return create_app(self.settings, load=load_or_halt)


def _post_fork(server: Any, worker: Any) -> None:
    import torch

    # Workers share the cores: one intra-op thread pool per core, not per worker per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // server.cfg.workers))


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    try:
        settings = ServingSettings.from_environment()
        source = model_source(settings)
        manifest = verify_model(source)
    except SentimentError as error:
        print(f"serve: {error}", file=sys.stderr)
        return 1
    log.info(
        "serve: %s model from %s on %s:%d, %d worker(s) x %d threads",
        manifest["family"],
        source,
        settings.host,
        settings.port,
        settings.workers,
        settings.threads,
    )
    # Every worker's metrics in one folder, so /metrics can add them up.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="sentiment-metrics-"))
    SentimentServer(settings, source).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
