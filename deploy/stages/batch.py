"""The `batch` stage: a Batch Transform job over JSON Lines in S3 and, with --labels, the accuracy of
its .out files against the labeled reviews."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deploy.stages.aws import (
    JSONLINES,
    Aws,
    DeployError,
    State,
    check_bucket,
    check_files_per_instance,
    describe,
    require_status,
    split_s3,
    unique_name,
    wait_for,
)
from sentiment.contract import MAX_PAYLOAD_MB


def batch(args: argparse.Namespace, aws: Aws, state: State) -> None:
    check_bucket(aws, args.input, "input")
    check_bucket(aws, args.output, "output")
    if args.instance_count > 1:
        check_files_per_instance(aws, args.input, args.instance_count, "batch")
    if describe(aws.sagemaker.describe_model, ModelName=args.model) is None:
        raise DeployError(f"--model: no SageMaker model {args.model} (the state file lists the ones deploy made)")
    name = args.job_name or unique_name(args.name)
    existing = describe(aws.sagemaker.describe_transform_job, TransformJobName=name)
    if existing is not None:
        print(f"batch:    job {name} exists ({existing['TransformJobStatus']}): not starting another")
    else:
        aws.sagemaker.create_transform_job(
            TransformJobName=name,
            ModelName=args.model,
            BatchStrategy="MultiRecord",
            MaxPayloadInMB=MAX_PAYLOAD_MB,
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": args.input}},
                "ContentType": JSONLINES,
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": args.output, "Accept": JSONLINES, "AssembleWith": "Line"},
            TransformResources={"InstanceType": args.instance_type, "InstanceCount": args.instance_count},
        )
        state.add("transform_jobs", name)
        print(f"batch:    started {name}: {args.input} -> {args.output} ({args.instance_count} x {args.instance_type})")
    if not args.wait:
        return
    answer = wait_for(
        f"transform job {name}",
        lambda: aws.sagemaker.describe_transform_job(TransformJobName=name),
        "TransformJobStatus",
        args.poll_seconds,
    )
    require_status(f"transform job {name}", answer, "TransformJobStatus", "Completed")
    if args.labels is not None:
        report_accuracy(aws, args.output, args.labels)


def report_accuracy(aws: Aws, output: str, labels_path: Path) -> None:
    """Accuracy of the .out files under `output` (sorted by key, lines in order) against `labels_path`."""
    bucket, prefix = split_s3(output, option="output")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""  # s3://b/scores must not match scores-old/
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".out"))
    if not keys:
        raise DeployError(f"no .out files under {output}")
    predicted: list[int] = []
    for key in keys:
        body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        for number, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    predicted.append(predicted_value(json.loads(line)["label"]))
                except (ValueError, KeyError, TypeError) as error:
                    raise DeployError(f"s3://{bucket}/{key}:{number}: not a prediction ({error})") from None
    labels = read_labels(labels_path)
    if len(labels) != len(predicted):
        raise DeployError(
            f"{len(predicted):,} predictions in {len(keys)} .out files but {len(labels):,} labels in {labels_path}"
        )
    correct = sum(p == y for p, y in zip(predicted, labels, strict=True))
    print(f"accuracy: {correct / len(labels):.2%} ({correct:,} of {len(labels):,}; {len(keys)} .out files)")


def read_labels(path: Path) -> list[int]:
    """The 0/1 labels of a JSON Lines file whose records have a 'label'."""
    labels: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    labels.append(label_value(json.loads(line)["label"]))
                except (ValueError, KeyError, TypeError) as error:
                    raise DeployError(f"{path}:{number}: no usable 'label' ({error})") from None
    return labels


def label_value(label: Any) -> int:
    """1/0 of a --labels record's label."""
    mapping = {1: 1, 0: 0, "1": 1, "0": 0, "positive": 1, "negative": 0}
    if label not in mapping:
        raise ValueError(f"label {label!r} is none of 1, 0, 'positive', 'negative'")
    return mapping[label]


def predicted_value(label: Any) -> int:
    """1/0 of a prediction's label; -1, which matches no label, for "unknown" (no word the model knows)."""
    return -1 if label == "unknown" else label_value(label)
