"""The `train` stage: a SageMaker training job on the four channels, and `sentences` where the data folder
has them (CreateTrainingJob), on one host or several, optionally spot, and its final metrics when waited for."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from deploy.stages.aws import (
    JSONLINES,
    Aws,
    State,
    check_bucket,
    check_files_per_instance,
    count_files,
    describe,
    require_status,
    split_s3,
    unique_name,
    wait_for,
)
from sentiment.contract import METRIC_DEFINITIONS

CHANNELS = ("train", "validation", "test", "unlabeled")
# Sent only where the data folder holds them: SageMaker fails a job whose channel prefix is empty.
OPTIONAL_CHANNELS = ("sentences",)  # soft-labelled short texts for the LSTM (teacher/README.md)
# --distribution: S3DataDistributionType of the channels a job fits on (train, unlabeled); validation and
# test stay whole on every host (training gathers validation, and scores test part by part either way).
DISTRIBUTIONS = {"replicated": "FullyReplicated", "sharded": "ShardedByS3Key"}
DISTRIBUTED_CHANNELS = ("train", "unlabeled", "sentences")


def train(args: argparse.Namespace, aws: Aws, state: State) -> None:
    data = args.data.rstrip("/")
    bucket, _ = split_s3(data, option="data")
    check_bucket(aws, data, "data")
    channels = [*CHANNELS, *(name for name in OPTIONAL_CHANNELS if count_files(aws, f"{data}/{name}/"))]
    distributed = [name for name in DISTRIBUTED_CHANNELS if name in channels]
    if args.distribution == "sharded":
        for channel in distributed:
            check_files_per_instance(aws, f"{data}/{channel}/", args.instance_count, "--distribution sharded")
    name = args.job_name or unique_name(args.name)
    existing = describe(aws.sagemaker.describe_training_job, TrainingJobName=name)
    if existing is not None:
        print(f"train:    job {name} exists ({existing['TrainingJobStatus']}): not starting another")
    else:
        request = training_request(args, name, data, bucket, channels)
        aws.sagemaker.create_training_job(**request)
        state.add("training_jobs", name)
        print(
            f"train:    started {name} on {args.instance_count} x {args.instance_type}"
            + (" (spot)" if args.spot else "")
        )
        print(f"train:    channels {', '.join(channels)} from {data}/")
        if args.instance_count > 1:
            print(
                f"train:    {args.instance_count} hosts train one model; {', '.join(distributed)} "
                f"{DISTRIBUTIONS[args.distribution]}"
            )
        print(f"train:    model.tar.gz to {request['OutputDataConfig']['S3OutputPath']}{name}/output/")
    if not args.wait:
        return
    answer = wait_for(
        f"training job {name}",
        lambda: aws.sagemaker.describe_training_job(TrainingJobName=name),
        "TrainingJobStatus",
        args.poll_seconds,
    )
    for metric in answer.get("FinalMetricDataList", []):
        print(f"metric:   {metric['MetricName']} = {metric['Value']:g}")
    require_status(f"training job {name}", answer, "TrainingJobStatus", "Completed")
    print(f"model:    {answer['ModelArtifacts']['S3ModelArtifacts']}")


def training_request(
    args: argparse.Namespace, name: str, data: str, bucket: str, channels: Sequence[str] = CHANNELS
) -> dict[str, Any]:
    """The CreateTrainingJob request: `channels`, string hyperparameters, our metric definitions."""
    output = args.output or f"s3://{bucket}/{args.name}/output"
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": args.image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(metric) for metric in METRIC_DEFINITIONS],
        },
        "RoleArn": args.role,
        "HyperParameters": dict(item.split("=", 1) for item in args.hyperparameters),
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{data}/{channel}/",
                        "S3DataDistributionType": DISTRIBUTIONS[args.distribution]
                        if channel in DISTRIBUTED_CHANNELS
                        else "FullyReplicated",
                    }
                },
                "ContentType": JSONLINES,
                "InputMode": "File",
            }
            for channel in channels
        ],
        "OutputDataConfig": {"S3OutputPath": output.rstrip("/") + "/"},
        "ResourceConfig": {
            "InstanceType": args.instance_type,
            "InstanceCount": args.instance_count,
            "VolumeSizeInGB": args.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": args.max_run},
        "EnableManagedSpotTraining": bool(args.spot),
    }
    if args.spot:
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = args.max_wait
    if args.checkpoint_s3:
        request["CheckpointConfig"] = {"S3Uri": args.checkpoint_s3, "LocalPath": "/opt/ml/checkpoints"}
    return request
