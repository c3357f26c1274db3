#!/usr/bin/env python3
"""Steps 4-7 of the tutorial: train, deploy, update, tear down and batch-score on SageMaker, via boto3.

    python deploy/sagemaker.py train    --image URI --role ARN --data s3://bucket/imdb-sentiment/data --wait
    python deploy/sagemaker.py deploy   --image URI --role ARN --model-data s3://.../model.tar.gz --wait
                                        [--serverless --memory-mb 2048 --max-concurrency 5]
                                        [--capture 10 --capture-s3 s3://bucket/capture/]
    python deploy/sagemaker.py update   --image URI --role ARN --model-data s3://.../model.tar.gz \\
                                        --endpoint imdb-sentiment --labeled reviews.jsonl [--canary 10]
    python deploy/sagemaker.py batch    --model NAME --input s3://.../test/ --output s3://.../scores/ --wait
    python deploy/sagemaker.py autoscale --min 1 --max 4 [--target INVOCATIONS] [--explain]
    python deploy/sagemaker.py teardown

`train --instance-count N` trains one model on N hosts (`--distribution sharded`: each host some of the
files of train and unlabeled, written by `prepare_data.py --shards K`); `batch --instance-count N` scores
on N hosts, each given whole input files. Both refuse fewer files than instances where files are dealt.

Names come from `--name` (default imdb-sentiment) plus a UTC timestamp where SageMaker wants unique
ones (training jobs, models, endpoint configs, transform jobs); the endpoint is `--endpoint`, default
`--name`. Everything created is recorded in `--state` (default build/deploy-state.json, written
atomically), and `teardown` deletes exactly the scaling policies, scalable targets, alarms, endpoints,
endpoint configs and models recorded there.
Every subcommand can be rerun: `deploy` stops when the endpoint exists, `update` when the endpoint
already serves that image and model, `train` and `batch` when a job of the given name exists.
`update --labeled FILE` scores the labeled reviews (a channel file or folder) with the current and the new
model.tar.gz (downloaded) and refuses a model that scores lower, unless `--force`. The scoring is
`sentiment-evaluate`'s, run as its own process: this virtualenv's command (`--score-with local`, the
default) or the image being deployed (`--score-with image`: `docker run IMAGE sentiment-evaluate`), so
this script needs boto3 only and never loads torch.
`deploy --serverless` checks memory, concurrency, the image's size and the payload limit against
SageMaker's serverless limits before any request; `deploy --capture` captures requests and answers to S3.
`update --canary/--linear` is a blue/green deployment rolled back by alarms the script makes; an update
keeps the endpoint's serverless config and data capture.
`autoscale` registers the endpoint's variant with Application Auto Scaling and tracks a target of
invocations per instance per minute, by default derived from the serving benchmark's measured
throughput (benchmarks/results/serve-avx2.json, float32) times a safety factor; `--explain` prints the derivation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
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
RESOURCE_KINDS = (
    "training_jobs", "models", "endpoint_configs", "endpoints", "transform_jobs",
    "scalable_targets", "scaling_policies", "alarms",
)  # fmt: skip
DONE = {"Completed", "Failed", "Stopped", "InService", "OutOfService"}
VARIANT = "AllTraffic"  # the one production variant deploy makes

# Autoscaling: Application Auto Scaling's names for a SageMaker variant's instance count and its load metric.
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"  # invocations per instance per MINUTE
# The float32 figures (AVX2): ml.m5.large, deploy's default, and most CPU instances have no bfloat16, and
# serve.json's bfloat16 figures would overstate them 2x; on ml.c7i/m7i (AMX) --benchmark serve.json applies.
SERVE_RESULTS = REPOSITORY / "benchmarks" / "results" / "serve-avx2.json"
THROUGHPUT_CASE = "batching on"  # the server as deployed (micro-batching on), one review per request
# SageMaker's load-testing guide: target = the highest sustained requests/s of one instance x 0.5 x 60.
# Half leaves room for a slower CPU than the benchmark's and for the minutes a scale-out takes.
SAFETY_FACTOR = 0.5

# Guarded updates: SageMaker's blue/green traffic shifting, rolled back by CloudWatch alarms on the variant.
CANARY_PERCENT = range(1, 51)  # the canary is at most half the new fleet
LINEAR_PERCENT = range(10, 51)  # each linear step is 10-50 % of it
WAIT_INTERVAL = 600  # seconds between shifts, and the old fleet is kept as long after the last
ALARM_PERIOD = 60  # SageMaker's endpoint metrics are per minute
ALARM_WINDOW = 2 * ALARM_PERIOD  # the latency alarm needs two periods: a shorter wait could not catch it
PROVISIONING_ALLOWANCE = 1800  # seconds for the new fleet to come up, beyond the waits
MAX_EXECUTION_TIMEOUT = 28800  # SageMaker's ceiling on a blue/green deployment
# The latency alarm's default p99 ModelLatency: this many times the p99 the serving benchmark measured
# at saturation (64 clients on one instance's 2 cores, more than autoscaling's half-peak target lets
# an instance get), read from SERVE_RESULTS as the autoscale target is, so it follows the model's speed.
LATENCY_HEADROOM = 2.0

# Variants: on instances (deploy's default), or serverless within SageMaker's limits.
INSTANCE_TYPE = "ml.m5.large"
SERVERLESS_MEMORY_MB = range(1024, 6144 + 1, 1024)
SERVERLESS_MAX_CONCURRENCY = range(1, 200 + 1)
SERVERLESS_IMAGE_BYTES = 10 * 1024**3  # "10 GB"
SERVERLESS_PAYLOAD_MB = 4  # a serverless endpoint refuses larger bodies, below the container's own MAX_PAYLOAD_MB
PAYLOAD_VARIABLE = "SAGEMAKER_MAX_PAYLOAD_IN_MB"  # the container's limit (sentiment.contract)
ECR_IMAGE = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# Data capture: what the container reads and answers as JSON is captured as text, the rest base64-encoded.
CAPTURE_JSON_TYPES = ["application/json", JSONLINES]


class DeployError(SentimentError):
    """A SageMaker step that cannot be taken: bad input, a missing resource, or AWS refusing."""


# ---------------------------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: the AWS environment's)")
    common.add_argument("--endpoint-url", help="every AWS service's endpoint, e.g. moto's server (default: AWS's)")
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
    deploy.add_argument("--serverless", action="store_true", help="a serverless variant instead of instances")
    deploy.add_argument("--memory-mb", type=int, help="--serverless: memory, 1024-6144 in steps of 1024")
    deploy.add_argument("--max-concurrency", type=int, help="--serverless: invocations at once, 1-200")
    deploy.add_argument(
        "--capture", type=int, metavar="PERCENT", help="data capture of PERCENT (1-100) of requests, in and out"
    )
    deploy.add_argument("--capture-s3", metavar="URI", help="s3:// prefix the captured JSON Lines files go to")
    deploy.add_argument("--wait", action="store_true", help="wait until the endpoint is InService")

    update = commands.add_parser("update", parents=[common], help="switch an endpoint to a new model")
    add_image_and_role(update)
    add_model_data_and_variant(update, updating=True)
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
    shifting = update.add_mutually_exclusive_group()
    shifting.add_argument(
        "--canary", type=int, metavar="PERCENT", help="blue/green: PERCENT of capacity first, the rest one wait later"
    )
    shifting.add_argument(
        "--linear", type=int, metavar="PERCENT", help="blue/green: PERCENT of capacity more after each wait (10-50)"
    )
    update.add_argument(
        "--wait-interval",
        type=int,
        metavar="SECONDS",
        help=f"between shifts; the old fleet is kept as long after the last ({ALARM_WINDOW}-3600, {WAIT_INTERVAL})",
    )
    update.add_argument(
        "--rollback-alarm",
        action="append",
        default=[],
        metavar="NAME",
        help="an existing CloudWatch alarm that rolls back too (repeatable); the 5XX and latency alarms are made",
    )
    update.add_argument(
        "--max-5xx", type=int, metavar="COUNT", help="5XX errors in a minute beyond which it rolls back (default 0)"
    )
    update.add_argument(
        "--max-latency-ms",
        type=float,
        help=f"p99 model latency, 2 minutes on end, that rolls back (default: {LATENCY_HEADROOM:g} x the p99 "
        f"of '{THROUGHPUT_CASE}' in {SERVE_RESULTS.name})",
    )
    update.add_argument("--wait", action="store_true", help="wait until the endpoint is InService again")

    autoscale = commands.add_parser("autoscale", parents=[common], help="target-tracking autoscaling of the variant")
    autoscale.add_argument("--endpoint", help="endpoint name (default: --name)")
    autoscale.add_argument("--min", type=int, default=1, dest="min_instances", help="(default: %(default)s)")
    autoscale.add_argument("--max", type=int, dest="max_instances", help="the most instances it may scale out to")
    autoscale.add_argument(
        "--target", type=float, metavar="INVOCATIONS", help="invocations per instance per minute (default: derived)"
    )
    autoscale.add_argument(
        "--benchmark", type=Path, default=SERVE_RESULTS, help="the serving benchmark's results (default: %(default)s)"
    )
    autoscale.add_argument(
        "--safety-factor", type=float, default=SAFETY_FACTOR, help="share of the measured peak (default: %(default)g)"
    )
    autoscale.add_argument("--scale-in-cooldown", type=int, default=300, metavar="S", help="(default: %(default)s)")
    autoscale.add_argument("--scale-out-cooldown", type=int, default=60, metavar="S", help="(default: %(default)s)")
    autoscale.add_argument("--explain", action="store_true", help="print how the target is derived, change nothing")

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
    if args.command == "deploy":
        check_variant_options(args, parser)
    if args.command == "batch":
        for option in ("input", "output"):
            split_s3(getattr(args, option), parser, option)
    if args.command == "batch" and args.labels is not None and not args.wait:
        parser.error("--labels needs --wait (the outputs exist only once the job completes)")
    if args.command == "autoscale":
        check_autoscale_options(args, parser)
    if args.command == "update":
        check_guard_options(args, parser)
    return args


def check_variant_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """deploy's serverless and capture options against SageMaker's limits, before any request."""
    if args.serverless:
        if args.instance_type is not None or args.instance_count is not None:
            parser.error("--serverless replaces --instance-type and --instance-count: give one or the other")
        if args.memory_mb is None or args.max_concurrency is None:
            parser.error("--serverless needs --memory-mb M (1024-6144, steps of 1024) and --max-concurrency C (1-200)")
        if args.memory_mb not in SERVERLESS_MEMORY_MB or args.memory_mb % 1024:
            parser.error(f"--memory-mb must be one of 1024, 2048, ... 6144 (serverless sizes), not {args.memory_mb}")
        if args.max_concurrency not in SERVERLESS_MAX_CONCURRENCY:
            parser.error(f"--max-concurrency must be 1-200 (serverless), not {args.max_concurrency}")
        if args.capture is not None:
            parser.error("--capture: serverless endpoints do not support data capture; deploy on instances for it")
    elif args.memory_mb is not None or args.max_concurrency is not None:
        parser.error("--memory-mb and --max-concurrency apply only with --serverless")
    if (args.capture is None) != (args.capture_s3 is None):
        parser.error("--capture PERCENT and --capture-s3 s3://bucket/prefix go together")
    if args.capture is not None:
        if not 1 <= args.capture <= 100:
            parser.error(f"--capture must be 1-100 (percent of requests captured), not {args.capture}")
        split_s3(args.capture_s3, parser, "capture_s3")


def check_guard_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """--canary/--linear's ranges; the options that shape a blue/green update need one of them."""
    if args.canary is None and args.linear is None:
        shaping = ("wait_interval", "max_5xx", "max_latency_ms")
        given = [option for option in shaping if getattr(args, option) is not None]
        given += ["rollback_alarm"] if args.rollback_alarm else []
        if given:
            parser.error(f"--{given[0].replace('_', '-')} applies only with --canary PERCENT or --linear PERCENT")
        return
    if args.canary is not None and args.canary not in CANARY_PERCENT:
        parser.error(f"--canary must be 1-50 (percent of the new fleet's capacity), not {args.canary}")
    if args.linear is not None and args.linear not in LINEAR_PERCENT:
        parser.error(f"--linear must be 10-50 (percent of the new fleet's capacity per step), not {args.linear}")
    args.wait_interval = WAIT_INTERVAL if args.wait_interval is None else args.wait_interval
    if not ALARM_WINDOW <= args.wait_interval <= 3600:
        parser.error(
            f"--wait-interval must be {ALARM_WINDOW}-3600 seconds (the latency alarm needs {ALARM_WINDOW} s to fire), "
            f"not {args.wait_interval}"
        )
    args.max_5xx = 0 if args.max_5xx is None else args.max_5xx
    if args.max_latency_ms is None:
        try:
            args.max_latency_ms = derived_latency_ms(SERVE_RESULTS)
        except DeployError as error:
            parser.error(str(error))
    if args.max_5xx < 0 or not args.max_latency_ms > 0:
        parser.error("--max-5xx must be 0 or more and --max-latency-ms more than 0")
    if execution_timeout(args) > MAX_EXECUTION_TIMEOUT:
        parser.error(
            f"the deployment would take {execution_timeout(args):,} s with its waits, over SageMaker's "
            f"{MAX_EXECUTION_TIMEOUT:,}: a shorter --wait-interval or larger steps"
        )


def check_autoscale_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.max_instances is None and not args.explain:
        parser.error("--max N is needed: the most instances autoscaling may run")
    if args.min_instances < 1:
        parser.error(f"--min must be at least 1 (an instance variant cannot scale to 0), not {args.min_instances}")
    if args.max_instances is not None and args.max_instances < args.min_instances:
        parser.error(f"--max ({args.max_instances}) must be at least --min ({args.min_instances})")
    if args.target is not None and not args.target > 0:
        parser.error(f"--target must be a positive number of invocations per minute, not {args.target:g}")
    if not 0 < args.safety_factor <= 1:
        parser.error(f"--safety-factor must be in (0, 1], not {args.safety_factor:g}")
    for option in ("scale_in_cooldown", "scale_out_cooldown"):
        if getattr(args, option) < 0:
            parser.error(f"--{option.replace('_', '-')} must be 0 or more seconds, not {getattr(args, option)}")


def add_image_and_role(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="ECR image URI (see build_and_push.sh)")
    parser.add_argument("--role", required=True, help="SageMaker execution role ARN")


def add_model_data_and_variant(parser: argparse.ArgumentParser, updating: bool = False) -> None:
    parser.add_argument("--model-data", required=True, help="s3://.../model.tar.gz")
    # No argparse defaults: --serverless and update must see whether they were given.
    kept = "the endpoint's current"
    parser.add_argument("--instance-type", help=f"(default: {kept if updating else INSTANCE_TYPE})")
    parser.add_argument("--instance-count", type=int, help=f"(default: {kept if updating else 1})")


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
        elif args.command == "autoscale":
            autoscale(args, aws, state)
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


def create_model_and_config(
    args: argparse.Namespace, aws: Aws, state: State, shape: dict[str, Any], capture: dict[str, Any] | None
) -> str:
    """A new model and an endpoint config with one variant of `shape` serving it (instances or
    ServerlessConfig), capturing data when `capture` says so; returns the config's name."""
    container = {"Image": args.image, "ModelDataUrl": args.model_data}
    if "ServerlessConfig" in shape:
        # The container's own limit, lowered to the endpoint's: a larger body gets the container's 413.
        container["Environment"] = {PAYLOAD_VARIABLE: str(min(MAX_PAYLOAD_MB, SERVERLESS_PAYLOAD_MB))}
    model = unique_name(args.name)
    aws.sagemaker.create_model(ModelName=model, PrimaryContainer=container, ExecutionRoleArn=args.role)
    state.add("models", model)
    print(f"model:    created {model} ({args.model_data})")
    config = unique_name(f"{args.name}-config")
    request: dict[str, Any] = {
        "EndpointConfigName": config,
        "ProductionVariants": [{"VariantName": VARIANT, "ModelName": model, "InitialVariantWeight": 1.0, **shape}],
    }
    if capture is not None:
        request["DataCaptureConfig"] = capture
    aws.sagemaker.create_endpoint_config(**request)
    state.add("endpoint_configs", config)
    print(f"config:   created {config} ({describe_shape(shape)})")
    if capture is not None:
        print(f"capture:  {capture['InitialSamplingPercentage']} % of requests, input and output, to "
              f"{capture['DestinationS3Uri']}")  # fmt: skip
    return config


def describe_shape(shape: dict[str, Any]) -> str:
    if "ServerlessConfig" in shape:
        serverless = shape["ServerlessConfig"]
        return f"serverless, {serverless['MemorySizeInMB']} MB, at most {serverless['MaxConcurrency']} at once"
    return f"{shape['InitialInstanceCount']} x {shape['InstanceType']}"


def requested_shape(args: argparse.Namespace) -> dict[str, Any]:
    """deploy's variant: ServerlessConfig with --serverless, else instances."""
    if args.serverless:
        return {"ServerlessConfig": {"MemorySizeInMB": args.memory_mb, "MaxConcurrency": args.max_concurrency}}
    return {"InstanceType": args.instance_type or INSTANCE_TYPE, "InitialInstanceCount": args.instance_count or 1}


def capture_config(percent: int, destination: str) -> dict[str, Any]:
    """DataCaptureConfig: PERCENT of requests, what came in and what went out, JSON kept as text."""
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": list(CAPTURE_JSON_TYPES)},
    }


def check_serverless_image(aws: Aws, image: str) -> None:
    """DeployError when the image is over serverless's 10 GB, or its size cannot be found."""
    size, source = image_size(aws, image)
    if size > SERVERLESS_IMAGE_BYTES:
        raise DeployError(
            f"--image {image} is {size / 1024**3:.1f} GB ({source}): serverless endpoints take images up to "
            f"{SERVERLESS_IMAGE_BYTES / 1024**3:.0f} GB; use the CPU image, or deploy on instances"
        )
    print(f"image:    {size / 1024**2:,.0f} MB ({source}), within serverless's {SERVERLESS_IMAGE_BYTES // 1024**3} GB")
    print(
        f"payload:  serverless takes bodies up to {SERVERLESS_PAYLOAD_MB} MB; the container's limit "
        f"({MAX_PAYLOAD_MB} MB) is set to it ({PAYLOAD_VARIABLE}={min(MAX_PAYLOAD_MB, SERVERLESS_PAYLOAD_MB)})"
    )


def image_size(aws: Aws, image: str) -> tuple[int, str]:
    """(bytes, where the figure comes from): the local docker image when there is one (unpacked size),
    else ECR's DescribeImages (imageSizeInBytes, the compressed layers)."""
    local = local_image_size(image)
    if local is not None:
        return local, "the local docker image"
    found = ECR_IMAGE.match(image)
    if found is None:
        raise DeployError(f"--image {image}: not a local docker image nor an ECR URI, so its size is unknown")
    image_id = {"imageDigest": found["digest"]} if found["digest"] else {"imageTag": found["tag"] or "latest"}
    try:
        answer = aws.ecr(found["region"]).describe_images(
            registryId=found["registry"], repositoryName=found["repository"], imageIds=[image_id]
        )
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("RepositoryNotFoundException", "ImageNotFoundException"):
            raise DeployError(
                f"--image {image}: ECR has no such image ({code}); push it with build_and_push.sh"
            ) from None
        raise
    return int(answer["imageDetails"][0]["imageSizeInBytes"]), "ECR's imageSizeInBytes"


def local_image_size(image: str) -> int | None:
    """The unpacked size docker reports for a local image; None without docker or without the image."""
    try:
        result = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip().isdigit() else None


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
    capture = None
    if args.capture is not None:
        check_bucket(aws, args.capture_s3, "capture-s3")
        capture = capture_config(args.capture, args.capture_s3)
    if args.serverless:
        check_serverless_image(aws, args.image)
    config = create_model_and_config(args, aws, state, requested_shape(args), capture)
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


def kept_shape_and_capture(
    args: argparse.Namespace, aws: Aws, endpoint: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The new config's variant and capture: what the endpoint runs now unless an option changes it (its
    instance type and current instance count, which autoscaling may have moved; serverless stays
    serverless; data capture goes on as configured), so an update changes the model and nothing else."""
    current = aws.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = current["ProductionVariants"][0]
    capture = current.get("DataCaptureConfig") or None
    if capture is not None:
        print(f"capture:  kept from {current['EndpointConfigName']}")
    if "ServerlessConfig" in variant:
        if args.instance_type is not None or args.instance_count is not None:
            raise DeployError(
                f"endpoint {args.endpoint} is serverless: update keeps its ServerlessConfig and takes no "
                "--instance-type or --instance-count (deploy a new endpoint on instances instead)"
            )
        serverless = variant["ServerlessConfig"]
        return {"ServerlessConfig": {key: serverless[key] for key in ("MemorySizeInMB", "MaxConcurrency")}}, capture
    running = next((item for item in endpoint.get("ProductionVariants", []) if item["VariantName"] == VARIANT), {})
    instance_type = args.instance_type or variant["InstanceType"]
    count = args.instance_count or running.get("CurrentInstanceCount") or variant["InitialInstanceCount"]
    if instance_type != variant["InstanceType"]:
        check_not_autoscaled(aws, args.endpoint, variant["InstanceType"], instance_type)
    return {"InstanceType": instance_type, "InitialInstanceCount": count}, capture


def check_not_autoscaled(aws: Aws, endpoint: str, current: str, new: str) -> None:
    """SageMaker refuses to change the instance type of a variant Application Auto Scaling manages."""
    resource = f"endpoint/{endpoint}/variant/{VARIANT}"
    targets = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]
    if targets:
        raise DeployError(
            f"{resource} is autoscaled: SageMaker refuses to change its instance type ({current} -> {new}); "
            "keep the type, or delete its scaling policy and deregister it first"
        )


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
    shape, capture = kept_shape_and_capture(args, aws, endpoint)
    if "ServerlessConfig" in shape:
        check_serverless_image(aws, args.image)
    guarded = args.canary is not None or args.linear is not None
    if guarded:
        check_alarms_exist(aws, args.rollback_alarm)
    # The first gate: a model that scores lower goes no further, and nothing is made for it.
    if args.labeled is not None:
        image = args.image if args.score_with == "image" else None
        compare_models(aws, current["ModelDataUrl"], args.model_data, args.labeled, image, args.force)
    request: dict[str, Any] = {"EndpointName": args.endpoint}
    if guarded:
        alarms = [put_alarm(aws, state, alarm) for alarm in rollback_alarms(args.endpoint, args)]
        request["DeploymentConfig"] = deployment_config(args, alarms + args.rollback_alarm)
    request["EndpointConfigName"] = config = create_model_and_config(args, aws, state, shape, capture)
    aws.sagemaker.update_endpoint(**request)
    if guarded:
        print(f"update:   {describe_deployment(request['DeploymentConfig'])}")
    print(f"endpoint: updating {args.endpoint} to {config}; {endpoint['EndpointConfigName']} serves until it is done")
    if args.wait:
        wait_endpoint(aws, args.endpoint, args.poll_seconds)


def check_alarms_exist(aws: Aws, names: list[str]) -> None:
    if not names:
        return
    found = {alarm["AlarmName"] for alarm in aws.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    missing = [name for name in names if name not in found]
    if missing:
        raise DeployError(f"--rollback-alarm {missing[0]}: no such CloudWatch alarm in this region")


def rollback_alarms(endpoint: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """PutMetricAlarm requests: the variant's 5XX errors in a minute, and its p99 model latency two minutes running."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": VARIANT}]
    common = {"Namespace": "AWS/SageMaker", "Dimensions": dimensions, "Period": ALARM_PERIOD}
    # No requests is no evidence against the new model: missing data does not roll back.
    common |= {"ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    return [
        {
            "AlarmName": f"{endpoint}-{VARIANT}-5xx-errors",
            "AlarmDescription": f"{endpoint}: more than {args.max_5xx} 5XX answers in a minute (rolls an update back)",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": float(args.max_5xx),
            **common,
        },
        {
            "AlarmName": f"{endpoint}-{VARIANT}-model-latency",
            "AlarmDescription": f"{endpoint}: p99 model latency over {args.max_latency_ms:g} ms for 2 minutes "
            "(rolls an update back)",
            "MetricName": "ModelLatency",  # in microseconds
            "ExtendedStatistic": "p99",
            "EvaluationPeriods": ALARM_WINDOW // ALARM_PERIOD,
            "DatapointsToAlarm": ALARM_WINDOW // ALARM_PERIOD,
            "Threshold": args.max_latency_ms * 1000,
            **common,
        },
    ]


def put_alarm(aws: Aws, state: State, alarm: dict[str, Any]) -> str:
    """Create or correct one alarm; nothing when CloudWatch holds it as asked. Returns its name."""
    name = alarm["AlarmName"]
    existing = aws.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if existing and same_alarm(existing[0], alarm):
        print(f"alarm:    {name} exists as asked: nothing to do")
    else:
        aws.cloudwatch.put_metric_alarm(**alarm)
        print(f"alarm:    {'updated' if existing else 'created'} {name}: {alarm['AlarmDescription']}")
    state.add("alarms", name)
    return name


def same_alarm(held: dict[str, Any], asked: dict[str, Any]) -> bool:
    """Whether CloudWatch's alarm has every setting asked for (dimensions in any order)."""

    def dimensions(alarm: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((item["Name"], item["Value"]) for item in alarm.get("Dimensions", []))

    settings = (key for key in asked if key != "Dimensions")
    return dimensions(held) == dimensions(asked) and all(held.get(key) == asked[key] for key in settings)


def execution_timeout(args: argparse.Namespace) -> int:
    """Every wait of the deployment (between shifts, and after the last) plus time for the new fleet."""
    shifts = 2 if args.canary is not None else math.ceil(100 / args.linear)
    return shifts * args.wait_interval + PROVISIONING_ALLOWANCE


def deployment_config(args: argparse.Namespace, alarms: list[str]) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: blue/green, canary or linear, rolled back by `alarms`."""
    if args.canary is not None:
        routing = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": args.canary}}
    else:
        routing = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": args.linear}}
    routing["WaitIntervalInSeconds"] = args.wait_interval
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            # The alarms can still roll back while the old fleet is kept after the last shift.
            "TerminationWaitInSeconds": args.wait_interval,
            "MaximumExecutionTimeoutInSeconds": max(600, execution_timeout(args)),
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarms]},
    }


def describe_deployment(config: dict[str, Any]) -> str:
    policy = config["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    wait = routing["WaitIntervalInSeconds"]
    if routing["Type"] == "CANARY":
        shifts = f"canary {routing['CanarySize']['Value']} % of capacity, the rest {wait} s later"
    else:
        shifts = f"linear, {routing['LinearStepSize']['Value']} % of capacity more every {wait} s"
    alarms = ", ".join(alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"])
    return (
        f"blue/green, {shifts}; the old fleet kept {policy['TerminationWaitInSeconds']} s after; rolls back on {alarms}"
    )


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


# ---------------------------------------------------------------------------------------------- autoscale


def derived_target(benchmark: Path, safety_factor: float) -> tuple[float, list[str]]:
    """(invocations per instance per minute, the lines that say how) from the serving benchmark's results."""
    try:
        results = read_json(benchmark)
        row = next(item for item in results["rows"] if item["case"] == THROUGHPUT_CASE)
        reviews_per_second, requests_per_second = float(row["value"]), float(row["requests/s"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        raise DeployError(
            f"--benchmark {benchmark}: no '{THROUGHPUT_CASE}' row with reviews/s and requests/s "
            "(make bench-serve writes it), or give --target"
        ) from None
    if row.get("unit") != "reviews/s" or not reviews_per_second > 0:
        raise DeployError(f"--benchmark {benchmark}: '{THROUGHPUT_CASE}' is {row.get('unit')!r}, not reviews/s")
    # Each wrk request carried one review (reviews/s == requests/s): one review is one invocation.
    if abs(reviews_per_second - requests_per_second) > 0.05 * requests_per_second:
        raise DeployError(
            f"--benchmark {benchmark}: {reviews_per_second:g} reviews/s over {requests_per_second:g} requests/s "
            "is not one review per request, so it does not count invocations; give --target"
        )
    machine = results.get("machine", {})
    per_minute = requests_per_second * 60
    target = math.floor(per_minute * safety_factor)
    shown = benchmark.resolve().relative_to(REPOSITORY) if benchmark.resolve().is_relative_to(REPOSITORY) else benchmark
    lines = [
        f"measured: {shown} ({str(results.get('date', '?'))[:10]}, {machine.get('cpu', '?')}, "
        f"{machine.get('cpu_capability', '?')}): one `serve` on {machine.get('cores', '?')} cores, as one instance "
        "runs it (ml.m5.large, deploy's default, has 2 vCPUs; wrk shared the cores, so this is a floor)",
        f"measured: '{THROUGHPUT_CASE}': {reviews_per_second:,.1f} reviews/s from {results.get('clients', '?')} "
        f"clients, one {results.get('review_words', '?')}-word review per request ({row.get('note', '')})",
        f"per min:  one review per request is one invocation: {requests_per_second:,.1f}/s x 60 = "
        f"{per_minute:,.0f} invocations per minute per instance ({INVOCATIONS_METRIC} counts per minute)",
        f"target:   x safety factor {safety_factor:g} = {target:,} invocations per minute per instance "
        "(room for a slower CPU and for the minutes a scale-out takes; --safety-factor, --target)",
    ]
    return target, lines


def derived_latency_ms(benchmark: Path) -> float:
    """The rollback alarm's default p99 model latency in ms: LATENCY_HEADROOM x the benchmark's saturated p99."""
    try:
        row = next(item for item in read_json(benchmark)["rows"] if item["case"] == THROUGHPUT_CASE)
        p99_ms = float(row["p99_ms"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        raise DeployError(
            f"{benchmark}: no '{THROUGHPUT_CASE}' row with p99_ms (make bench-serve-avx2 writes it), "
            "or give --max-latency-ms"
        ) from None
    if not p99_ms > 0:
        raise DeployError(f"{benchmark}: '{THROUGHPUT_CASE}' has a p99 of {p99_ms:g} ms; give --max-latency-ms")
    return float(math.ceil(LATENCY_HEADROOM * p99_ms))


def autoscale(args: argparse.Namespace, aws: Aws, state: State) -> None:
    """A scalable target on the variant's instance count and a target-tracking policy on its invocations."""
    if args.target is None:
        target, derivation = derived_target(args.benchmark, args.safety_factor)
        for line in derivation if args.explain else derivation[-1:]:
            print(line)
    else:
        target = args.target
        print(f"target:   {target:,g} invocations per minute per instance (--target)")
    if args.explain:
        return
    endpoint = args.endpoint or args.name
    resource = f"endpoint/{endpoint}/variant/{VARIANT}"
    check_instance_variant(aws, endpoint)
    register_scalable_target(aws, state, resource, args.min_instances, args.max_instances)
    put_target_tracking_policy(aws, state, resource, f"{endpoint}-invocations", scaling_policy(args, target))


def check_instance_variant(aws: Aws, endpoint: str) -> None:
    """DeployError unless the endpoint exists and its variant runs on instances (serverless scales itself)."""
    described = describe(aws.sagemaker.describe_endpoint, EndpointName=endpoint)
    if described is None:
        raise DeployError(f"endpoint {endpoint} does not exist: create it with `deploy`")
    if described["EndpointStatus"] != "InService":
        raise DeployError(
            f"endpoint {endpoint} is {described['EndpointStatus']}, not InService: autoscale it once it serves "
            "(`deploy --wait` waits for that)"
        )
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = {variant["VariantName"]: variant for variant in config["ProductionVariants"]}
    if VARIANT not in variants:
        raise DeployError(f"endpoint {endpoint} has no variant {VARIANT} (it has {', '.join(variants)})")
    if "ServerlessConfig" in variants[VARIANT]:
        raise DeployError(f"endpoint {endpoint} is serverless: it scales by itself up to its max concurrency")


def register_scalable_target(aws: Aws, state: State, resource: str, minimum: int, maximum: int) -> None:
    existing = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]
    if existing and (existing[0]["MinCapacity"], existing[0]["MaxCapacity"]) == (minimum, maximum):
        print(f"target:   {resource} already scales {minimum}-{maximum} instances: nothing to do")
    else:
        aws.autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=minimum,
            MaxCapacity=maximum,
        )
        print(f"target:   {'updated' if existing else 'registered'} {resource}: {minimum}-{maximum} instances")
    state.add("scalable_targets", resource)


def scaling_policy(args: argparse.Namespace, target: float) -> dict[str, Any]:
    """TargetTrackingScalingPolicyConfiguration: keep each instance near `target` invocations a minute."""
    return {
        "TargetValue": float(target),
        "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
        "ScaleInCooldown": args.scale_in_cooldown,
        "ScaleOutCooldown": args.scale_out_cooldown,
    }


def put_target_tracking_policy(aws: Aws, state: State, resource: str, name: str, policy: dict[str, Any]) -> None:
    existing = aws.autoscaling.describe_scaling_policies(
        PolicyNames=[name], ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION
    )["ScalingPolicies"]
    held = existing[0].get("TargetTrackingScalingPolicyConfiguration") if existing else None
    summary = (
        f"{policy['TargetValue']:,g} invocations per instance per minute, "
        f"cool-downs in {policy['ScaleInCooldown']} s / out {policy['ScaleOutCooldown']} s"
    )
    if held is not None and all(held.get(key) == value for key, value in policy.items()):
        print(f"policy:   {name} already tracks {summary}: nothing to do")
    else:
        aws.autoscaling.put_scaling_policy(
            PolicyName=name,
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=policy,
        )
        print(f"policy:   {'updated' if existing else 'created'} {name}: {summary}")
    state.add("scaling_policies", {"PolicyName": name, "ResourceId": resource})


# ---------------------------------------------------------------------------------------------- teardown


def teardown(aws: Aws, state: State) -> None:
    """Delete the recorded scaling policies and targets, alarms, endpoints, then their configs, then the
    models; ones already gone are skipped."""
    if not state.path.exists():
        print(f"teardown: no state file at {state.path}: nothing recorded, nothing deleted")
        return
    steps = (
        # Autoscaling first: a variant must leave Application Auto Scaling before its endpoint goes.
        ("scaling_policies", "policy", lambda p: delete_scaling_policy(aws, p)),
        ("scalable_targets", "target", lambda r: deregister_scalable_target(aws, r)),
        ("alarms", "alarm", lambda n: delete_alarm(aws, n)),
        ("endpoints", "endpoint", lambda n: aws.sagemaker.delete_endpoint(EndpointName=n)),
        ("endpoint_configs", "config", lambda n: aws.sagemaker.delete_endpoint_config(EndpointConfigName=n)),
        ("models", "model", lambda n: aws.sagemaker.delete_model(ModelName=n)),
    )
    deleted = 0
    for kind, label, delete in steps:
        for name in state.names(kind):
            shown = name["PolicyName"] if isinstance(name, dict) else name
            try:
                gone = delete(name) is False  # CloudWatch's answer for a missing alarm; the others raise
            except botocore.exceptions.ClientError as error:
                if not is_missing(error):
                    raise
                gone = True
            if gone:
                print(f"teardown: {label} {shown} already gone")
            else:
                print(f"teardown: deleted {label} {shown}")
                deleted += 1
            state.remove(kind, name)
    print(f"teardown: {deleted} deleted; training and transform jobs are kept (SageMaker keeps their records)")


def delete_scaling_policy(aws: Aws, policy: dict[str, str]) -> None:
    aws.autoscaling.delete_scaling_policy(
        PolicyName=policy["PolicyName"],
        ServiceNamespace="sagemaker",
        ResourceId=policy["ResourceId"],
        ScalableDimension=SCALABLE_DIMENSION,
    )


def delete_alarm(aws: Aws, name: str) -> bool:
    """False when no such alarm exists (DeleteAlarms does not say)."""
    if not aws.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
        return False
    aws.cloudwatch.delete_alarms(AlarmNames=[name])
    return True


def deregister_scalable_target(aws: Aws, resource: str) -> None:
    aws.autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION
    )


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
