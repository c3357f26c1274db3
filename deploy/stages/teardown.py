"""The `teardown` stage: delete what the state file records (scaling policies and targets, alarms,
endpoints, endpoint configs, models), in that order, skipping what is already gone."""

from __future__ import annotations

import botocore.exceptions

from deploy.stages.autoscaling import SCALABLE_DIMENSION
from deploy.stages.aws import Aws, State, is_missing


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
