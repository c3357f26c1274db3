#!/usr/bin/env python3
"""Serving speed over real HTTP, the load coming from a separate process (wrk), in one run:

    python benchmarks/serve.py [--model PATH] [--clients 64] [--seconds 5] [--rounds 5] [--image sentiment:cpu]

Rows (the bundled model unless --model; `serve` started here with its defaults, 2 workers on 2 cores):
  batching off   64 concurrent clients, one 230-word review each, SENTIMENT_MAX_BATCH=1
  batching on    the same load with micro-batching (the 5x target is retired: the ceiling below bounds it)
  batching on, 16 threads / fewer threads' gain
                 the same load on a server with MODEL_SERVER_THREADS=16, the default before stop 26
                 (--compare-threads N; no such server when N is the default)
                 The servers run side by side and take turns under load, --rounds times: each row is
                 the median round, each gain the median of the rounds' ratios, so a noisy
                 neighbour slowing one stretch of time moves both sides of a ratio alike
  model alone / model in 8 / model in 64 / batching ceiling
                 the model's own time per review (in this process, one torch thread as each worker
                 has), alone, in a batch of 8 (a worker's request threads, the largest batch 64
                 clients can form in it) and of 64: the ratio of the first and last bounds what
                 batching can gain here, as HTTP costs the same per request either way
  share of the model's ceiling
                 "batching on" over what the workers would score with batches of 64 back to back:
                 how much of the model's own speed the server keeps (target: >= 60 %)
  share of the ceiling left by wrk
                 the same against the ceiling of the cores wrk did not use (its CPU time is measured):
                 here the load comes from the same two cores, on SageMaker from elsewhere
  CPU per request, bare Flask /ping / /ping / batching on / at 60 % of the ceiling
                 the server's CPU time (all its processes, from /proc) per request answered under the
                 same load: GET /ping of a one-route Flask app under the same gunicorn with no nginx
                 (bare_flask.py), the least any Flask app under gunicorn costs; GET /ping of `serve`,
                 the floor any request pays to nginx, gunicorn, Flask and our hooks; a scored review;
                 and what the cores allow a request at 60 % of the ceiling, split into the model's
                 part, the floor's, and what is left for the rest of a request
  low load       one client at a time: latency percentiles (target: p99 <= 10 ms on AVX2, <= 25 ms on any CPU)
  6 MB batch     one MultiRecord JSON Lines payload of IMDb test reviews (target: >= 1,000 reviews/s)
  2 x 6 MB at once
                 two such payloads at the same time, as Batch Transform sends them (the server advertises
                 MaxConcurrentTransforms = workers): reviews/s of both together
  6 MB batch, 4 clients
                 the same while 4 other clients send one review at a time: the large request's threads
                 share their cores with the other workers (how idle torch threads wait matters here)
  image          with --image: the image's size and its cold start (container start to first 200 on /ping)
SENTIMENT_PRECISION, where set, applies to the servers and to the model measured alone (the "model" rows).
Reviews come from data/channels/test (`make data`); none is stored in the results.
Needs wrk (`apt-get install wrk`). Writes benchmarks/results/serve.json (`--results NAME`: NAME.json, e.g.
serve-avx2 for a run with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2); the machine's CPU capability
is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import REPOSITORY, print_table, write_results

from sentiment.contract import ServingSettings
from sentiment.data.channels import read_channel
from sentiment.serving.front import KEEPALIVE_SECONDS
from sentiment.serving.loading import model_fn, model_source

REVIEW_WORDS = 230
BATCH = 64  # SENTIMENT_MAX_BATCH's default
PAYLOAD_BYTES = 6 * 1024 * 1024 - 1024  # just under SageMaker's 6 MB
SERVE = Path(sys.executable).with_name("serve")
GUNICORN = Path(sys.executable).with_name("gunicorn")
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "seconds": %f, "socket_errors": %d, "non_2xx": %d, ' ..
    '"p50_ms": %f, "p90_ms": %f, "p99_ms": %f}\\n', summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3))
end
"""
WRK_SCRIPT = (
    """
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
local file = io.open(os.getenv("REVIEW_FILE"), "rb")
wrk.body = file:read("*a")
file:close()
"""
    + WRK_REPORT
)
WRK_PING_SCRIPT = 'wrk.path = "/ping"\n' + WRK_REPORT  # GET /ping: what any request costs nginx, gunicorn and Flask


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen | None = None, seconds: float = 120) -> float:
    """Seconds until `url` answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} was not ready within {seconds} s")


@dataclass(frozen=True)
class Served:
    url: str
    pid: int  # `serve`'s own process: nginx and gunicorn (its master and workers) run under it


@contextmanager
def serving(model: Path | None, **environment: str) -> Iterator[Served]:
    port = free_port()
    env = {
        **os.environ,
        "SENTIMENT_BIND_HOST": "127.0.0.1",
        "SAGEMAKER_BIND_TO_PORT": str(port),
        **({"SM_MODEL_DIR": str(model)} if model else {"USE_BUNDLED_MODEL": "1"}),
        **environment,
    }
    with running([str(SERVE)], port, env) as served:
        yield served


@contextmanager
def running(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`command`, a server on 127.0.0.1:`port`, once its /ping answers 200; stopped when the block ends."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/ping", process)
        yield Served(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextmanager
def wrk_script(text: str = WRK_SCRIPT) -> Iterator[str]:
    """The path of a wrk script (`text`) written to a file, for as long as the block lasts."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(text)
        script.flush()
        yield script.name


def wrk_command(url: str, script: str, clients: int, threads: int, seconds: int, timeout: int) -> list[str]:
    """wrk POSTing the review file's text (REVIEW_FILE in its environment) to /invocations."""
    return [
        "wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", f"{timeout}s", "-s", script,
        url + "/invocations",
    ]  # fmt: skip


def wrk(url: str, review_file: Path, clients: int, seconds: int, script_text: str = WRK_SCRIPT) -> dict[str, Any]:
    with wrk_script(script_text) as script:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = subprocess.run(
            wrk_command(url, script, clients, min(2, clients), seconds, timeout=10),
            env={**os.environ, "REVIEW_FILE": str(review_file)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk's own CPU: it is the only child that ended
    result = json.loads(
        next(line for line in output.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT ")
    )
    result["requests/s"] = round(result["requests"] / result["seconds"], 1)
    cpu_seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["client_cores"] = round(cpu_seconds / result["seconds"], 3)
    return result


def post(url: str, body: bytes, content_type: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = response.read()
    return time.perf_counter() - started, answer


def large_request_among_small_ones(url: str, body: bytes, review_file: Path, clients: int) -> float:
    """Seconds for one large JSON Lines request while `clients` others keep sending one review each."""
    with wrk_script() as script:
        load = subprocess.Popen(
            wrk_command(url, script, clients, threads=1, seconds=120, timeout=30),
            env={**os.environ, "REVIEW_FILE": str(review_file)},
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(1)  # the small requests under way first
            return post(url + "/invocations", body, "application/jsonlines")[0]
        finally:
            load.terminate()
            load.wait(timeout=30)


def large_requests_at_once(url: str, body: bytes, count: int) -> float:
    """Seconds until `count` copies of one large JSON Lines request, sent together, are all answered."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: post(url + "/invocations", body, "application/jsonlines"), range(count)))
        return time.perf_counter() - started


def process_tree(pid: int) -> list[int]:
    """`pid` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # it ended while we looked
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        found.append(current := pending.pop())
        pending.extend(children.get(current, []))
    return found


def cpu_seconds_by_program(pids: list[int]) -> dict[str, float]:
    """User + system CPU seconds the processes have used so far, added up by program: nginx, or python
    (`serve`, gunicorn's master and its workers, where the app and the model run)."""
    ticks = os.sysconf("SC_CLK_TCK")
    spent: dict[str, float] = {"nginx": 0.0, "python": 0.0}
    for pid in pids:
        try:
            name, fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        program = "nginx" if name.partition("(")[2].startswith("nginx") else "python"
        user, system = fields.split()[11:13]
        spent[program] += (int(user) + int(system)) / ticks
    return spent


def batches_so_far(url: str) -> tuple[float, float]:
    """(reviews, model calls) the server has scored so far, from its /metrics (all workers)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    value = {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("sentiment_batch_size_")}
    return value.get("sentiment_batch_size_sum", 0.0), value.get("sentiment_batch_size_count", 0.0)


def cpu_per_request(
    served: Served, review_file: Path, clients: int, seconds: int, script_text: str, batches: bool = True
) -> dict[str, Any]:
    """wrk's result with the server's CPU milliseconds per request answered, by program, during the load;
    with `batches`, the mean model call too (from its /metrics)."""
    pids = process_tree(served.pid)
    reviews_before, calls_before = batches_so_far(served.url) if batches else (0.0, 0.0)
    before = cpu_seconds_by_program(pids)  # read after /metrics, and again before it: the load alone is counted
    load = wrk(served.url, review_file, clients, seconds, script_text)
    after = cpu_seconds_by_program(pids)
    if batches:
        reviews_after, calls_after = batches_so_far(served.url)
        load["mean_batch"] = round((reviews_after - reviews_before) / max(calls_after - calls_before, 1), 1)
    if load["non_2xx"] or load["socket_errors"]:
        raise RuntimeError(f"the load was not all answered 200: {load}")
    for program in before:
        load[f"{program}_ms"] = round(1000 * (after[program] - before[program]) / load["requests"], 3)
    return load


@contextmanager
def bare_flask(settings: ServingSettings) -> Iterator[Served]:
    """`bare_flask.py`'s one-route app under gunicorn as `serve` configures it (gthread, its workers and
    threads, keep-alive), on a TCP port with no nginx in front."""
    port = free_port()
    command = [
        str(GUNICORN), "--worker-class", "gthread", "--workers", str(settings.workers),
        "--threads", str(settings.threads), "--keep-alive", str(KEEPALIVE_SECONDS), "--log-level", "warning",
        "--bind", f"127.0.0.1:{port}", "--chdir", str(Path(__file__).parent), "bare_flask:app",
    ]  # fmt: skip
    with running(command, port) as served:
        yield served


def cpu_rows(
    served: Served,
    settings: ServingSettings,
    review_file: Path,
    clients: int,
    seconds: int,
    budget_ms: float,
    model_ms: dict[int, float],
) -> list[dict[str, Any]]:
    """Where a request's CPU goes under `clients` clients: the least a Flask route costs under gunicorn,
    any request's floor (GET /ping through nginx, gunicorn and Flask), a scored one's, and what the
    60 % share allows."""
    with bare_flask(settings) as bare:
        wrk(bare.url, review_file, clients, 2, WRK_PING_SCRIPT)  # warm-up
        least = cpu_per_request(bare, review_file, clients, seconds, WRK_PING_SCRIPT, batches=False)["python_ms"]
    wrk(served.url, review_file, clients, 2)  # warm-up
    ping = cpu_per_request(served, review_file, clients, seconds, WRK_PING_SCRIPT)
    scored = cpu_per_request(served, review_file, clients, seconds, WRK_SCRIPT)
    floor, spent = ping["nginx_ms"] + ping["python_ms"], scored["nginx_ms"] + scored["python_ms"]
    (threads, in_threads), (batch, in_batch) = sorted(model_ms.items())
    outside = spent - in_batch - floor
    return [
        row(
            "CPU per request, bare Flask /ping",
            round(least, 3),
            "ms",
            f"{clients} clients: a Flask app of one route and no hooks under the same gunicorn, no nginx "
            "(benchmarks/bare_flask.py): the least any app of Flask under gunicorn costs here",
        ),
        row(
            "CPU per request, /ping",
            round(floor, 3),
            "ms",
            f"{clients} clients, {ping['requests/s']:,.0f} requests/s: nginx {ping['nginx_ms']:.3f} + gunicorn "
            f"and Flask {ping['python_ms']:.3f} ms, the floor of any request",
        ),
        row(
            "CPU per request, batching on",
            round(spent, 3),
            "ms",
            f"{clients} clients, {scored['requests/s']:,.0f} reviews/s: nginx {scored['nginx_ms']:.3f} + gunicorn, "
            f"Flask, the app and the model {scored['python_ms']:.3f} ms; "
            f"model calls of {scored['mean_batch']} reviews on average",
        ),
        row(
            "CPU per request at 60 % of the ceiling",
            round(budget_ms, 3),
            "ms",
            f"of it the model in {batch} takes {in_batch:.3f} (in {threads}: {in_threads:.3f}) and /ping's floor "
            f"{floor:.3f}, leaving {budget_ms - in_batch - floor:.3f} for the rest (today {outside:.3f}: body, tokens, "
            f"batching, answer, metrics, log line, and the model's extra cost in calls of {scored['mean_batch']}); "
            f"with nothing but the model in {batch} and a bare Flask route, {budget_ms - in_batch - least:.3f} "
            "would be left",
        ),
    ]


def review_near(texts: list[str], words: int) -> str:
    return min(texts, key=lambda text: (abs(len(text.split()) - words), text))


def payload(texts: list[str], limit: int) -> tuple[bytes, int]:
    lines, size = [], 0
    for text in texts:
        line = (json.dumps(text, ensure_ascii=False) + "\n").encode()
        if size + len(line) > limit:
            break
        lines.append(line)
        size += len(line)
    return b"".join(lines), len(lines)


def interleaved_loads(
    model: Path | None, review_file: Path, clients: int, seconds: int, rounds: int, servers: dict[str, dict[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """wrk's results, round by round, for each of `servers` ({case: its environment}), started together
    and loaded in turns (the idle ones cost nothing)."""
    with ExitStack() as stack:
        urls = {case: stack.enter_context(serving(model, **environment)).url for case, environment in servers.items()}
        for url in urls.values():
            wrk(url, review_file, clients, 2)  # warm-up: every worker loaded and its code paths run
        loads: dict[str, list[dict[str, Any]]] = {case: [] for case in urls}
        cases = list(urls)
        for turn in range(rounds):
            # Each round starts with the next server: none always follows the same one.
            for case in cases[turn % len(cases) :] + cases[: turn % len(cases)]:
                loads[case].append(wrk(urls[case], review_file, clients, seconds))
        return loads


def gain_row(case: str, loads: list[dict[str, Any]], baselines: list[dict[str, Any]], note: str) -> dict[str, Any]:
    """The median of the rounds' ratios of reviews/s (within a round the two loads ran seconds apart)."""
    ratios = sorted(load["requests/s"] / base["requests/s"] for load, base in zip(loads, baselines, strict=True))
    rounds = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    return row(case, round(ratios[len(ratios) // 2], 2), "x", f"rounds: {rounds}; {note}")


def model_rows(
    model: Path | None, review: str, batch: int, request_threads: int, seconds: float = 6.0
) -> list[dict[str, Any]]:
    """The served model's own time per review, alone, in a batch of `request_threads` copies (the most a worker's
    request threads hand it at once) and of `batch`, with one torch thread (as each of `serve`'s workers
    has on this machine: cores / workers)."""
    import torch

    environment = {"SM_MODEL_DIR": str(model)} if model else {"USE_BUNDLED_MODEL": "1"}
    if "SENTIMENT_PRECISION" in os.environ:  # the servers started here use it: so does the model measured alone
        environment["SENTIMENT_PRECISION"] = os.environ["SENTIMENT_PRECISION"]
    settings = ServingSettings.from_environment(environment)
    predictor = model_fn(model_source(settings), settings.precision)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    try:
        alone, in_threads, together = median_ms_per_review(
            {
                1: lambda: predictor.predict_proba([review]),
                request_threads: lambda: predictor.predict_proba([review] * request_threads),
                batch: lambda: predictor.predict_proba([review] * batch),
            },
            seconds * 1.5,
        )
    finally:
        torch.set_num_threads(torch_threads)
    note = "what batching can gain at most here"
    return [
        row("model alone", round(alone, 3), "ms/review", f"{predictor.family}, {predictor.precision}, no HTTP"),
        row(
            f"model in {request_threads}",
            round(in_threads, 3),
            "ms/review",
            f"one call of {request_threads} reviews, the most a worker's request threads hand it at once",
        ),
        row(f"model in {batch}", round(together, 3), "ms/review", f"one call of {batch} reviews, no HTTP"),
        row("batching ceiling", round(alone / together, 2), "x", note),
    ]


def median_ms_per_review(calls: dict[int, Any], seconds: float, block: float = 0.5) -> list[float]:
    """For each {reviews: call}, the median time of one call per review, in ms. The calls take turns
    in blocks of about `block` seconds for about `seconds` in all, so a slow stretch of the machine
    slows them alike. Each block's first call is not counted: right after calls of the other size
    one review takes about 1 ms longer (caches and oneDNN's kernels warm for the other size), which
    a server that keeps to one size does not pay."""
    times: dict[int, list[float]] = {reviews: [] for reviews in calls}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for reviews, call in calls.items():
            call()
            block_ends = time.perf_counter() + block
            while time.perf_counter() < block_ends:
                started = time.perf_counter()
                call()
                times[reviews].append(time.perf_counter() - started)
    return [sorted(spent)[len(spent) // 2] / reviews * 1000 for reviews, spent in times.items()]


def image_rows(image: str) -> list[dict[str, Any]]:
    inspect = ["docker", "image", "inspect", "-f", "{{.Size}}", image]
    size = int(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)
    port = free_port()
    started = time.perf_counter()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8080", "-e", "USE_BUNDLED_MODEL=1", image, "serve"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping")
        cold_start = time.perf_counter() - started
    finally:
        subprocess.run(["docker", "stop", "-t", "30", container], capture_output=True, check=False)
    return [
        row("image", round(size / 1e6, 1), "MB", image),
        row("cold start", round(cold_start, 2), "s", "docker run to 200 on /ping"),
    ]


def row(case: str, value: float, unit: str, note: str, **extra: Any) -> dict[str, Any]:
    return {"case": case, "value": value, "unit": unit, "note": note, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model folder (default: the bundled model)")
    parser.add_argument("--channels", type=Path, default=REPOSITORY / "data" / "channels")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=5, help="of each round under load")
    parser.add_argument("--rounds", type=int, default=5, help="turns of each server under load")
    parser.add_argument("--image", help="also measure this Docker image's size and cold start")
    parser.add_argument(
        "--compare-threads", type=int, default=16, help="request threads per worker of the compared server"
    )
    parser.add_argument("--results", default="serve", help="results/NAME.json (default: %(default)s)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    if not (args.channels / "test").is_dir():
        parser.error(f"no test channel in {args.channels}: run `make data` first")
    texts = read_channel(args.channels / "test", "test").text

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        review_file = Path(work) / "review.txt"
        review = review_near(texts, REVIEW_WORDS)
        review_file.write_text(review)
        defaults = ServingSettings.from_environment({})  # what `serve` starts with here
        threads = defaults.threads
        compared = f"batching on, {args.compare_threads} threads"
        servers = {"batching off": {"SENTIMENT_MAX_BATCH": "1"}, "batching on": {"SENTIMENT_MAX_BATCH": str(BATCH)}}
        if args.compare_threads != threads:
            servers[compared] = {"SENTIMENT_MAX_BATCH": str(BATCH), "MODEL_SERVER_THREADS": str(args.compare_threads)}
        rounds = interleaved_loads(args.model, review_file, args.clients, args.seconds, args.rounds, servers)
        for case, loads in rounds.items():
            median = sorted(loads, key=lambda load: load["requests/s"])[len(loads) // 2]
            note = f"{args.clients} clients, p99 {median['p99_ms']:.0f} ms, median of {len(loads)} rounds"
            rows.append(row(case, median["requests/s"], "reviews/s", note, **median))
        note = "bounded by the batching ceiling below"
        rows.append(gain_row("batching gain", rounds["batching on"], rounds["batching off"], note))
        if compared in rounds:
            note = f"batching on ({threads} threads per worker) vs {compared}"
            rows.append(gain_row("fewer threads' gain", rounds["batching on"], rounds[compared], note))
        model = model_rows(args.model, review, BATCH, threads)
        rows.extend(model)
        # What the server makes of the model's own batched speed on the same cores: every worker scoring
        # batches of 64 back to back would answer workers x 1000 / (ms per review in 64) reviews a second.
        workers = defaults.workers
        ceiling = workers * 1000 / next(item["value"] for item in model if item["case"] == f"model in {BATCH}")
        served = next(item["value"] for item in rows if item["case"] == "batching on")
        note = f"batching on vs {workers} workers x the model in {BATCH} ({ceiling:,.0f} reviews/s)"
        rows.append(row("share of the model's ceiling", round(served / ceiling, 3), "", note))
        # The load generator runs on the same cores here (on SageMaker the clients are elsewhere): the same
        # share against the ceiling of the cores wrk left to the server.
        cores = os.cpu_count() or 1
        client = next(item["client_cores"] for item in rows if item["case"] == "batching on")
        left = ceiling * max(cores - client, 0.01) / cores
        note = f"wrk took {client:.2f} of {cores} cores: batching on vs the ceiling of the rest ({left:,.0f} reviews/s)"
        rows.append(row("share of the ceiling left by wrk", round(served / left, 3), "", note))
        with serving(args.model) as served:
            # The cores' CPU time per request at 60 % of the ceiling: what every part of a request must fit in.
            per_review = {
                size: next(item["value"] for item in model if item["case"] == f"model in {size}")
                for size in (threads, BATCH)
            }
            budget = cores * 1000 / (0.6 * ceiling)
            rows.extend(cpu_rows(served, defaults, review_file, args.clients, args.seconds, budget, per_review))
            url = served.url
            wrk(url, review_file, 1, 2)
            low = wrk(url, review_file, 1, 10)
            rows.append(row("low load p50", round(low["p50_ms"], 2), "ms", "1 client"))
            note = f"1 client, {len(review.split())}-word review; target <= 10 ms on AVX2, <= 25 ms on any CPU"
            rows.append(row("low load p99", round(low["p99_ms"], 2), "ms", note))
            body, count = payload(texts, PAYLOAD_BYTES)
            post(url + "/invocations", payload(texts, PAYLOAD_BYTES // 20)[0], "application/jsonlines")  # warm-up
            seconds = min(post(url + "/invocations", body, "application/jsonlines")[0] for _ in range(3))
            note = f"{count:,} reviews, {len(body) / 2**20:.1f} MB in {seconds:.2f} s; target >= 1,000"
            rows.append(row("6 MB batch", round(count / seconds, 1), "reviews/s", note))
            seconds = large_requests_at_once(url, body, 2)
            note = f"2 x {count:,} reviews in {seconds:.2f} s, as Batch Transform sends them (2 at a time)"
            rows.append(row("2 x 6 MB at once", round(2 * count / seconds, 1), "reviews/s", note))
            seconds = large_request_among_small_ones(url, body, review_file, clients=4)
            note = f"{count:,} reviews in {seconds:.2f} s while 4 clients send one review at a time"
            rows.append(row("6 MB batch, 4 clients", round(count / seconds, 1), "reviews/s", note))
    if args.image:
        rows.extend(image_rows(args.image))
    print_table(rows, ["case", "value", "unit", "note"])
    path = write_results(args.results, {"review_words": len(review.split()), "clients": args.clients, "rows": rows})
    print(f"results: {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
