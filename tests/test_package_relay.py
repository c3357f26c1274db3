"""deploy/package_relay.py against moto's standalone server: a reproducible zip, uploaded once per version."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest

from tests.conftest import AWS_TEST_ENVIRONMENT, REPOSITORY

SCRIPT = REPOSITORY / "deploy" / "package_relay.py"
HANDLER = REPOSITORY / "lambda" / "handler.py"
REGION = AWS_TEST_ENVIRONMENT["AWS_DEFAULT_REGION"]


def run_script(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def bucket(moto_server: str, aws_environment: dict[str, str]) -> str:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def uploaded(moto_server: str, bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_uploads_the_handler_once_under_a_key_naming_its_digest(
    moto_server: str, bucket: str, aws_environment: dict[str, str], tmp_path: Path
) -> None:
    common = ["--bucket", bucket, "--endpoint-url", moto_server, "--region", REGION]
    first = run_script(*common, env=aws_environment)
    assert first.returncode == 0, first.stderr
    [(key, package)] = uploaded(moto_server, bucket).items()
    assert key.startswith("imdb-sentiment/relay/relay-") and key.endswith(".zip")
    assert f"upload:   sent s3://{bucket}/{key}" in first.stdout
    assert f"parameters: CodeBucket={bucket} CodeKey={key}" in first.stdout
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.namelist() == ["handler.py"]  # at the root: the template's Handler is handler.handler
        assert archive.read("handler.py") == HANDLER.read_bytes()
        assert archive.getinfo("handler.py").external_attr >> 16 == 0o644

    second = run_script(*common, env=aws_environment)
    assert second.returncode == 0, second.stderr
    assert f"upload:   unchanged s3://{bucket}/{key}" in second.stdout
    assert uploaded(moto_server, bucket) == {key: package}  # the same bytes: the zip is reproducible

    changed = tmp_path / "handler.py"
    changed.write_bytes(HANDLER.read_bytes() + b"\n# a change\n")
    third = run_script(*common, "--handler", changed, env=aws_environment)
    assert third.returncode == 0, third.stderr
    assert len(uploaded(moto_server, bucket)) == 2  # new code, new key: CloudFormation sees the update


def test_a_missing_bucket_is_a_clear_error(moto_server: str, aws_environment: dict[str, str]) -> None:
    result = run_script("--bucket", "no-such-relay-bucket", "--endpoint-url", moto_server, env=aws_environment)
    assert result.returncode == 1
    assert result.stderr == "error: --bucket: bucket no-such-relay-bucket does not exist\n"
