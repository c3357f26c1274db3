"""deploy/sagemaker.py's endpoint half against moto's standalone server: autoscaling, guarded updates,
serverless variants and data capture, each checked as moto holds it.

moto 5.2.5 answers Application Auto Scaling, CloudWatch alarms, ECR and SageMaker's endpoint configs
(ServerlessConfig, DataCaptureConfig) but has no UpdateEndpoint: the relay of tests/test_deploy_sagemaker.py
answers it with moto's own Delete/CreateEndpoint, which drops DeploymentConfig, so that part is checked
as the script sent it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.sagemaker import DeployError, derived_latency_ms, main
from sentiment.contract import ServingSettings
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from sentiment.training import fit
from tests.conftest import REPOSITORY, engine_problem
from tests.test_deploy_sagemaker import (
    NEW_IMAGE,
    REGION,
    Cloud,
    deploy_args,
    flipped,
    model_tarball,
    relay_update_endpoint,
    serving,
    write_labeled,
)
from tests.test_training import SMALL, made_up

SERVE_RESULTS = REPOSITORY / "benchmarks" / "results" / "serve-avx2.json"  # autoscale's default: float32
CHANGES = ("Create", "Update", "Delete", "Put", "Register", "Deregister")


@dataclass
class Endpoints(Cloud):
    """`Cloud` that records every service's requests, with clients for the services the endpoint half uses."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.autoscaling = boto3.client("application-autoscaling", endpoint_url=self.endpoint_url, region_name=REGION)
        self.cloudwatch = boto3.client("cloudwatch", endpoint_url=self.endpoint_url, region_name=REGION)
        self.ecr = boto3.client("ecr", endpoint_url=self.endpoint_url, region_name=REGION)

    def session(self) -> boto3.Session:
        session = boto3.Session()

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append((model.name, json.loads(json.dumps(params, default=str))))

        session.events.register("provide-client-params", record)  # every service, every operation
        return session

    def changes(self) -> list[str]:
        return [operation for operation, _ in self.calls if operation.startswith(CHANGES)]

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def deployed(self, *extra: str) -> str:
        """An endpoint named `name` on a model.tar.gz moto never opens; returns its config's name."""
        model_data = self.put(f"{self.name}/model.tar.gz", b"bytes moto never opens")
        outcome = self.run("deploy", *deploy_args(model_data), *extra)
        assert outcome.code == 0, outcome.err
        return self.sagemaker.describe_endpoint(EndpointName=self.name)["EndpointConfigName"]


@pytest.fixture
def cloud(
    moto_server: str, aws_environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Endpoints:
    # moto's server lives for the whole session: unique names keep the tests apart.
    tag = uuid.uuid4().hex[:8]
    return Endpoints(moto_server, f"sentiment-{tag}", f"t{tag}", tmp_path / "state" / "deploy-state.json", capsys)


@pytest.fixture
def relayed(cloud: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoints]:
    """`cloud` with SageMaker behind the UpdateEndpoint relay; every other service straight to moto."""
    with relay_update_endpoint(cloud.endpoint_url) as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", cloud.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", relay)
        yield cloud


def expected_target(safety_factor: float = 0.5) -> float:
    """What the README states: the 'batching on' reviews/s (one review per request) x 60 x the safety factor."""
    row = next(row for row in json.loads(SERVE_RESULTS.read_text())["rows"] if row["case"] == "batching on")
    assert row["unit"] == "reviews/s" and row["value"] == row["requests/s"]
    return float(math.floor(row["value"] * 60 * safety_factor))


# ---------------------------------------------------------------------------------------------- autoscale


def test_autoscale_registers_the_variant_and_tracks_the_derived_target_once(cloud: Endpoints) -> None:
    cloud.deployed()
    resource = f"endpoint/{cloud.name}/variant/AllTraffic"
    result = cloud.run("autoscale", "--max", "4")
    assert result.code == 0, result.err
    assert f"target:   registered {resource}: 1-4 instances" in result.out
    assert f"policy:   created {cloud.name}-invocations: {expected_target():,g} invocations per instance" in result.out

    [target] = cloud.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    [policy] = cloud.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
        "ScalingPolicies"
    ]
    assert (policy["PolicyName"], policy["PolicyType"]) == (f"{cloud.name}-invocations", "TargetTrackingScaling")
    assert policy["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": expected_target(),
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": 300,
        "ScaleOutCooldown": 60,
    }
    recorded = cloud.recorded()
    assert recorded["scalable_targets"] == [resource]
    assert recorded["scaling_policies"] == [{"PolicyName": f"{cloud.name}-invocations", "ResourceId": resource}]

    cloud.calls.clear()
    again = cloud.run("autoscale", "--max", "4")
    assert again.code == 0, again.err
    assert "already scales 1-4 instances: nothing to do" in again.out and "already tracks" in again.out
    assert cloud.changes() == []
    assert cloud.recorded() == recorded

    wider = cloud.run("autoscale", "--min", "2", "--max", "6", "--target", "1200", "--scale-in-cooldown", "600")
    assert wider.code == 0, wider.err
    assert cloud.changes() == ["RegisterScalableTarget", "PutScalingPolicy"]
    [target] = cloud.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    [policy] = cloud.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
        "ScalingPolicies"
    ]
    configuration = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (configuration["TargetValue"], configuration["ScaleInCooldown"]) == (1200.0, 600)
    assert cloud.recorded() == recorded  # updated in place: nothing new to tear down


def test_autoscale_explain_prints_the_derivation_and_touches_nothing(cloud: Endpoints) -> None:
    result = cloud.run("autoscale", "--explain")
    assert result.code == 0, result.err
    rows = {row["case"]: row for row in json.loads(SERVE_RESULTS.read_text())["rows"]}
    measured = rows["batching on"]["value"]
    assert f"'batching on': {measured:,.1f} reviews/s from 64 clients, one 230-word review per request" in result.out
    assert f"{measured:,.1f}/s x 60 = {measured * 60:,.0f} invocations per minute per instance" in result.out
    assert f"x safety factor 0.5 = {expected_target():,.0f} invocations per minute per instance" in result.out
    assert cloud.calls == [] and not cloud.state.exists()

    halved = cloud.run("autoscale", "--explain", "--safety-factor", "0.25")
    assert f"x safety factor 0.25 = {expected_target(0.25):,.0f} invocations" in halved.out


def test_teardown_removes_the_policy_and_the_target_before_the_endpoint(cloud: Endpoints) -> None:
    cloud.deployed()
    resource = f"endpoint/{cloud.name}/variant/AllTraffic"
    assert cloud.run("autoscale", "--max", "3").code == 0
    # Not recorded: another variant's target, which teardown must leave alone.
    other = f"endpoint/{cloud.name}-other/variant/AllTraffic"
    cloud.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=other,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=1,
        MaxCapacity=2,
    )
    cloud.calls.clear()
    result = cloud.run("teardown")
    assert result.code == 0, result.err
    assert cloud.changes() == [
        "DeleteScalingPolicy", "DeregisterScalableTarget", "DeleteEndpoint", "DeleteEndpointConfig", "DeleteModel",
    ]  # fmt: skip
    assert f"teardown: deleted policy {cloud.name}-invocations" in result.out
    assert f"teardown: deleted target {resource}" in result.out
    held = cloud.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert resource not in [target["ResourceId"] for target in held]
    assert other in [target["ResourceId"] for target in held]
    assert (
        cloud.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
            "ScalingPolicies"
        ]
        == []
    )
    assert cloud.recorded()["scalable_targets"] == cloud.recorded()["scaling_policies"] == []
    cloud.autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=other, ScalableDimension="sagemaker:variant:DesiredInstanceCount"
    )


def test_teardown_skips_a_policy_and_target_already_gone(cloud: Endpoints) -> None:
    cloud.deployed()
    resource = f"endpoint/{cloud.name}/variant/AllTraffic"
    assert cloud.run("autoscale", "--max", "2").code == 0
    cloud.autoscaling.delete_scaling_policy(
        PolicyName=f"{cloud.name}-invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
    )
    cloud.autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension="sagemaker:variant:DesiredInstanceCount"
    )
    result = cloud.run("teardown")
    assert result.code == 0, result.err
    assert f"teardown: policy {cloud.name}-invocations already gone" in result.out
    assert f"teardown: target {resource} already gone" in result.out
    assert "teardown: 3 deleted" in result.out  # the endpoint, its config and its model


def test_an_update_keeps_the_instance_type_and_the_count_autoscaling_reached(relayed: Endpoints) -> None:
    cloud = relayed
    cloud.deployed("--instance-type", "ml.c5.large", "--instance-count", "2")
    assert cloud.run("autoscale", "--max", "4", endpoint_url=False).code == 0
    # What Application Auto Scaling does when it scales out: the variant's desired count, through SageMaker.
    cloud.sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=cloud.name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}]
    )
    second = cloud.put("v2/model.tar.gz", b"v2")
    update = ["update", *deploy_args(second), "--endpoint", cloud.name]
    result = cloud.run(*update, endpoint_url=False)
    assert result.code == 0, result.err
    config, _ = serving(cloud)
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 3)
    assert f"({3} x ml.c5.large)" in result.out

    third = cloud.put("v3/model.tar.gz", b"v3")
    cloud.calls.clear()
    moved = cloud.run("update", *deploy_args(third), "--endpoint", cloud.name, "--instance-type", "ml.m5.large",
                      endpoint_url=False)  # fmt: skip
    assert moved.code == 1
    assert moved.err == (
        f"error: endpoint/{cloud.name}/variant/AllTraffic is autoscaled: SageMaker refuses to change its instance "
        "type (ml.c5.large -> ml.m5.large); keep the type, or delete its scaling policy and deregister it first\n"
    )
    assert cloud.changes() == []


# ---------------------------------------------------------------------------------------------- guarded update


def rollback_alarms(cloud: Endpoints) -> dict[str, dict[str, Any]]:
    names = [f"{cloud.name}-AllTraffic-5xx-errors", f"{cloud.name}-AllTraffic-model-latency"]
    return {alarm["AlarmName"]: alarm for alarm in cloud.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}


def test_a_canary_update_makes_its_alarms_and_sends_a_blue_green_deployment(relayed: Endpoints) -> None:
    cloud = relayed
    old_config = cloud.deployed()
    extra = f"{cloud.name}-page-errors"  # the operator's own alarm, rolled back on too, never deleted by teardown
    cloud.cloudwatch.put_metric_alarm(
        AlarmName=extra, MetricName="5XXError", Namespace="AWS/ApiGateway", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    second = cloud.put("v2/model.tar.gz", b"v2")
    update = ["update", *deploy_args(second, NEW_IMAGE), "--endpoint", cloud.name, "--canary", "10"]
    result = cloud.run(*update, "--wait-interval", "300", "--rollback-alarm", extra, endpoint_url=False)
    assert result.code == 0, result.err

    alarms = rollback_alarms(cloud)
    dimensions = [{"Name": "EndpointName", "Value": cloud.name}, {"Name": "VariantName", "Value": "AllTraffic"}]
    errors, latency = alarms[f"{cloud.name}-AllTraffic-5xx-errors"], alarms[f"{cloud.name}-AllTraffic-model-latency"]
    for alarm in (errors, latency):
        assert alarm["Namespace"] == "AWS/SageMaker" and alarm["Dimensions"] == dimensions
        assert (alarm["Period"], alarm["ComparisonOperator"]) == (60, "GreaterThanThreshold")
        assert alarm["TreatMissingData"] == "notBreaching"
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == ("Invocation5XXErrors", "Sum", 0.0)
    assert (errors["EvaluationPeriods"], errors["DatapointsToAlarm"]) == (1, 1)
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("ModelLatency", "p99")
    # Microseconds: twice the saturated p99 the serving benchmark measured (the file autoscale reads too).
    benchmark = json.loads(SERVE_RESULTS.read_text())
    (saturated,) = [row["p99_ms"] for row in benchmark["rows"] if row["case"] == "batching on"]
    assert latency["Threshold"] == math.ceil(2 * saturated) * 1000.0
    assert latency["Threshold"] > saturated * 1000  # a busy but healthy canary does not roll back
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (2, 2)
    assert f"alarm:    created {cloud.name}-AllTraffic-5xx-errors" in result.out

    # moto has no UpdateEndpoint and the relay drops DeploymentConfig: check it as sent.
    [sent] = cloud.sent("UpdateEndpoint")
    assert sent["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 2 * 300 + 1800,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": f"{cloud.name}-AllTraffic-5xx-errors"},
                {"AlarmName": f"{cloud.name}-AllTraffic-model-latency"},
                {"AlarmName": extra},
            ]
        },
    }
    new_config, container = serving(cloud)
    assert new_config != old_config and container["ModelDataUrl"] == second
    assert "update:   blue/green, canary 10 % of capacity, the rest 300 s later" in result.out
    assert cloud.recorded()["alarms"] == list(alarms)

    cloud.calls.clear()
    again = cloud.run(*update, endpoint_url=False)
    assert again.code == 0 and "it already serves this image and model: nothing to do" in again.out
    assert cloud.changes() == []

    # The next guarded update finds its alarms as asked and makes only the model, config and update.
    third = cloud.put("v3/model.tar.gz", b"v3")
    update = ["update", *deploy_args(third, NEW_IMAGE), "--endpoint", cloud.name, "--canary", "10"]
    later = cloud.run(*update, endpoint_url=False)
    assert later.code == 0, later.err
    assert f"alarm:    {cloud.name}-AllTraffic-5xx-errors exists as asked: nothing to do" in later.out
    assert cloud.changes() == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]

    # A threshold changed is corrected in place.
    stricter = cloud.put("v4/model.tar.gz", b"v4")
    update = ["update", *deploy_args(stricter, NEW_IMAGE), "--endpoint", cloud.name, "--canary", "10"]
    cloud.calls.clear()
    assert cloud.run(*update, "--max-latency-ms", "100", endpoint_url=False).code == 0
    assert [params["AlarmName"] for params in cloud.sent("PutMetricAlarm")] == [
        f"{cloud.name}-AllTraffic-model-latency"
    ]
    assert rollback_alarms(cloud)[f"{cloud.name}-AllTraffic-model-latency"]["Threshold"] == 100_000.0

    cloud.calls.clear()
    teardown = cloud.run("teardown", endpoint_url=False)
    assert teardown.code == 0, teardown.err
    assert cloud.sent("DeleteAlarms") == [
        {"AlarmNames": [f"{cloud.name}-AllTraffic-5xx-errors"]},
        {"AlarmNames": [f"{cloud.name}-AllTraffic-model-latency"]},
    ]
    assert rollback_alarms(cloud) == {}
    assert [alarm["AlarmName"] for alarm in cloud.cloudwatch.describe_alarms(AlarmNames=[extra])["MetricAlarms"]] == [
        extra
    ]
    cloud.cloudwatch.delete_alarms(AlarmNames=[extra])


def test_a_linear_update_shifts_in_steps_and_allows_for_every_wait(relayed: Endpoints) -> None:
    cloud = relayed
    cloud.deployed()
    second = cloud.put("v2/model.tar.gz", b"v2")
    update = ["update", *deploy_args(second), "--endpoint", cloud.name, "--linear", "25", "--wait-interval", "120"]
    result = cloud.run(*update, "--max-5xx", "3", endpoint_url=False)
    assert result.code == 0, result.err
    [sent] = cloud.sent("UpdateEndpoint")
    assert sent["DeploymentConfig"]["BlueGreenUpdatePolicy"] == {
        "TrafficRoutingConfiguration": {
            "Type": "LINEAR",
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 120,
        },
        "TerminationWaitInSeconds": 120,
        "MaximumExecutionTimeoutInSeconds": 4 * 120 + 1800,  # four shifts of 25 %, each waited on
    }
    assert rollback_alarms(cloud)[f"{cloud.name}-AllTraffic-5xx-errors"]["Threshold"] == 3.0
    assert "linear, 25 % of capacity more every 120 s" in result.out


def test_an_update_without_canary_or_linear_sends_no_deployment_config(relayed: Endpoints) -> None:
    cloud = relayed
    cloud.deployed()
    second = cloud.put("v2/model.tar.gz", b"v2")
    assert cloud.run("update", *deploy_args(second), "--endpoint", cloud.name, endpoint_url=False).code == 0
    [sent] = cloud.sent("UpdateEndpoint")
    assert "DeploymentConfig" not in sent
    assert cloud.sent("PutMetricAlarm") == [] and cloud.recorded()["alarms"] == []


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory, small_ensemble: Predictor) -> dict[str, Path]:
    """A good model and a bad one (a linear model taught the opposite labels), as model.tar.gz."""
    hp = parse_hyperparameters([*SMALL, "--model", "linear"])
    bad = fit(hp, flipped(made_up(200, 1)), flipped(made_up(60, 2)), report=lambda line: None).predictor
    folder = tmp_path_factory.mktemp("tarballs")
    return {"good": model_tarball(small_ensemble, folder / "good"), "bad": model_tarball(bad, folder / "bad")}


def test_the_labeled_check_comes_before_any_alarm(
    relayed: Endpoints, tarballs: dict[str, Path], tmp_path: Path
) -> None:
    cloud = relayed
    good = cloud.put("good/model.tar.gz", tarballs["good"].read_bytes())
    bad = cloud.put("bad/model.tar.gz", tarballs["bad"].read_bytes())
    assert cloud.run("deploy", *deploy_args(good), endpoint_url=False).code == 0
    recorded = cloud.recorded()
    labeled = write_labeled(tmp_path / "labeled.jsonl", made_up(40, 7))
    cloud.calls.clear()
    update = ["update", *deploy_args(bad), "--endpoint", cloud.name, "--canary", "20", "--labeled", str(labeled)]
    refused = cloud.run(*update, endpoint_url=False)
    assert refused.code == 1
    assert "below the current 100.00%: not updating" in refused.err
    assert cloud.changes() == [] and rollback_alarms(cloud) == {}
    assert cloud.recorded() == recorded


# ---------------------------------------------------------------------------------------------- serverless


def ecr_image(cloud: Endpoints, size: int) -> str:
    """An image pushed to moto's ECR; moto reports a manifest's config size as its imageSizeInBytes
    (AWS sums the compressed layers), so `size` is put there."""
    repository = f"{cloud.name}-repo"
    cloud.ecr.create_repository(repositoryName=repository)
    digest = "sha256:" + "0" * 64
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": size, "digest": digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": size, "digest": digest}],
    }
    cloud.ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag="v1")
    return f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{repository}:v1"


SERVERLESS = ["--serverless", "--memory-mb", "2048", "--max-concurrency", "5"]


def test_a_serverless_deploy_is_checked_and_configured_and_updates_keep_it(relayed: Endpoints) -> None:
    cloud = relayed
    image = ecr_image(cloud, 1300 * 1024**2)
    model_data = cloud.put("v1/model.tar.gz", b"v1")
    result = cloud.run("deploy", *deploy_args(model_data, image), *SERVERLESS, endpoint_url=False)
    assert result.code == 0, result.err
    assert "image:    1,300 MB (ECR's imageSizeInBytes), within serverless's 10 GB" in result.out
    assert "payload:  serverless takes bodies up to 4 MB; the container's limit (6 MB) is set to it" in result.out
    [model], [config] = cloud.recorded()["models"], cloud.recorded()["endpoint_configs"]
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    container = cloud.sagemaker.describe_model(ModelName=model)["PrimaryContainer"]
    assert container["Environment"] == {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "4"}
    # ... which the container reads as its own limit.
    assert ServingSettings.from_environment(container["Environment"]).max_payload_bytes == 4 * 1024 * 1024
    assert f"config:   created {config} (serverless, 2048 MB, at most 5 at once)" in result.out

    cloud.calls.clear()
    again = cloud.run("deploy", *deploy_args(model_data, image), *SERVERLESS, endpoint_url=False)
    assert again.code == 0 and "nothing to do" in again.out and cloud.changes() == []

    refused = cloud.run("autoscale", "--max", "3", endpoint_url=False)
    assert refused.code == 1
    assert refused.err == f"error: endpoint {cloud.name} is serverless: it scales by itself up to its max concurrency\n"
    assert cloud.changes() == []

    second = cloud.put("v2/model.tar.gz", b"v2")
    update = ["update", *deploy_args(second, image), "--endpoint", cloud.name]
    moved = cloud.run(*update, "--instance-type", "ml.c5.large", endpoint_url=False)
    assert moved.code == 1 and "is serverless: update keeps its ServerlessConfig" in moved.err
    assert cloud.changes() == []
    updated = cloud.run(*update, "--canary", "50", endpoint_url=False)
    assert updated.code == 0, updated.err
    new_config, container = serving(cloud)
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=new_config)["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert container["ModelDataUrl"] == second and container["Environment"] == {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "4"}


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (11 * 1024**3, "is 11.0 GB (ECR's imageSizeInBytes): serverless endpoints take images up to 10 GB"),
        (None, "ECR has no such image (RepositoryNotFoundException); push it with build_and_push.sh"),
    ],
)
def test_a_serverless_deploy_refuses_an_image_too_large_or_missing(
    cloud: Endpoints, size: int | None, message: str
) -> None:
    image = ecr_image(cloud, size) if size is not None else f"123456789012.dkr.ecr.{REGION}.amazonaws.com/none:v1"
    model_data = cloud.put("v1/model.tar.gz", b"v1")
    result = cloud.run("deploy", *deploy_args(model_data, image), *SERVERLESS)
    assert result.code == 1
    assert result.err.startswith(f"error: --image {image}") and message in result.err
    assert result.err.count("\n") == 1
    assert cloud.changes() == [] and not cloud.state.exists()


def test_a_serverless_deploy_reads_a_local_images_size_from_docker(cloud: Endpoints) -> None:
    problem = engine_problem()
    if problem is not None:
        pytest.skip(problem)
    image = os.environ.get("SENTIMENT_TEST_IMAGE") or "sentiment:cpu"  # CI builds it (tests/test_docker.py)
    inspected = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True)
    if inspected.returncode != 0:
        pytest.skip(f"no local image {image}")
    model_data = cloud.put("v1/model.tar.gz", b"v1")
    result = cloud.run("deploy", *deploy_args(model_data, image), *SERVERLESS)
    assert result.code == 0, result.err
    megabytes = int(inspected.stdout.decode().strip()) / 1024**2
    assert f"image:    {megabytes:,.0f} MB (the local docker image), within serverless's 10 GB" in result.out


# ---------------------------------------------------------------------------------------------- data capture


def test_capture_configures_input_and_output_as_json_lines_and_updates_keep_it(relayed: Endpoints) -> None:
    cloud = relayed
    destination = f"s3://{cloud.bucket}/capture/"
    config = cloud.deployed("--capture", "20", "--capture-s3", destination)
    expected = {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
    }
    assert cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["DataCaptureConfig"] == expected
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)

    cloud.calls.clear()
    model_data = f"s3://{cloud.bucket}/{cloud.name}/model.tar.gz"
    again = cloud.run("deploy", *deploy_args(model_data), "--capture", "20", "--capture-s3", destination)
    assert again.code == 0 and cloud.changes() == []

    second = cloud.put("v2/model.tar.gz", b"v2")
    updated = cloud.run("update", *deploy_args(second), "--endpoint", cloud.name, endpoint_url=False)
    assert updated.code == 0, updated.err
    assert f"capture:  kept from {config}" in updated.out
    new_config, _ = serving(cloud)
    assert new_config != config
    assert cloud.sagemaker.describe_endpoint_config(EndpointConfigName=new_config)["DataCaptureConfig"] == expected


def test_capture_to_a_missing_bucket_fails_and_creates_nothing(cloud: Endpoints) -> None:
    model_data = cloud.put("v1/model.tar.gz", b"v1")
    capture = ["--capture", "5", "--capture-s3", f"s3://no-such-bucket-{cloud.name}/capture/"]
    result = cloud.run("deploy", *deploy_args(model_data), *capture)
    assert result.code == 1
    assert result.err.startswith("error: --capture-s3: bucket") and result.err.count("\n") == 1
    assert cloud.changes() == [] and not cloud.state.exists()


# ---------------------------------------------------------------------------------------------- bad input


UPDATE = ["update", *deploy_args("s3://b/model.tar.gz"), "--endpoint", "e"]
DEPLOY = ["deploy", *deploy_args("s3://b/model.tar.gz")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["autoscale"], "--max N is needed"),
        (["autoscale", "--min", "0", "--max", "2"], "--min must be at least 1"),
        (["autoscale", "--min", "3", "--max", "2"], "--max (2) must be at least --min (3)"),
        (["autoscale", "--max", "2", "--target", "0"], "--target must be a positive number"),
        (["autoscale", "--max", "2", "--safety-factor", "1.5"], "--safety-factor must be in (0, 1]"),
        (["autoscale", "--max", "2", "--scale-in-cooldown", "-1"], "--scale-in-cooldown must be 0 or more"),
        ([*UPDATE, "--canary", "0"], "--canary must be 1-50"),
        ([*UPDATE, "--canary", "60"], "--canary must be 1-50"),
        ([*UPDATE, "--linear", "5"], "--linear must be 10-50"),
        ([*UPDATE, "--canary", "10", "--linear", "20"], "not allowed with argument"),
        ([*UPDATE, "--canary", "10", "--wait-interval", "60"], "--wait-interval must be 120-3600 seconds"),
        ([*UPDATE, "--wait-interval", "300"], "--wait-interval applies only with --canary PERCENT or --linear"),
        ([*UPDATE, "--rollback-alarm", "a"], "--rollback-alarm applies only with --canary PERCENT or --linear"),
        ([*UPDATE, "--canary", "10", "--max-latency-ms", "0"], "--max-latency-ms more than 0"),
        ([*UPDATE, "--linear", "10", "--wait-interval", "3600"], "over SageMaker's 28,800"),
        ([*DEPLOY, "--serverless"], "--serverless needs --memory-mb M"),
        ([*DEPLOY, "--serverless", "--memory-mb", "1500", "--max-concurrency", "5"], "--memory-mb must be one of"),
        ([*DEPLOY, "--serverless", "--memory-mb", "7168", "--max-concurrency", "5"], "--memory-mb must be one of"),
        ([*DEPLOY, "--serverless", "--memory-mb", "2048", "--max-concurrency", "0"], "--max-concurrency must be 1-200"),
        ([*DEPLOY, *SERVERLESS[:3], "--max-concurrency", "201"], "--max-concurrency must be 1-200"),
        ([*DEPLOY, *SERVERLESS, "--instance-type", "ml.c5.large"], "--serverless replaces --instance-type"),
        ([*DEPLOY, "--memory-mb", "2048"], "--memory-mb and --max-concurrency apply only with --serverless"),
        ([*DEPLOY, *SERVERLESS, "--capture", "5", "--capture-s3", "s3://b/c/"], "do not support data capture"),
        ([*DEPLOY, "--capture", "5"], "--capture PERCENT and --capture-s3 s3://bucket/prefix go together"),
        ([*DEPLOY, "--capture-s3", "s3://b/c/"], "--capture PERCENT and --capture-s3 s3://bucket/prefix go together"),
        ([*DEPLOY, "--capture", "0", "--capture-s3", "s3://b/c/"], "--capture must be 1-100"),
        ([*DEPLOY, "--capture", "101", "--capture-s3", "s3://b/c/"], "--capture must be 1-100"),
        ([*DEPLOY, "--capture", "5", "--capture-s3", "b/c/"], "--capture-s3 must be an s3://bucket/... URI"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1


def test_autoscale_needs_an_endpoint_and_a_benchmark_and_creates_nothing(cloud: Endpoints, tmp_path: Path) -> None:
    missing = cloud.run("autoscale", "--max", "2")
    assert missing.code == 1
    assert missing.err == f"error: endpoint {cloud.name} does not exist: create it with `deploy`\n"
    assert cloud.changes() == [] and not cloud.state.exists()

    cloud.deployed()
    recorded = cloud.recorded()
    cloud.calls.clear()
    other = tmp_path / "serve.json"
    other.write_text(json.dumps({"rows": [{"case": "batching off", "value": 540.6, "unit": "reviews/s"}]}))
    no_row = cloud.run("autoscale", "--max", "2", "--benchmark", str(other))
    assert no_row.code == 1
    assert f"error: --benchmark {other}: no 'batching on' row" in no_row.err
    assert cloud.calls == [] and cloud.recorded() == recorded


def test_the_latency_alarm_default_follows_the_benchmark_and_refuses_one_without_a_p99(tmp_path: Path) -> None:
    benchmark = tmp_path / "serve.json"
    benchmark.write_text(json.dumps({"rows": [{"case": "batching on", "p99_ms": 120.2, "unit": "reviews/s"}]}))
    assert derived_latency_ms(benchmark) == 241.0  # twice, rounded up to a whole millisecond
    for rows in ([{"case": "batching on", "unit": "reviews/s"}], [{"case": "batching on", "p99_ms": 0}], []):
        benchmark.write_text(json.dumps({"rows": rows}))
        with pytest.raises(DeployError, match="give --max-latency-ms"):
            derived_latency_ms(benchmark)
    with pytest.raises(DeployError, match="no 'batching on' row with p99_ms"):
        derived_latency_ms(tmp_path / "absent.json")


def test_a_missing_rollback_alarm_fails_before_anything_is_made(relayed: Endpoints) -> None:
    cloud = relayed
    cloud.deployed()
    recorded = cloud.recorded()
    second = cloud.put("v2/model.tar.gz", b"v2")
    cloud.calls.clear()
    update = ["update", *deploy_args(second), "--endpoint", cloud.name, "--canary", "10"]
    outcome = cloud.run(*update, "--rollback-alarm", f"{cloud.name}-nope", endpoint_url=False)
    assert outcome.code == 1
    assert outcome.err == f"error: --rollback-alarm {cloud.name}-nope: no such CloudWatch alarm in this region\n"
    assert cloud.changes() == [] and cloud.recorded() == recorded
