"""build_and_push.sh and docker/ecr.py against moto's standalone server (ECR and STS).

What this covers: argument checks, the registry URI from STS and the region, the ECR repository created once
and found on a second run, ECR's login password, and every step a dry run prints. What it cannot: `docker login`
and `docker push` themselves (moto has no registry to push to); those run only against a real account.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPOSITORY

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
    assert f"build_and_push: would run: {REPOSITORY}/docker/build_image.sh --cuda --tag {name}:v1" in lines
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
    assert f"would run: {REPOSITORY}/docker/build_image.sh --cpu --tag {name}:latest" in result.stdout
    offline = run(name, "v2", "--dry-run", "--offline", env=aws)
    assert offline.returncode == 0, offline.stderr
    assert f"would run: {REPOSITORY}/docker/build_image.sh --cuda --offline --tag {name}:v2" in offline.stdout


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
    ],
)
def test_bad_arguments_are_refused_before_any_aws_call(
    args: list[str], status: int, message: str, aws: dict[str, str]
) -> None:
    result = run(*args, env={**aws, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})  # nothing listens there
    assert result.returncode == status
    assert message in result.stdout + result.stderr
    assert "looking up the registry" not in result.stdout


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
