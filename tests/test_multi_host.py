"""A training job on two hosts, as SageMaker runs one with InstanceCount=2: `algo-1` and `algo-2`, each
with its own /opt/ml and resourceconfig.json, train one model together from a small generated set.

The model equals the one a single host trains on the same data with the same seed (within float
rounding: the linear model's L-BFGS sums its loss in another order), only algo-1 writes it, and both
exit 0. When algo-2 is killed mid-training the job fails with a failure file naming it, and the
model folder stays empty; restarted, the job resumes from the ranks' checkpoints. Each test runs as
two processes on this machine and, with a Docker engine, as two containers of the CPU image on a
network of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from sentiment.artifacts import load_model
from sentiment.data.channels import write_channel
from tests.conftest import free_port
from tests.test_docker import docker, image  # noqa: F401 (image: the fixture that builds the CPU image)
from tests.test_training import made_up

HOSTS = ("algo-1", "algo-2")
# Nothing random while training (no dropout), so the two hosts can reproduce a single host's model.
HYPERPARAMETERS = {
    "model": "ensemble", "epochs": "2", "embedding_dim": "16", "hidden_dim": "16", "batch_size": "16",
    "vocab_size": "300", "min_count": "1", "learning_rate": "0.01", "ngram_min_count": "1", "l2": "0.01",
    "dropout": "0", "embedding_dropout": "0", "word_dropout": "0", "device": "cpu",
}  # fmt: skip
SHARDS = 2  # the train channel as two files: ShardedByS3Key gives each host one
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # every run alike: a thread count can change float sums


def job_tree(root: Path, host: str | None, hyperparameters: dict[str, str] = HYPERPARAMETERS) -> Path:
    """An /opt/ml tree for `host` of the two (None: a single-host job); train sharded, the rest replicated."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    for folder in ("model", "output", "checkpoints"):
        (root / folder).mkdir()
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    hosts = list(HOSTS) if host else ["algo-1"]
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": host or "algo-1", "hosts": hosts, "network_interface_name": "eth0"})
    )
    distribution = {"train": "ShardedByS3Key", "validation": "FullyReplicated", "test": "FullyReplicated"}
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {name: {"TrainingInputMode": "File", "S3DistributionType": kind} for name, kind in distribution.items()}
        )
    )
    data = root / "input" / "data"
    for shard in range(SHARDS):
        if host is None or HOSTS.index(host) == shard:  # what SageMaker copies to each host
            write_channel(made_up(120, 10 + shard), data / "train", f"train-{shard}")
    write_channel(made_up(60, 20), data / "validation", "validation")
    write_channel(made_up(80, 30), data / "test", "test")
    return root


def assert_same_model(single: Path, together: Path) -> None:
    texts = made_up(40, 40).text
    expected, got = load_model(single / "model"), load_model(together / "model")
    assert got.vocabulary == expected.vocabulary
    got_logits, expected_logits = got.logits(texts), expected.logits(texts)
    # Within float rounding: gloo's all-reduce sums the gradient in another order than one host does, and
    # four epochs amplify that to about 1e-4 of a logit of 20 on an AVX2 CPU (1.7e-3 absolute, measured).
    assert np.allclose(got_logits, expected_logits, rtol=1e-3, atol=1e-3)
    assert ((got_logits >= 0) == (expected_logits >= 0)).all()
    card = json.loads((together / "model" / "card.json").read_text())
    assert card["data"]["train"]["reviews"] == 120 * SHARDS and card["data"]["train"]["parts"] == 2


Launch = Callable[[dict[str, Path], dict[str, str]], dict[str, subprocess.Popen[str]]]


def local_processes(trees: dict[str, Path], environment: dict[str, str]) -> dict[str, subprocess.Popen[str]]:
    """Each host a `sentiment-train` process of its own, meeting at a free port on this machine."""
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "GLOO_SOCKET_IFNAME": "lo"}
    return {
        host: subprocess.Popen(
            [str(Path(sys.executable).parent / "sentiment-train")],
            env={**clean_environment(), **ONE_THREAD, **rendezvous, **environment, "SAGEMAKER_BASE_DIR": str(tree)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for host, tree in trees.items()
    }


def clean_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "SAGEMAKER_"))}


@pytest.fixture
def containers(image: str) -> Iterator[Launch]:  # noqa: F811 (the fixture imported above)
    """Each host a container of the image named as SageMaker names it, on a Docker network of their own."""
    network = f"sentiment-hosts-{uuid.uuid4().hex[:8]}"
    docker("network", "create", network)
    names: list[str] = []

    def launch(trees: dict[str, Path], environment: dict[str, str]) -> dict[str, subprocess.Popen[str]]:
        processes = {}
        for host, tree in trees.items():
            names.append(f"{network}-{host}")
            settings = [
                item for key, value in {**ONE_THREAD, **environment}.items() for item in ("-e", f"{key}={value}")
            ]
            processes[host] = subprocess.Popen(
                ["docker", "run", "--rm", "--name", names[-1], "--network", network, "--network-alias", host,
                 "--hostname", host, *settings, "-v", f"{tree}:/opt/ml", image, "train"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        return processes

    yield launch
    for name in names:
        docker("rm", "--force", name, check=False)
    docker("network", "rm", network, check=False)


@pytest.fixture(params=["processes", "containers"])
def launch(request: pytest.FixtureRequest) -> Launch:
    return local_processes if request.param == "processes" else request.getfixturevalue("containers")


def finish(processes: dict[str, subprocess.Popen[str]]) -> dict[str, tuple[int, str]]:
    return {host: (process.wait(timeout=600), process.communicate()[0]) for host, process in processes.items()}


def test_two_hosts_train_the_model_one_host_trains_and_only_algo_1_writes_it(launch: Launch, tmp_path: Path) -> None:
    single = job_tree(tmp_path / "single", None)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sentiment-train")],
        env={**clean_environment(), **ONE_THREAD, "SAGEMAKER_BASE_DIR": str(single)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trees = {host: job_tree(tmp_path / host, host) for host in HOSTS}
    outcomes = finish(launch(trees, {}))
    for host, (status, output) in outcomes.items():
        assert status == 0, f"{host}:\n{output}"
        assert "channel train: 240 reviews (120 positive, 120 negative; this rank holds 120)" in output
    assert_same_model(single, trees["algo-1"])
    assert list((trees["algo-2"] / "model").iterdir()) == []
    assert not (trees["algo-2"] / "output" / "data").exists()
    assert (trees["algo-1"] / "output" / "data" / "evaluation.json").is_file()
    assert "algo-2 (rank 1 of 2): done; the master, algo-1 (rank 0 of 2), writes the model" in outcomes["algo-2"][1]
    for host, rank in (("algo-1", 0), ("algo-2", 1)):  # each rank's own checkpoints
        assert (trees[host] / "checkpoints" / f"rank-{rank}-of-2" / "lstm-0.json").is_file()


def test_a_host_killed_mid_training_fails_the_job_with_a_failure_file_naming_it(launch: Launch, tmp_path: Path) -> None:
    hyperparameters = {**HYPERPARAMETERS, "epochs": "200", "patience": "0"}  # still training when algo-2 dies
    trees = {host: job_tree(tmp_path / host, host, hyperparameters) for host in HOSTS}
    processes = launch(trees, {})
    stream = processes["algo-2"].stdout
    assert stream is not None
    for line in stream:
        if line.startswith("epoch=2 "):
            break
    processes["algo-2"].kill()  # the docker client: --rm and a killed client leave the container running
    if processes["algo-1"].args[0] == "docker":
        docker("kill", next(name for name in processes["algo-2"].args if name.endswith("-algo-2")), check=False)
    status, output = finish({"algo-1": processes["algo-1"]})["algo-1"]
    assert status == 1, output
    failure = (trees["algo-1"] / "output" / "failure").read_text()
    assert failure.startswith("algo-2 (rank 1 of 2) stopped during training"), failure
    assert list((trees["algo-1"] / "model").iterdir()) == []
    assert not (trees["algo-1"] / "output" / "data").exists()

    # Restarted (as SageMaker restarts a job, checkpoints restored), both hosts resume from the same epoch.
    for tree in trees.values():
        (tree / "output" / "failure").unlink(missing_ok=True)
    outcomes = finish(launch(trees, {}))
    for host, (status, output) in outcomes.items():
        assert status == 0, f"{host}:\n{output}"
        assert "resumed: the LSTM continues after epoch " in output
    assert (trees["algo-1"] / "model" / "model.json").is_file()
