"""The `deploy` and `update` stages: model, endpoint config and endpoint (on instances or serverless, with
data capture), and updates guarded by model comparison and by blue/green rollback alarms."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import botocore.exceptions

from deploy.stages.autoscaling import SCALABLE_DIMENSION, THROUGHPUT_CASE
from deploy.stages.aws import (
    JSONLINES,
    VARIANT,
    Aws,
    DeployError,
    State,
    check_bucket,
    check_object,
    describe,
    require_status,
    split_s3,
    unique_name,
    wait_for,
)
from sentiment.contract import MAX_PAYLOAD_MB
from sentiment.files import read_json

EVALUATE = "sentiment-evaluate"  # the package's command: a model's metrics on labeled reviews, as JSON

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
