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

# The entry point: arguments and main. Each stage lives in deploy/stages/ (see deploy/README.md); the
# stages never import this file, so running it as a script loads no second copy of them.

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import boto3
import botocore.exceptions

if not __package__:  # run as a script (python deploy/sagemaker.py): deploy.stages from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.stages.autoscaling import SAFETY_FACTOR, SERVE_RESULTS, THROUGHPUT_CASE, autoscale
from deploy.stages.aws import POLL_SECONDS, REPOSITORY, Aws, DeployError, State, split_s3, wait_for
from deploy.stages.batch import batch
from deploy.stages.endpoints import (
    ALARM_WINDOW,
    CANARY_PERCENT,
    INSTANCE_TYPE,
    LATENCY_HEADROOM,
    LINEAR_PERCENT,
    MAX_EXECUTION_TIMEOUT,
    SERVERLESS_MAX_CONCURRENCY,
    SERVERLESS_MEMORY_MB,
    WAIT_INTERVAL,
    deploy,
    derived_latency_ms,
    execution_timeout,
    model_accuracy,
    update,
)
from deploy.stages.teardown import teardown
from deploy.stages.training import DISTRIBUTIONS, train
from sentiment.errors import SentimentError

# What tests and other callers import from here; each is defined in deploy/stages/.
__all__ = ["DeployError", "derived_latency_ms", "main", "model_accuracy", "wait_for"]

DEFAULT_STATE = REPOSITORY / "build" / "deploy-state.json"


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


if __name__ == "__main__":
    sys.exit(main())
