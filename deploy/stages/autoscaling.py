"""The `autoscale` stage: Application Auto Scaling on the endpoint variant's instance count, with a
target-tracking policy whose target is derived from the serving benchmark's measured throughput."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from deploy.stages.aws import REPOSITORY, VARIANT, Aws, DeployError, State, describe
from sentiment.files import read_json

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
