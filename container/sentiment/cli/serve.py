"""`serve`: SageMaker's serving entry point (`docker run IMAGE serve`): nginx on port 8080 in front of
gunicorn running the Flask app of `sentiment.serving.app`, configured by the environment (see
`sentiment.contract`: SM_MODEL_DIR, USE_BUNDLED_MODEL, SAGEMAKER_BIND_TO_PORT, MODEL_SERVER_WORKERS,
MODEL_SERVER_THREADS, MODEL_SERVER_TIMEOUT, SENTIMENT_MAX_BATCH, SENTIMENT_FRONT, ...).

    USE_BUNDLED_MODEL=1 SENTIMENT_BIND_HOST=127.0.0.1 serve

Before anything starts it finds the model and checks its files against their checksums, so a missing
or damaged model ends `serve` with a clear message and exit status 1. With nginx (SENTIMENT_FRONT
auto where nginx is installed, as in the image; see `sentiment.serving.front`), `serve` supervises two
children: nginx, which reads every request whole with deadlines, and gunicorn on a Unix socket. If
either exits, the other is stopped and `serve` exits with its status. SIGTERM stops gracefully: nginx
stops accepting, and requests in flight are answered first. SENTIMENT_FRONT=none runs gunicorn alone
on the port (slow clients can then hold its threads). Each worker loads its own copy of the model in
the background (`/ping` answers 503 until then) and uses cores / workers torch threads. Everything a
run writes (nginx's state, the workers' metrics, the socket) lives in one temporary folder, removed
when `serve` ends.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from sentiment.cli.logs import log_lines_to
from sentiment.contract import RUN_FOLDER_VARIABLE, ServingSettings, SettingsError
from sentiment.errors import SentimentError
from sentiment.serving.front import KEEPALIVE_SECONDS, find_nginx, nginx_config
from sentiment.serving.memory import limit_arenas

# Nothing above loads torch: `main` must set OMP_WAIT_POLICY first (see THREAD_WAIT_POLICY).
if TYPE_CHECKING:
    from sentiment.predictor import Predictor

log = logging.getLogger("sentiment.serve")

# How torch's idle OpenMP threads wait, unless the operator says otherwise: asleep, not spinning. A large
# request scores on every core while the other workers go on scoring small ones on theirs, so its threads
# share cores with them; spinning threads then hold a core another thread needs: on AVX2, two 6 MB requests
# at once took 15.4 s instead of 10.1 s (README, Serving). libgomp reads the policy once, when torch loads.
THREAD_WAIT_POLICY = "PASSIVE"
GRACEFUL_SECONDS = 30  # SageMaker waits this long after SIGTERM before it kills a container
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class SentimentServer(BaseApplication):
    """gunicorn, configured in code: no config file to find or get wrong."""

    def __init__(self, settings: ServingSettings, source: Path, bind: str) -> None:
        self.settings = settings
        self.source = source
        self.bind = bind  # host:port, or unix:PATH behind nginx
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": self.bind,
            "workers": settings.workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            "timeout": settings.timeout,
            "graceful_timeout": GRACEFUL_SECONDS,
            "keepalive": KEEPALIVE_SECONDS,  # as nginx keeps its clients' connections
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
        from sentiment.serving.loading import model_fn

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

    limit_arenas()  # before the worker's threads allocate (sentiment.serving.memory says why)

    # Workers share the cores: one intra-op thread pool per core, not per worker per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // server.cfg.workers))


def _child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # How `serve` starts its own gunicorn behind nginx; not for people.
    parser.add_argument("--gunicorn-on", metavar="SOCKET", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", THREAD_WAIT_POLICY)  # before torch loads, in this process and its children
    from sentiment.artifacts import verify_model
    from sentiment.serving.loading import model_source

    log_lines_to("stderr")
    try:
        settings = ServingSettings.from_environment()
        source = model_source(settings)
        if args.gunicorn_on:  # the supervising `serve` has checked the model already
            SentimentServer(settings, source, f"unix:{args.gunicorn_on}").run()
            return 0
        manifest = verify_model(source)
        nginx = _front(settings)
    except SentimentError as error:
        print(f"serve: {error}", file=sys.stderr)
        return 1
    log.info(
        "serve: %s model from %s on %s:%d, %d worker(s) x %d threads, %s",
        manifest["family"],
        source,
        settings.host,
        settings.port,
        settings.workers,
        settings.threads,
        "behind nginx" if nginx else "gunicorn alone (no nginx in front: slow clients can hold its threads)",
    )
    runtime = Path(tempfile.mkdtemp(prefix="sentiment-serve-"))
    os.environ[RUN_FOLDER_VARIABLE] = str(runtime)  # where workers take turns at every core (serving.cores)
    # Every worker's metrics in one folder, so /metrics can add them up.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(runtime / "metrics"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    try:
        if nginx is None:
            SentimentServer(settings, source, f"{settings.host}:{settings.port}").run()
            return 0
        return _supervise(settings, nginx, runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _front(settings: ServingSettings) -> str | None:
    """The nginx program to put in front of gunicorn, or None for gunicorn alone (SENTIMENT_FRONT)."""
    nginx = find_nginx() if settings.front != "none" else None
    if settings.front == "nginx" and nginx is None:
        raise SettingsError("SENTIMENT_FRONT=nginx but nginx is not installed (apt-get install nginx)")
    return nginx


def _supervise(settings: ServingSettings, nginx: str, runtime: Path) -> int:
    """Run nginx and gunicorn until one of them exits or a signal asks both to stop; their exit status."""
    socket_path = runtime / "gunicorn.sock"
    config = runtime / "nginx.conf"
    config.write_text(nginx_config(settings, runtime, socket_path))
    check = subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-p", str(runtime), "-c", str(config)], check=False)
    if check.returncode != 0:
        print(f"serve: nginx refuses its configuration ({config}); see above", file=sys.stderr)
        return 1
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping_since: list[float] = []
    # How each child stops gracefully: nginx stops accepting and finishes what is in flight on SIGQUIT.
    graceful = {"nginx": signal.SIGQUIT, "gunicorn": signal.SIGTERM}

    def stop(number: int, _frame: Any = None) -> None:
        if not stopping_since:
            log.info("serve: %s: stopping nginx and gunicorn gracefully", signal.Signals(number).name)
            stopping_since.append(time.monotonic())
        for name, process in processes.items():
            wanted = signal.SIGINT if name == "gunicorn" and number == signal.SIGINT else graceful[name]
            if process.poll() is None:
                process.send_signal(wanted)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, stop)
    # Each child in a session of its own: tini (and a terminal's Ctrl+C) signal serve's process group, and
    # SIGTERM would stop nginx at once, dropping requests in flight; serve asks each child itself, gently.
    processes["gunicorn"] = _child([sys.executable, "-m", "sentiment.cli.serve", "--gunicorn-on", str(socket_path)])
    # nginx once gunicorn listens: until then the port refuses connections, which a health check reads as
    # "not ready", rather than answering 503s and logging every failed connect.
    while not socket_path.exists() and processes["gunicorn"].poll() is None and not stopping_since:
        time.sleep(0.05)
    if processes["gunicorn"].poll() is None and not stopping_since:
        processes["nginx"] = _child([nginx, "-e", "stderr", "-p", str(runtime), "-c", str(config)])
    status = 0
    while True:
        for name, process in processes.items():
            if process.poll() is not None and not stopping_since:  # a child ended on its own: stop the other
                status = _exit_status(process.returncode) or 1
                log.error("serve: %s exited (status %d); stopping the rest", name, status)
                stop(signal.SIGTERM)
        if stopping_since and all(process.poll() is not None for process in processes.values()):
            break
        if stopping_since and time.monotonic() - stopping_since[0] > GRACEFUL_SECONDS + 5:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
        time.sleep(0.05)
    return status or _exit_status(processes["gunicorn"].returncode)


def _exit_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: 128 + the signal that killed it."""
    return 128 - returncode if returncode < 0 else returncode


def _child(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In a child: SIGTERM when `serve` dies, however it dies (Linux's PR_SET_PDEATHSIG), so none outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
