#!/usr/bin/env python3
"""Steps 4-7 of the tutorial: train, deploy, update, tear down and batch-score on SageMaker, via boto3.

    python deploy/sagemaker.py train    --image URI --role ARN --data s3://bucket/imdb-sentiment/data --wait
    python deploy/sagemaker.py deploy   --image URI --role ARN --model-data s3://.../model.tar.gz --wait
    python deploy/sagemaker.py update   --image URI --role ARN --model-data s3://.../model.tar.gz \\
                                        --endpoint imdb-sentiment --labeled reviews.jsonl
    python deploy/sagemaker.py batch    --model NAME --input s3://.../test/ --output s3://.../scores/ --wait
    python deploy/sagemaker.py teardown

`train --instance-count N` trains one model on N hosts (`--distribution sharded`: each host some of the
files of train and unlabeled, written by `prepare_data.py --shards K`); `batch --instance-count N` scores
on N hosts, each given whole input files. Both refuse fewer files than instances where files are dealt.

Names come from `--name` (default imdb-sentiment) plus a UTC timestamp where SageMaker wants unique
ones (training jobs, models, endpoint configs, transform jobs); the endpoint is `--endpoint`, default
`--name`. Everything created is recorded in `--state` (default build/deploy-state.json, written
atomically), and `teardown` deletes exactly the endpoints, endpoint configs and models recorded there.
Every subcommand can be rerun: `deploy` stops when the endpoint exists, `update` when the endpoint
already serves that image and model, `train` and `batch` when a job of the given name exists.
`update --labeled FILE` scores the labeled reviews (a channel file or folder) with the current and the new
model.tar.gz (downloaded) and refuses a model that scores lower, unless `--force`. The scoring is
`sentiment-evaluate`'s, run as its own process: this virtualenv's command (`--score-with local`, the
default) or the image being deployed (`--score-with image`: `docker run IMAGE sentiment-evaluate`), so
this script needs boto3 only and never loads torch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from sentiment.contract import MAX_PAYLOAD_MB, METRIC_DEFINITIONS
from sentiment.errors import SentimentError
from sentiment.files import read_json, write_json_atomic

Client = Any  # boto3 builds its client classes at run time
EVALUATE = "sentiment-evaluate"  # the package's command: a model's metrics on labeled reviews, as JSON

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_STATE = REPOSITORY / "build" / "deploy-state.json"
CHANNELS = ("train", "validation", "test", "unlabeled")
JSONLINES = "application/jsonlines"
POLL_SECONDS = 30.0
# --distribution: S3DataDistributionType of the channels a job fits on (train, unlabeled); validation and
# test stay whole on every host (training gathers validation, and scores test part by part either way).
DISTRIBUTIONS = {"replicated": "FullyReplicated", "sharded": "ShardedByS3Key"}
DISTRIBUTED_CHANNELS = ("train", "unlabeled")
RESOURCE_KINDS = ("training_jobs", "models", "endpoint_configs", "endpoints", "transform_jobs")
DONE = {"Completed", "Failed", "Stopped", "InService", "OutOfService"}


class DeployError(SentimentError):
    """A SageMaker step that cannot be taken: bad input, a missing resource, or AWS refusing."""


# ---------------------------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: the AWS environment's)")
    common.add_argument("--endpoint-url", help="SageMaker and S3 endpoint, e.g. moto's server (default: AWS's)")
    common.add_argument("--name", default="imdb-sentiment", help="prefix of every name (default: %(default)s)")
    common.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state file (default: %(default)s)")
    common.add_argument(
        "--poll-seconds", type=float, default=POLL_SECONDS, help="seconds between --wait's polls (default: %(default)g)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", parents=[common], help="start a training job")
    add_image_and_role(train)
    train.add_argument("--data", required=True, help="s3://bucket/prefix holding train/ validation/ test/ unlabeled/")
    train.add_argument("--instance-type", default="ml.g4dn.xlarge", help="(default: %(default)s)")
    train.add_argument(
        "--instance-count", type=int, default=1, help="hosts training one model together (default: %(default)s)"
    )
    train.add_argument(
        "--distribution",
        choices=sorted(DISTRIBUTIONS),
        default="replicated",
        help="how train and unlabeled reach the hosts: every host all of it (replicated), or each host some of "
        "the files (sharded: write them with prepare_data.py --shards K, K >= the instances) (default: %(default)s)",
    )
    train.add_argument("--hyperparameters", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. model=lstm")
    train.add_argument("--max-run", type=int, default=3 * 3600, help="seconds before SageMaker stops the job")
    train.add_argument("--spot", action="store_true", help="managed spot training (needs --max-wait)")
    train.add_argument("--max-wait", type=int, help="seconds to wait for spot capacity plus training")
    train.add_argument("--checkpoint-s3", help="s3:// URI SageMaker syncs /opt/ml/checkpoints with")
    train.add_argument("--output", help="s3:// URI for model.tar.gz (default: <data bucket>/<name>/output)")
    train.add_argument("--volume-gb", type=int, default=30, help="(default: %(default)s)")
    train.add_argument("--job-name", help="the job's name (default: <name>-<timestamp>); an existing one is reused")
    train.add_argument("--wait", action="store_true", help="wait for the job and report its final metrics")

    deploy = commands.add_parser("deploy", parents=[common], help="model + endpoint config + endpoint")
    add_image_and_role(deploy)
    add_model_data_and_variant(deploy)
    deploy.add_argument("--endpoint", help="endpoint name (default: --name)")
    deploy.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")

    update = commands.add_parser("update", parents=[common], help="switch an endpoint to a new model")
    add_image_and_role(update)
    add_model_data_and_variant(update)
    update.add_argument("--endpoint", required=True, help="the endpoint to update")
    update.add_argument(
        "--labeled", type=Path, help="labeled reviews (channel file or folder): refuse a model that scores lower"
    )
    update.add_argument(
        "--score-with",
        choices=("local", "image"),
        default="local",
        help="--labeled's scoring: this virtualenv's sentiment-evaluate, or the --image run with docker",
    )
    update.add_argument("--force", action="store_true", help="update even when the new model scores lower")
    update.add_argument("--wait", action="store_true", help="wait until the endpoint is InService again")

    commands.add_parser("teardown", parents=[common], help="delete what the state file records")

    batch = commands.add_parser("batch", parents=[common], help="a batch transform job")
    batch.add_argument("--model", required=True, help="SageMaker model name (see the state file)")
    batch.add_argument("--input", required=True, help="s3:// prefix of JSON Lines files, e.g. .../data/test/")
    batch.add_argument("--output", required=True, help="s3:// prefix for the .out files")
    batch.add_argument("--instance-type", default="ml.m5.large", help="(default: %(default)s)")
    batch.add_argument(
        "--instance-count",
        type=int,
        default=1,
        help="hosts scoring together; SageMaker gives each whole input files, so write the input as at least "
        "that many (prepare_data.py --shards K) (default: %(default)s)",
    )
    batch.add_argument("--job-name", help="the job's name (default: <name>-<timestamp>); an existing one is reused")
    batch.add_argument("--wait", action="store_true", help="wait for the job")
    batch.add_argument("--labels", type=Path, help="JSON Lines with 'label', in the order of the outputs: accuracy")

    args = parser.parse_args(argv)
    if args.command == "train":
        if args.spot and args.max_wait is None:
            parser.error("--spot needs --max-wait SECONDS (at least --max-run)")
        if args.max_wait is not None and not args.spot:
            parser.error("--max-wait only applies with --spot")
        if args.spot and args.max_wait < args.max_run:
            parser.error(f"--max-wait ({args.max_wait}) must be at least --max-run ({args.max_run})")
        bad = [item for item in args.hyperparameters if "=" not in item or not item.split("=", 1)[0]]
        if bad:
            parser.error(f"--hyperparameters takes KEY=VALUE pairs, not {' '.join(bad)}")
        for option in ("data", "checkpoint_s3", "output"):
            if getattr(args, option) is not None:
                split_s3(getattr(args, option), parser, option)
        if args.distribution == "sharded" and args.instance_count == 1:
            parser.error("--distribution sharded splits the data among instances: it needs --instance-count 2 or more")
    if args.command in ("train", "batch") and args.instance_count < 1:
        parser.error(f"--instance-count must be 1 or more, not {args.instance_count}")
    if args.command in ("deploy", "update"):
        split_s3(args.model_data, parser, "model_data")
    if args.command == "batch":
        for option in ("input", "output"):
            split_s3(getattr(args, option), parser, option)
    if args.command == "batch" and args.labels is not None and not args.wait:
        parser.error("--labels needs --wait (the outputs exist only once the job completes)")
    return args


def add_image_and_role(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="ECR image URI (see build_and_push.sh)")
    parser.add_argument("--role", required=True, help="SageMaker execution role ARN")


def add_model_data_and_variant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-data", required=True, help="s3://.../model.tar.gz")
    parser.add_argument("--instance-type", default="ml.m5.large", help="(default: %(default)s)")
    parser.add_argument("--instance-count", type=int, default=1, help="(default: %(default)s)")


def split_s3(uri: str, parser: argparse.ArgumentParser | None = None, option: str = "") -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; a usage error (or DeployError) when it is not one."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        message = f"--{option.replace('_', '-')} must be an s3://bucket/... URI, not {uri!r}"
        if parser is not None:
            parser.error(message)
        raise DeployError(message)
    return bucket, key


# ---------------------------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None, session: boto3.Session | None = None) -> int:
    """Run one subcommand; `session` lets tests watch the requests."""
    args = parse_args(argv)
    session = session or boto3.Session()
    aws = Aws(session, args.region, args.endpoint_url)
    try:
        state = State(args.state)
        if args.command == "train":
            train(args, aws, state)
        elif args.command == "deploy":
            deploy(args, aws, state)
        elif args.command == "update":
            update(args, aws, state)
        elif args.command == "teardown":
            teardown(aws, state)
        else:
            batch(args, aws, state)
    except botocore.exceptions.NoCredentialsError:
        print("error: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 1
    except botocore.exceptions.ParamValidationError as error:
        print(f"error: {args.command}: AWS would refuse this request: {error}", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        print(
            f"error: {args.command}: {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}",
            file=sys.stderr,
        )
        return 1
    except (SentimentError, botocore.exceptions.BotoCoreError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


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

    def add(self, kind: str, name: str) -> None:
        if name not in self.document[kind]:
            self.document[kind].append(name)
            self.save()

    def remove(self, kind: str, name: str) -> None:
        if name in self.document[kind]:
            self.document[kind].remove(name)
            self.save()

    def names(self, kind: str) -> list[str]:
        return list(self.document[kind])

    def save(self) -> None:
        write_json_atomic(self.path, self.document)


def unique_name(prefix: str) -> str:
    """`prefix-YYYYMMDD-HHMMSS-mmm` within SageMaker's 63 characters."""
    now = datetime.now(UTC)
    suffix = now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}"
    return f"{prefix[: 63 - len(suffix) - 1]}-{suffix}"


def is_missing(error: botocore.exceptions.ClientError) -> bool:
    """SageMaker's answer for a name that does not exist (a ValidationException 'Could not find ...')."""
    detail = error.response.get("Error", {})
    return detail.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "Could not find" in detail.get("Message", "") or "does not exist" in detail.get("Message", "")
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


# ---------------------------------------------------------------------------------------------- train


def train(args: argparse.Namespace, aws: Aws, state: State) -> None:
    data = args.data.rstrip("/")
    bucket, _ = split_s3(data, option="data")
    check_bucket(aws, data, "data")
    if args.distribution == "sharded":
        for channel in DISTRIBUTED_CHANNELS:
            check_files_per_instance(aws, f"{data}/{channel}/", args.instance_count, "--distribution sharded")
    name = args.job_name or unique_name(args.name)
    existing = describe(aws.sagemaker.describe_training_job, TrainingJobName=name)
    if existing is not None:
        print(f"train:    job {name} exists ({existing['TrainingJobStatus']}): not starting another")
    else:
        request = training_request(args, name, data, bucket)
        aws.sagemaker.create_training_job(**request)
        state.add("training_jobs", name)
        print(
            f"train:    started {name} on {args.instance_count} x {args.instance_type}"
            + (" (spot)" if args.spot else "")
        )
        print(f"train:    channels {', '.join(CHANNELS)} from {data}/")
        if args.instance_count > 1:
            print(
                f"train:    {args.instance_count} hosts train one model; {' and '.join(DISTRIBUTED_CHANNELS)} "
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


def training_request(args: argparse.Namespace, name: str, data: str, bucket: str) -> dict[str, Any]:
    """The CreateTrainingJob request: four channels, string hyperparameters, our metric definitions."""
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
            for channel in CHANNELS
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


# ---------------------------------------------------------------------------------------------- deploy, update


def create_model_and_config(args: argparse.Namespace, aws: Aws, state: State) -> str:
    """A new model and an endpoint config with one variant serving it; returns the config's name."""
    model = unique_name(args.name)
    aws.sagemaker.create_model(
        ModelName=model,
        PrimaryContainer={"Image": args.image, "ModelDataUrl": args.model_data},
        ExecutionRoleArn=args.role,
    )
    state.add("models", model)
    print(f"model:    created {model} ({args.model_data})")
    config = unique_name(f"{args.name}-config")
    aws.sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": args.instance_count,
                "InstanceType": args.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    state.add("endpoint_configs", config)
    print(f"config:   created {config} ({args.instance_count} x {args.instance_type})")
    return config


def deploy(args: argparse.Namespace, aws: Aws, state: State) -> None:
    endpoint = args.endpoint or args.name
    existing = describe(aws.sagemaker.describe_endpoint, EndpointName=endpoint)
    if existing is not None:
        print(
            f"endpoint: {endpoint} exists ({existing['EndpointStatus']}, config {existing['EndpointConfigName']}): "
            "nothing to do; use `update` to change its model"
        )
        return
    check_object(aws, args.model_data, "model-data")
    config = create_model_and_config(args, aws, state)
    aws.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    state.add("endpoints", endpoint)
    print(f"endpoint: creating {endpoint} with {config}")
    if args.wait:
        wait_endpoint(aws, endpoint, args.poll_seconds)


def wait_endpoint(aws: Aws, endpoint: str, seconds: float) -> None:
    answer = wait_for(
        f"endpoint {endpoint}",
        lambda: aws.sagemaker.describe_endpoint(EndpointName=endpoint),
        "EndpointStatus",
        seconds,
    )
    require_status(f"endpoint {endpoint}", answer, "EndpointStatus", "InService")


def serving_model(aws: Aws, endpoint: dict[str, Any]) -> dict[str, Any]:
    """DescribeModel of the first variant the endpoint's current config serves."""
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    return aws.sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])


def update(args: argparse.Namespace, aws: Aws, state: State) -> None:
    endpoint = describe(aws.sagemaker.describe_endpoint, EndpointName=args.endpoint)
    if endpoint is None:
        raise DeployError(f"endpoint {args.endpoint} does not exist: create it with `deploy`")
    current = serving_model(aws, endpoint)["PrimaryContainer"]
    print(f"endpoint: {args.endpoint} serves {current.get('ModelDataUrl')} ({endpoint['EndpointConfigName']})")
    if (current.get("Image"), current.get("ModelDataUrl")) == (args.image, args.model_data) and not args.force:
        print("update:   it already serves this image and model: nothing to do")
        return
    # Before any download or scoring: a wrong URI should fail in a second, not after the comparison.
    check_object(aws, args.model_data, "model-data")
    if args.labeled is not None:
        image = args.image if args.score_with == "image" else None
        compare_models(aws, current["ModelDataUrl"], args.model_data, args.labeled, image, args.force)
    config = create_model_and_config(args, aws, state)
    aws.sagemaker.update_endpoint(EndpointName=args.endpoint, EndpointConfigName=config)
    print(f"endpoint: updating {args.endpoint} to {config}; {endpoint['EndpointConfigName']} serves until it is done")
    if args.wait:
        wait_endpoint(aws, args.endpoint, args.poll_seconds)


def label_value(label: Any) -> int:
    """1/0 of a --labels record's label."""
    mapping = {1: 1, 0: 0, "1": 1, "0": 0, "positive": 1, "negative": 0}
    if label not in mapping:
        raise ValueError(f"label {label!r} is none of 1, 0, 'positive', 'negative'")
    return mapping[label]


def predicted_value(label: Any) -> int:
    """1/0 of a prediction's label; -1, which matches no label, for "unknown" (no word the model knows)."""
    return -1 if label == "unknown" else label_value(label)


def model_accuracy(model_tarball: Path, labeled: Path, image: str | None = None) -> tuple[float, int]:
    """(accuracy, reviews) of `model_tarball` on `labeled`, by `sentiment-evaluate` in a process of its own:
    this virtualenv's command, or `image`'s with docker (both folders mounted read-only, the report written
    to a third)."""
    with tempfile.TemporaryDirectory(prefix="sentiment-evaluate-") as report:
        if image is None:
            command = [_evaluate_command(), "--data", str(labeled), "--model", str(model_tarball), "--output", report]
        else:
            labeled = labeled.resolve()
            command = [
                "docker", "run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}",
                "-v", f"{model_tarball.resolve().parent}:/model:ro",
                "-v", f"{labeled.parent}:/labeled:ro",
                "-v", f"{report}:/report",
                image, EVALUATE, "--data", f"/labeled/{labeled.name}", "--model", f"/model/{model_tarball.name}",
                "--output", "/report",
            ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DeployError(f"cannot run {command[0]} to score {model_tarball.name}: {error}") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DeployError(f"{' '.join(command[:3])}... failed to score {model_tarball}: {last}")
        metrics = read_json(Path(report) / "evaluation.json")["metrics"]
    return float(metrics["accuracy"]), int(metrics["reviews"])


def _evaluate_command() -> str:
    """sentiment-evaluate beside this Python (a virtualenv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name(EVALUATE)
    found = str(beside) if beside.is_file() else shutil.which(EVALUATE)
    if found is None:
        raise DeployError(f"{EVALUATE} is not installed here (make run installs it), or use --score-with image")
    return found


def compare_models(aws: Aws, current_uri: str, new_uri: str, labeled: Path, image: str | None, force: bool) -> None:
    """Score `labeled` with both models; DeployError when the new one is less accurate (unless `force`)."""
    if not labeled.exists():
        raise DeployError(f"--labeled {labeled}: no such file or folder")
    accuracies = {}
    with tempfile.TemporaryDirectory(prefix="sentiment-update-") as folder:
        for which, uri in (("current", current_uri), ("new", new_uri)):
            bucket, key = split_s3(uri, option="model-data")
            local = Path(folder) / which / "model.tar.gz"
            local.parent.mkdir()
            aws.s3.download_file(bucket, key, str(local))
            accuracies[which], reviews = model_accuracy(local, labeled, image)
            print(f"compare:  {which:<7} model {accuracies[which]:.2%} on {reviews:,} reviews of {labeled} ({uri})")
    if accuracies["new"] < accuracies["current"]:
        message = f"the new model scores {accuracies['new']:.2%}, below the current {accuracies['current']:.2%}"
        if not force:
            raise DeployError(f"{message}: not updating (--force updates anyway)")
        print(f"compare:  {message}; updating anyway (--force)")


# ---------------------------------------------------------------------------------------------- teardown


def teardown(aws: Aws, state: State) -> None:
    """Delete the recorded endpoints, then their configs, then the models; ones already gone are skipped."""
    if not state.path.exists():
        print(f"teardown: no state file at {state.path}: nothing recorded, nothing deleted")
        return
    steps = (
        ("endpoints", "endpoint", lambda n: aws.sagemaker.delete_endpoint(EndpointName=n)),
        ("endpoint_configs", "config", lambda n: aws.sagemaker.delete_endpoint_config(EndpointConfigName=n)),
        ("models", "model", lambda n: aws.sagemaker.delete_model(ModelName=n)),
    )
    deleted = 0
    for kind, label, delete in steps:
        for name in state.names(kind):
            try:
                delete(name)
                print(f"teardown: deleted {label} {name}")
                deleted += 1
            except botocore.exceptions.ClientError as error:
                if not is_missing(error):
                    raise
                print(f"teardown: {label} {name} already gone")
            state.remove(kind, name)
    print(f"teardown: {deleted} deleted; training and transform jobs are kept (SageMaker keeps their records)")


# ---------------------------------------------------------------------------------------------- batch


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


def check_files_per_instance(aws: Aws, prefix: str, instances: int, what: str) -> None:
    """SageMaker deals whole files to instances (ShardedByS3Key, Batch Transform): refuse fewer files than instances."""
    bucket, key = split_s3(prefix, option="input")
    key = key.rstrip("/") + "/" if key.strip("/") else ""
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    files = sum(1 for page in pages for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    if files < instances:
        raise DeployError(
            f"{what}: {prefix} holds {files} file(s) for {instances} instances, and SageMaker gives each instance "
            f"whole files: write it as at least {instances} (deploy/prepare_data.py --shards {instances})"
        )


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


if __name__ == "__main__":
    sys.exit(main())
