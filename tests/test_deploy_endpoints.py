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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.sagemaker import main
from tests.conftest import REPOSITORY
from tests.test_deploy_sagemaker import REGION, Cloud, deploy_args, relay_update_endpoint

SERVE_RESULTS = REPOSITORY / "benchmarks" / "results" / "serve.json"
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


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["autoscale"], "--max N is needed"),
        (["autoscale", "--min", "0", "--max", "2"], "--min must be at least 1"),
        (["autoscale", "--min", "3", "--max", "2"], "--max (2) must be at least --min (3)"),
        (["autoscale", "--max", "2", "--target", "0"], "--target must be a positive number"),
        (["autoscale", "--max", "2", "--safety-factor", "1.5"], "--safety-factor must be in (0, 1]"),
        (["autoscale", "--max", "2", "--scale-in-cooldown", "-1"], "--scale-in-cooldown must be 0 or more"),
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
