"""Shared by every stage: the AWS clients of one region (Aws), the state file of what was made (State),
unique names, Describe* that tells a missing resource, S3 checks, waits on a status, and DeployError."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from sentiment.errors import SentimentError
from sentiment.files import read_json, write_json_atomic

Client = Any  # boto3 builds its client classes at run time

REPOSITORY = Path(__file__).resolve().parents[2]
JSONLINES = "application/jsonlines"
POLL_SECONDS = 30.0
RESOURCE_KINDS = (
    "training_jobs", "models", "endpoint_configs", "endpoints", "transform_jobs",
    "scalable_targets", "scaling_policies", "alarms",
)  # fmt: skip
DONE = {"Completed", "Failed", "Stopped", "InService", "OutOfService"}
VARIANT = "AllTraffic"  # the one production variant deploy makes


class DeployError(SentimentError):
    """A SageMaker step that cannot be taken: bad input, a missing resource, or AWS refusing."""


def split_s3(uri: str, parser: argparse.ArgumentParser | None = None, option: str = "") -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; a usage error (or DeployError) when it is not one."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        message = f"--{option.replace('_', '-')} must be an s3://bucket/... URI, not {uri!r}"
        if parser is not None:
            parser.error(message)
        raise DeployError(message)
    return bucket, key


class Aws:
    """The SageMaker and S3 clients of one region and endpoint, made on first use."""

    def __init__(self, session: boto3.Session, region: str | None, endpoint_url: str | None) -> None:
        self.session, self.region, self.endpoint_url = session, region, endpoint_url
        self._clients: dict[str, Client] = {}

    def client(self, service: str) -> Client:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    @property
    def sagemaker(self) -> Client:
        return self.client("sagemaker")

    @property
    def s3(self) -> Client:
        return self.client("s3")

    @property
    def autoscaling(self) -> Client:
        return self.client("application-autoscaling")

    @property
    def cloudwatch(self) -> Client:
        return self.client("cloudwatch")

    def ecr(self, region: str) -> Client:
        """ECR of the region an image URI names, which may not be the endpoint's."""
        return self.session.client("ecr", region_name=region, endpoint_url=self.endpoint_url)


class State:
    """What this script created, by kind, in a JSON file written atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document: dict[str, Any] = {"format": "sentiment-deploy-state", "version": 1}
        if path.exists():
            document = read_json(path)
            if not isinstance(document, dict) or document.get("format") != "sentiment-deploy-state":
                raise DeployError(f"{path}: not a deploy state file (no 'format': 'sentiment-deploy-state')")
            self.document = document
        for kind in RESOURCE_KINDS:
            self.document.setdefault(kind, [])

    def add(self, kind: str, name: Any) -> None:
        if name not in self.document[kind]:
            self.document[kind].append(name)
            self.save()

    def remove(self, kind: str, name: Any) -> None:
        if name in self.document[kind]:
            self.document[kind].remove(name)
            self.save()

    def names(self, kind: str) -> list[Any]:
        return list(self.document[kind])

    def save(self) -> None:
        write_json_atomic(self.path, self.document)


def unique_name(prefix: str) -> str:
    """`prefix-YYYYMMDD-HHMMSS-mmm` within SageMaker's 63 characters."""
    now = datetime.now(UTC)
    suffix = now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}"
    return f"{prefix[: 63 - len(suffix) - 1]}-{suffix}"


def is_missing(error: botocore.exceptions.ClientError) -> bool:
    """SageMaker's answer for a name that does not exist (a ValidationException 'Could not find ...'), or
    Application Auto Scaling's (ObjectNotFoundException; moto says 'No scalable target found ...')."""
    detail = error.response.get("Error", {})
    if detail.get("Code") == "ObjectNotFoundException":
        return True
    message = detail.get("Message", "")
    return detail.get("Code") in ("ValidationException", "ResourceNotFound") and any(
        words in message for words in ("Could not find", "does not exist", "No scalable target", "No scaling policy")
    )


def describe(call: Callable[..., dict[str, Any]], **names: str) -> dict[str, Any] | None:
    """A Describe* answer, or None when the resource does not exist."""
    try:
        return call(**names)
    except botocore.exceptions.ClientError as error:
        if is_missing(error):
            return None
        raise


def check_bucket(aws: Aws, uri: str, option: str) -> None:
    """Fail early, with the option's name, when the bucket of an s3:// URI is missing or not ours."""
    bucket, _ = split_s3(uri, option=option)
    try:
        aws.s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        reason = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be read ({code})"
        raise DeployError(f"--{option}: bucket {bucket} {reason}") from None


def check_object(aws: Aws, uri: str, option: str) -> None:
    bucket, key = split_s3(uri, option=option)
    check_bucket(aws, uri, option)
    try:
        aws.s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError:
        raise DeployError(f"--{option}: no object at {uri}") from None


def count_files(aws: Aws, prefix: str) -> int:
    """The objects under an s3:// prefix (a folder: "x/" holds "x/a", not "xy"), folder markers left out."""
    bucket, key = split_s3(prefix, option="input")
    key = key.rstrip("/") + "/" if key.strip("/") else ""
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    return sum(1 for page in pages for item in page.get("Contents", []) if not item["Key"].endswith("/"))


def check_files_per_instance(aws: Aws, prefix: str, instances: int, what: str) -> None:
    """SageMaker deals whole files to instances (ShardedByS3Key, Batch Transform): refuse fewer files than instances."""
    files = count_files(aws, prefix)
    if files < instances:
        raise DeployError(
            f"{what}: {prefix} holds {files} file(s) for {instances} instances, and SageMaker gives each instance "
            f"whole files: write it as at least {instances} (deploy/prepare_data.py --shards {instances})"
        )


def wait_for(
    what: str, poll: Callable[[], dict[str, Any]], status_key: str, seconds: float = POLL_SECONDS
) -> dict[str, Any]:
    """Poll a Describe* call until its status is final; prints each change."""
    last = None
    while True:
        answer = poll()
        status = answer[status_key]
        if status != last:
            secondary = answer.get("SecondaryStatus")
            print(f"wait:     {what}: {status}" + (f" ({secondary})" if secondary and secondary != status else ""))
            last = status
        if status in DONE:
            return answer
        time.sleep(seconds)


def require_status(what: str, answer: dict[str, Any], status_key: str, success: str) -> None:
    """DeployError with SageMaker's FailureReason when a finished Describe* answer is not `success`."""
    if answer[status_key] != success:
        raise DeployError(f"{what} {answer[status_key]}: {answer.get('FailureReason', 'no reason given')}")
