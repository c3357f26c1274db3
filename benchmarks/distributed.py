#!/usr/bin/env python3
"""Training on one rank with 2 cores against two ranks with 1 core each, on this 2-core machine, and
what the measured communication implies for N hosts.

    python benchmarks/distributed.py [--channels data/channels] [--epochs 1]

Both runs are the training job itself (`sentiment-train`, as `train` runs it in the image) on the IMDb
channels train (22,500), validation (2,500) and test (25,000), in a reduced configuration that fits
this machine's budget (stated with the table): the ensemble with a one-epoch LSTM of 64 units reading
128 tokens, 20,000 words, word vectors from train alone (no unlabeled channel), no pseudo-labels. The
two ranks are two processes meeting over loopback as `algo-1` and `algo-2` would over the network
(FullyReplicated channels: each rank trains on half the records).

Communication per epoch is measured apart, between the same two processes' kind (gloo, one thread
each): the LSTM's gradient (all its parameters, float32) all-reduced once per step, for an epoch's
steps; and a one-float all-reduce for the per-message latency. With a ring all-reduce a step costs
2(N-1)/N x bytes / bandwidth + 2(N-1) x latency, so an epoch on N hosts is projected as the measured
compute of one rank's epoch x 2 / N plus that. Writes benchmarks/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPOSITORY, print_table, write_results

# Sized so that both runs fit in about 10 minutes of a shared 2-core machine.
REDUCED = {
    "model": "ensemble", "max_length": "128", "scoring_length": "128", "embedding_dim": "64", "hidden_dim": "64",
    "vocab_size": "20000", "pseudo_labels": "false", "device": "cpu",
}  # fmt: skip
CHANNELS = ("train", "validation", "test")
TRAIN = Path(sys.executable).parent / "sentiment-train"
PROJECTED_HOSTS = (1, 2, 4, 8, 16)
LOAD: list[float] = []  # the machine's 1-minute load average as each run starts: others share these cores


def job_tree(root: Path, channels: Path, hyperparameters: dict[str, str], host: str | None) -> Path:
    """An /opt/ml tree whose channels link to `channels`; `host` of algo-1/algo-2, or None for one host."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    hosts = ["algo-1", "algo-2"] if host else ["algo-1"]
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": host or "algo-1", "hosts": hosts}))
    (root / "input" / "data").mkdir()
    for channel in CHANNELS:
        (root / "input" / "data" / channel).symlink_to((channels / channel).resolve())
    return root


def train(trees: list[Path], threads: int, port: int) -> float:
    """Run one `sentiment-train` per tree at once (each `threads` cores); their wall time in seconds."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "SAGEMAKER_"))}
    environment |= {"OMP_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    environment |= {"GLOO_SOCKET_IFNAME": "lo", "SENTIMENT_CACHE_DIR": str(trees[0].parent / "cache")}
    started = time.perf_counter()
    LOAD.append(os.getloadavg()[0])
    processes = [
        subprocess.Popen(
            [str(TRAIN)],
            env={**environment, "SAGEMAKER_BASE_DIR": str(tree)},
            stdout=(tree / "train.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for tree in trees
    ]
    for process, tree in zip(processes, trees, strict=True):
        if process.wait() != 0:
            raise SystemExit(f"training in {tree} failed:\n{(tree / 'train.log').read_text()[-3000:]}")
    return time.perf_counter() - started


def outcome(tree: Path, wall: float) -> dict[str, Any]:
    card = json.loads((tree / "model" / "card.json").read_text())
    metrics = json.loads((tree / "model" / "metrics.json").read_text())
    epochs = [entry["seconds"] for entry in metrics["history"]]
    return {
        "wall_seconds": wall,
        "training_seconds": card["training_seconds"],
        "stage_seconds": card["stage_seconds"],
        "lstm_epoch_seconds": sum(epochs) / len(epochs),
        "validation_accuracy": card["validation_accuracy"]["ensemble"],
        "test_accuracy": card["test"]["accuracy"],
        "train_reviews": card["data"]["train"]["reviews"],
    }


def _all_reduce_seconds(rank: int, port: int, floats: int, steps: int, queue: Any) -> None:
    """Time `steps` all-reduces of `floats` float32 (and of one float) between two gloo ranks."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    timings = {}
    for name, size in (("gradient", floats), ("one_float", 1)):
        tensor = torch.ones(size)
        dist.all_reduce(tensor)  # connections warm
        dist.barrier()
        started = time.perf_counter()
        for _ in range(steps):
            dist.all_reduce(tensor)
        timings[name] = time.perf_counter() - started
    dist.destroy_process_group()
    if rank == 0:
        queue.put(timings)


def communication(floats: int, steps: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    processes = [
        context.Process(target=_all_reduce_seconds, args=(rank, port, floats, steps, queue)) for rank in range(2)
    ]
    for process in processes:
        process.start()
    timings = queue.get(timeout=600)
    for process in processes:
        process.join()
    return timings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lstm_parameters(tree: Path) -> int:
    from sentiment.artifacts import load_model

    network = load_model(tree / "model").members["lstm"].network
    return sum(parameter.numel() for parameter in network.parameters())


def project(compute_epoch_one_rank: float, steps: int, gradient_bytes: int, bandwidth: float, latency: float) -> list:
    """Epoch seconds on N hosts (one rank each): compute split N ways, plus a ring all-reduce per step."""
    rows = []
    for hosts in PROJECTED_HOSTS:
        per_step = (
            0.0 if hosts == 1 else 2 * (hosts - 1) / hosts * gradient_bytes / bandwidth + 2 * (hosts - 1) * latency
        )
        epoch = compute_epoch_one_rank / hosts + steps * per_step
        rows.append(
            {
                "hosts": hosts,
                "epoch_seconds": epoch,
                "communication_share": steps * per_step / epoch,
                "speedup": compute_epoch_one_rank / epoch,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=Path, default=REPOSITORY / "data" / "channels")
    parser.add_argument("--epochs", type=int, default=1, help="LSTM epochs (default: %(default)s)")
    args = parser.parse_args()
    missing = [name for name in CHANNELS if not (args.channels / name).is_dir()]
    if missing:
        print(
            f"error: {args.channels} lacks the channel(s) {', '.join(missing)} (make data writes them)", file=sys.stderr
        )
        return 1
    hyperparameters = {**REDUCED, "epochs": str(args.epochs)}
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as work:
        root = Path(work)
        one = job_tree(root / "one", args.channels, hyperparameters, None)
        print("== 1 rank x 2 cores", flush=True)
        single = outcome(one, train([one], threads=2, port=free_port()))
        hosts = [job_tree(root / host, args.channels, hyperparameters, host) for host in ("algo-1", "algo-2")]
        print("== 2 ranks x 1 core (algo-1, algo-2 over loopback)", flush=True)
        double = outcome(hosts[0], train(hosts, threads=1, port=free_port()))
        floats = lstm_parameters(hosts[0])
    train_reviews = double["train_reviews"]
    steps = math.ceil(train_reviews / 64)
    print(f"== all-reduce of the LSTM's {floats:,} parameters, {steps} times (one epoch's steps)", flush=True)
    timings = communication(floats, steps)
    latency = timings["one_float"] / steps / 2  # a two-rank ring all-reduce is two messages
    bandwidth = floats * 4 / max(1e-9, timings["gradient"] / steps - 2 * latency)
    compute_one_rank = max(0.0, double["lstm_epoch_seconds"] - timings["gradient"]) * 2
    projection = project(compute_one_rank, steps, floats * 4, bandwidth, latency)

    configuration = ", ".join(f"{key}={value}" for key, value in hyperparameters.items())
    rows = [
        {"run": "1 rank x 2 cores", **single},
        {"run": "2 ranks x 1 core", **double},
    ]
    print(f"\nreduced configuration: {configuration}; {train_reviews:,} training reviews")
    print(
        f"load average (1 min) as each run started: {', '.join(f'{load:.1f}' for load in LOAD)}, "
        f"on {os.cpu_count()} cores"
    )
    print_table(
        rows,
        ["run", "wall_seconds", "training_seconds", "lstm_epoch_seconds", "validation_accuracy", "test_accuracy"],
    )
    print(
        f"\ncommunication per LSTM epoch (2 ranks, loopback): {timings['gradient']:.2f} s for {steps} all-reduces of "
        f"{floats * 4 / 1e6:.1f} MB; latency {latency * 1e6:.0f} us per message, bandwidth {bandwidth / 1e9:.2f} GB/s"
    )
    print(f"projection (one rank per host, compute of one rank's epoch {compute_one_rank:.1f} s split N ways):")
    print_table(projection, ["hosts", "epoch_seconds", "communication_share", "speedup"])
    path = write_results(
        "distributed",
        {
            "configuration": hyperparameters,
            "train_reviews": train_reviews,
            "load_average_at_start": LOAD,
            "runs": {"one_rank_two_cores": single, "two_ranks_one_core": double},
            "communication": {
                "lstm_parameters": floats,
                "steps_per_epoch": steps,
                "seconds_per_epoch": timings["gradient"],
                "latency_seconds": latency,
                "bandwidth_bytes_per_second": bandwidth,
            },
            "projection": projection,
        },
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
