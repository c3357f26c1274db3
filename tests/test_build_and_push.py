"""build_and_push.sh and docker/ecr.py against moto's standalone server (ECR and STS).

What this covers: argument checks, the registry URI from STS and the region, the ECR repository created once
and found on a second run, ECR's login password, and every step a dry run prints. What it cannot: `docker login`
and `docker push` themselves (moto has no registry to push to); those run only against a real account.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPOSITORY, engine_problem

SCRIPT = REPOSITORY / "build_and_push.sh"
ECR = REPOSITORY / "docker" / "ecr.py"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"  # moto's account in the test region


@pytest.fixture
def aws(moto_server: str, aws_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the script's runs; this process's boto3 reaches the same moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return {**aws_environment, "AWS_ENDPOINT_URL": moto_server, "PYTHON": sys.executable}


def run(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def repositories(name: str) -> list[dict]:
    ecr = boto3.client("ecr")
    return [repo for repo in ecr.describe_repositories()["repositories"] if repo["repositoryName"] == name]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_dry_run_prints_every_step_and_changes_nothing(aws: dict[str, str]) -> None:
    name = unique("sentiment")
    result = run(name, "v1", "--dry-run", env=aws)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"build_and_push: registry {REGISTRY}; {name}:v1 -> {REGISTRY}/{name}:v1" in lines
    assert (
        f"build_and_push: would run: {REPOSITORY}/docker/build_image.sh --cuda --platform linux/amd64 --tag {name}:v1"
        in lines
    )
    assert f"build_and_push: repository {name} does not exist; would create it" in lines
    login = f"{ECR} login-password | docker login --username AWS --password-stdin {REGISTRY}"
    assert f"build_and_push: would run: {sys.executable} {login}" in lines
    assert f"build_and_push: would run: docker tag {name}:v1 {REGISTRY}/{name}:v1" in lines
    assert f"build_and_push: would run: docker push {REGISTRY}/{name}:v1" in lines
    assert lines[-1] == "build_and_push: dry run: nothing was built, created or pushed"
    assert repositories(name) == []


def test_the_repository_is_created_once_and_found_the_second_time(aws: dict[str, str]) -> None:
    name = unique("team/sentiment")
    first = run(name, "--skip-build", "--no-push", "--cpu", env=aws)
    assert first.returncode == 0, first.stderr
    assert f"build_and_push: repository {name} created: {REGISTRY}/{name}" in first.stdout
    assert "build_and_push: stopping before login, tag and push (--no-push)" in first.stdout
    second = run(name, "--skip-build", "--no-push", env=aws)
    assert second.returncode == 0, second.stderr
    assert f"build_and_push: repository {name} exists: {REGISTRY}/{name}" in second.stdout
    assert len(repositories(name)) == 1
    assert "running:" not in first.stdout + second.stdout  # neither built, tagged nor pushed


def test_the_dry_run_of_an_existing_repository_says_so(aws: dict[str, str]) -> None:
    name = unique("sentiment")
    assert run(name, "--skip-build", "--no-push", env=aws).returncode == 0
    result = run(name, "--dry-run", "--cpu", env=aws)
    assert result.returncode == 0, result.stderr
    assert f"build_and_push: repository {name} exists: {REGISTRY}/{name}" in result.stdout
    assert (
        f"would run: {REPOSITORY}/docker/build_image.sh --cpu --platform linux/amd64 --tag {name}:latest"
        in result.stdout
    )
    offline = run(name, "v2", "--dry-run", "--offline", env=aws)
    assert offline.returncode == 0, offline.stderr
    build = f"{REPOSITORY}/docker/build_image.sh --cuda --offline --platform linux/amd64 --tag {name}:v2"
    assert f"would run: {build}" in offline.stdout


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ([], 2, "usage:"),
        (["a", "b", "c"], 2, "usage:"),
        (["Sentiment"], 1, "'Sentiment' is not a valid ECR repository name"),
        (["sentiment", "-bad"], 1, "unknown option -bad"),
        (["sentiment", "--cpu", "--offline"], 1, "--cpu and --offline exclude each other"),
        (["sentiment", "v1:2"], 1, "'v1:2' is not a valid image tag"),
        (["sentiment", "--colour"], 1, "unknown option --colour"),
        (["sentiment", "--platform", "linux/386"], 1, "--platform must be linux/amd64 or linux/arm64"),
        (["sentiment", "--instance-type", "m5.xlarge"], 1, "'m5.xlarge' is not a SageMaker instance type"),
        (
            ["sentiment", "--instance-type", "ml.c7g.large", "--platform", "linux/amd64"],
            1,
            "--platform linux/amd64 cannot run on ml.c7g.large, which runs linux/arm64 images",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_aws_call(
    args: list[str], status: int, message: str, aws: dict[str, str]
) -> None:
    result = run(*args, env={**aws, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})  # nothing listens there
    assert result.returncode == status
    assert message in result.stdout + result.stderr
    assert "looking up the registry" not in result.stdout


@pytest.mark.parametrize(
    ("args", "platform"),
    [
        ([], "linux/amd64"),
        (["--instance-type", "ml.m5.xlarge"], "linux/amd64"),
        (["--instance-type", "ml.g5.xlarge"], "linux/amd64"),  # NVIDIA A10G on AMD EPYC: x86_64
        (["--instance-type", "ml.c7g.large"], "linux/arm64"),  # Graviton3
        (["--instance-type", "ml.r7gd.xlarge"], "linux/arm64"),
        (["--platform", "linux/arm64"], "linux/arm64"),
    ],
)
def test_the_platform_follows_the_instance_type(aws: dict[str, str], args: list[str], platform: str) -> None:
    name = unique("sentiment")
    result = run(name, "--dry-run", *args, env=aws)
    assert result.returncode == 0, result.stderr
    assert f"build_image.sh --cuda --platform {platform} --tag {name}:latest" in result.stdout
    assert f"would check that {name}:latest is {platform}" in result.stdout


@pytest.fixture
def arm64_image(tmp_path: Path) -> Iterator[str]:
    """A tiny linux/arm64 image in the local engine, as a build on an Apple-silicon laptop makes (no emulation:
    FROM scratch and one COPY)."""
    problem = engine_problem()
    if problem is not None:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    name = unique("sentiment-arm")
    (tmp_path / "hello").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    subprocess.run(
        ["docker", "build", "-q", "--platform", "linux/arm64", "-t", f"{name}:v1", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield name
    subprocess.run(["docker", "rmi", "--force", f"{name}:v1"], capture_output=True, timeout=60)


def test_an_image_the_instance_cannot_run_is_never_pushed(aws: dict[str, str], arm64_image: str) -> None:
    result = run(arm64_image, "v1", "--skip-build", env=aws)
    assert result.returncode == 1
    assert (
        f"{arm64_image}:v1 is linux/arm64, but SageMaker's x86_64 instances run linux/amd64 images: "
        "SageMaker would fail with 'exec format error'"
    ) in result.stderr
    assert "docker login" not in result.stdout and "docker push" not in result.stdout
    graviton = run(arm64_image, "v1", "--skip-build", "--instance-type", "ml.c7g.large", "--dry-run", env=aws)
    assert graviton.returncode == 0, graviton.stderr
    assert f"build_and_push: {arm64_image}:v1 is linux/arm64: runs on ml.c7g.large" in graviton.stdout


def test_without_a_region_it_says_which_variables_to_set(aws: dict[str, str]) -> None:
    env = {name: value for name, value in aws.items() if name not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    result = run("sentiment", "--dry-run", env=env)
    assert result.returncode == 1
    assert "ecr.py registry: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION" in result.stderr
    assert "build_and_push: error: cannot tell the registry" in result.stderr


def test_aws_region_wins_over_aws_default_region(aws: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ECR), "registry"],
        capture_output=True,
        text=True,
        env={**aws, "AWS_REGION": "us-east-2"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "123456789012.dkr.ecr.us-east-2.amazonaws.com\n"


def test_the_login_password_comes_from_ecrs_token(aws: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ECR), "login-password"], capture_output=True, text=True, env=aws, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and ":" not in result.stdout
