#!/usr/bin/env python3
"""What hostile or careless clients cost the server, and what they get, in one run:

    python benchmarks/hostile.py [--slow-clients 200]

`serve` (the bundled model, one worker) runs pinned to one core, as on a small SageMaker instance,
behind nginx (the image's default); the slow-client rows also run against gunicorn alone
(SENTIMENT_FRONT=none), the server before nginx was put in front. For each request: the status,
the seconds to the answer, the answer's size and how much the worker's peak memory rose. Targets:
every request within the limits answered well inside SageMaker's 60 s, anything beyond them a 413
that states the limit, /ping under SageMaker's 2 s while slow clients hold connections.
Made-up reviews only. Writes benchmarks/results/hostile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from common import REPOSITORY, print_table, write_results

SERVE = Path(sys.executable).with_name("serve")
MB = 1024 * 1024
PAYLOAD = 6 * MB - 1024  # just under the 6 MB limit
WORDS = [
    "superb",
    "moving",
    "awful",
    "boring",
    "dreadful",
    "brilliant",
    "plot",
    "acting",
    "film",
    "story",
    "scene",
    "dull",
    "great",
]


@contextmanager
def running_serve(front: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    sys.path.insert(0, str(REPOSITORY))
    from tests.conftest import free_port

    port = free_port()
    env = {
        **os.environ,
        "USE_BUNDLED_MODEL": "1",
        "SENTIMENT_BIND_HOST": "127.0.0.1",
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_WORKERS": "1",
        "SENTIMENT_FRONT": front,
    }
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    process = subprocess.Popen([*pin, str(SERVE)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while request(url + "/ping")[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve ({front}) did not become ready")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=60)


def request(
    url: str, body: bytes | None = None, content_type: str = "text/plain", timeout: float = 120
) -> tuple[int, float, bytes]:
    """(status, seconds, answer); status 0 when no answer came within `timeout` seconds."""
    started = time.perf_counter()
    try:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body else {})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, time.perf_counter() - started, response.read()
    except urllib.error.HTTPError as error:
        return error.code, time.perf_counter() - started, error.read()
    except OSError:
        return 0, time.perf_counter() - started, b""


def worker_pids(serve_pid: int) -> list[int]:
    """gunicorn's workers under `serve`: children of gunicorn's arbiter (serve itself when nginx is not in front)."""
    parents: dict[int, tuple[int, bytes]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("PPid:"))
            parents[int(status.parent.name)] = (ppid, (status.parent / "cmdline").read_bytes())
        except (OSError, StopIteration, ValueError):
            continue
    arbiters = [pid for pid, (ppid, cmdline) in parents.items() if ppid == serve_pid and b"--gunicorn-on" in cmdline]
    arbiter = arbiters[0] if arbiters else serve_pid
    return sorted(pid for pid, (ppid, _) in parents.items() if ppid == arbiter)


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def reset_peak(pid: int) -> None:
    """Start the worker's peak-memory count afresh (Linux: 5 to clear_refs), so each row shows its own peak."""
    with suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def review(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def request_cases() -> list[tuple[str, bytes, str, str]]:
    """(name, body, content type, query) of each request, each body just under 6 MB."""
    rng = random.Random(7)
    two_letters = json.dumps(["ab"] * (PAYLOAD // 5 - 1), separators=(",", ":")).encode()  # ["ab","ab",...]
    distinct = json.dumps([f"w{n}" for n in range(100_000)]).encode()
    lines, size = [], 0
    while size < PAYLOAD - 2000:
        line = json.dumps({"text": review(rng, 230)})
        lines.append(line)
        size += len(line) + 1
    reviews_6mb = ("\n".join(lines) + "\n").encode()
    one_review = (review(rng, 10) * (PAYLOAD // 80))[: PAYLOAD - 10].encode()
    one_letter = ("a " * (PAYLOAD // 2))[: PAYLOAD - 10].encode()
    explained = json.dumps({"instances": [review(rng, 300) for _ in range(64)], "explain": True}).encode()
    return [
        (f"{PAYLOAD // 5 - 1:,} two-letter reviews in a JSON list", two_letters, "application/json", ""),
        ("100,000 distinct one-word reviews (the record limit)", distinct, "application/json", ""),
        (f"{len(lines):,} reviews of 230 words, JSON Lines", reviews_6mb, "application/jsonlines", ""),
        ("one 6 MB review (~1.2M words)", one_review, "text/plain", ""),
        ("6 MB of one-letter words (~3M words)", one_letter, "text/plain", ""),
        ("one 6 MB review, explained", one_review, "text/plain", "?explain=true"),
        ("64 reviews of 300 words, explained", explained, "application/json", ""),
    ]


def request_rows(url: str, worker: int) -> list[dict[str, Any]]:
    rows = []
    for name, body, content_type, query in request_cases():
        reset_peak(worker)
        before = peak_mb(worker)
        status, seconds, answer = request(f"{url}/invocations{query}", body, content_type)
        message = json.loads(answer).get("message", "") if status != 200 and answer.startswith(b"{") else ""
        rows.append(
            {
                "request": name,
                "status": status,
                "seconds": round(seconds, 2),
                "answer_kb": round(len(answer) / 1024, 1),
                "worker_peak_mb": round(peak_mb(worker), 0),
                "peak_rise_mb": round(peak_mb(worker) - before, 0),
                "message": message[:90],
            }
        )
        print(f"  {name}: {status} in {seconds:.2f} s", flush=True)
    # Eight at once: large bodies take turns per worker, so memory stays at about one request's worth.
    reset_peak(worker)
    before = peak_mb(worker)
    body = request_cases()[2][1]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: request(f"{url}/invocations", body, "application/jsonlines"), range(8)))
    rows.append(
        {
            "request": "8 of those JSON Lines requests at once",
            "status": ",".join(sorted({str(status) for status, _, _ in answers})),
            "seconds": round(time.perf_counter() - started, 2),
            "answer_kb": round(sum(len(answer) for _, _, answer in answers) / 1024, 1),
            "worker_peak_mb": round(peak_mb(worker), 0),
            "peak_rise_mb": round(peak_mb(worker) - before, 0),
            "message": f"slowest {max(seconds for _, seconds, _ in answers):.2f} s",
        }
    )
    return rows


def slow_client_rows(front: str, url: str, count: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPOSITORY))
    from tests.conftest import slow_clients

    rows = []
    with slow_clients(url, count) as held:
        time.sleep(2.5)
        pings = [request(f"{url}/ping", None, timeout=10)[:2] for _ in range(3)]  # 0: no answer in 10 s
        verdict = request(f"{url}/invocations", b"fine film", timeout=10)[:2]
        rows.append(
            {
                "front": front,
                "case": f"{count} clients sending headers at 1 byte/s",
                "ping_status": ",".join(sorted({str(status) for status, _ in pings})),
                "ping_max_s": round(max(seconds for _, seconds in pings), 2),
                "review_status": verdict[0],
                "review_s": round(verdict[1], 2),
                "still_held": len(held),
            }
        )
    host, port = url.removeprefix("http://").split(":")
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nsuperb!"
    for case, close_early in (("a body that stops arriving", False), ("a body cut short, write side closed", True)):
        started = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=90) as connection:
            connection.sendall(head)
            if close_early:
                connection.shutdown(socket.SHUT_WR)
            try:
                answer = connection.recv(65536)
            except TimeoutError:
                answer = b"(still open after 90 s)"
        status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed, unanswered"
        rows.append(
            {
                "front": front,
                "case": case,
                "review_status": status if answer else "closed, unanswered",
                "review_s": round(time.perf_counter() - started, 2),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-clients", type=int, default=200)
    args = parser.parse_args()
    print("requests within and beyond the limits (nginx in front, one worker, one core):", flush=True)
    with running_serve("nginx") as (url, process):
        worker = worker_pids(process.pid)[0]
        requests = request_rows(url, worker)
        slow = slow_client_rows("nginx", url, args.slow_clients)
    print("the same slow clients against gunicorn alone:", flush=True)
    with running_serve("none") as (url, _):
        slow += slow_client_rows("gunicorn alone", url, args.slow_clients)
    print()
    print_table(requests, ["request", "status", "seconds", "answer_kb", "worker_peak_mb", "peak_rise_mb", "message"])
    print()
    print_table(slow, ["front", "case", "ping_status", "ping_max_s", "review_status", "review_s", "still_held"])
    path = write_results("hostile", {"cores_used": 1, "workers": 1, "requests": requests, "slow_clients": slow})
    print(f"\nwrote {path.relative_to(REPOSITORY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
