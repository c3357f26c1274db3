"""deploy/template.yaml: cfn-lint finds nothing, and the API, relay and permissions are the ones we mean."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from deploy.package_relay import relay_key, relay_zip, upload
from tests.conftest import AWS_TEST_ENVIRONMENT, REPOSITORY

TEMPLATE = REPOSITORY / "deploy" / "template.yaml"
HANDLER = REPOSITORY / "lambda" / "handler.py"
GATEWAY = REPOSITORY / "local_test" / "gateway.py"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
API_GATEWAY_TIMEOUT_SECONDS = 29
ENDPOINT_ARN = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointName}"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template with CloudFormation's short tags (!Ref, !Sub, !GetAtt) read as their long forms."""
    return cfn_yaml.load(str(TEMPLATE))


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [resource["Properties"] for resource in template["Resources"].values() if resource["Type"] == kind]


def cfn_lint(path: Path) -> list[dict[str, Any]]:
    # cfn-lint reads its bundled resource specifications: no network needed.
    result = subprocess.run([str(CFN_LINT), "--format", "json", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # bit 1 would be a crash
    return json.loads(result.stdout)


def test_cfn_lint_finds_nothing() -> None:
    assert cfn_lint(TEMPLATE) == []


def test_cfn_lint_is_really_checking(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("Runtime: python3.12", "Runtime: python2.7"))
    assert [finding["Rule"]["Id"] for finding in cfn_lint(broken)] == ["E2533"]  # a runtime Lambda no longer takes


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_relay_may_invoke_one_endpoint_and_write_its_own_logs_only(template: dict[str, Any]) -> None:
    [role] = resources_of(template, "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    granted = {(action, json.dumps(statement["Resource"])) for statement in statements(role)
               for action in as_list(statement["Action"])}  # fmt: skip
    assert all(statement["Effect"] == "Allow" and "Condition" not in statement for statement in statements(role))
    log_group = json.dumps({"Fn::GetAtt": ["RelayLogGroup", "Arn"]})
    assert granted == {
        ("sagemaker:InvokeEndpoint", json.dumps({"Fn::Sub": ENDPOINT_ARN})),
        ("logs:CreateLogStream", log_group),
        ("logs:PutLogEvents", log_group),
    }
    [function] = resources_of(template, "AWS::Lambda::Function")
    assert function["Role"] == {"Fn::GetAtt": ["RelayRole", "Arn"]}
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "RelayLogGroup"}
    [log_group_properties] = resources_of(template, "AWS::Logs::LogGroup")
    assert log_group_properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize(
    ("name", "accepted"),
    [("imdb-sentiment", True), ("a", True), ("model-2-prod", True), ("IMDb-Sentiment", False),
     ("-leading", False), ("trailing-", False), ("under_score", False), ("x" * 64, False)],
)  # fmt: skip
def test_endpoint_names_are_lower_case_like_sagemakers_arns(
    template: dict[str, Any], name: str, accepted: bool
) -> None:
    pattern = template["Parameters"]["EndpointName"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, name)) is accepted


def handler_environment() -> set[str]:
    """The variables lambda/handler.py reads with os.environ.get(...) or os.environ[...]."""
    names = set()
    for node in ast.walk(ast.parse(HANDLER.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.get":
            names.add(ast.literal_eval(node.args[0]))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.add(ast.literal_eval(node.slice))
    return names


def test_the_functions_environment_is_what_the_handler_reads(template: dict[str, Any]) -> None:
    [function] = resources_of(template, "AWS::Lambda::Function")
    variables = function["Environment"]["Variables"]
    assert set(variables) == handler_environment() == {
        "ENDPOINT_NAME", "ALLOWED_ORIGIN", "MAX_REVIEW_BYTES", "READ_TIMEOUT_SECONDS",
    }  # fmt: skip
    assert variables == {
        "ENDPOINT_NAME": {"Ref": "EndpointName"},
        "ALLOWED_ORIGIN": {"Ref": "AllowedOrigin"},
        "MAX_REVIEW_BYTES": {"Ref": "MaxReviewBytes"},
        "READ_TIMEOUT_SECONDS": {"Ref": "ReadTimeoutSeconds"},
    }
    assert function["Handler"] == "handler.handler" and function["Runtime"] in ("python3.12", "python3.13")
    assert function["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    handler_default = re.search(r"DEFAULT_MAX_REVIEW_BYTES = ([0-9_]+)", HANDLER.read_text()).group(1)
    assert template["Parameters"]["MaxReviewBytes"]["Default"] == int(handler_default)


def test_two_tries_fit_the_function_and_the_function_fits_api_gateway(template: dict[str, Any]) -> None:
    [function] = resources_of(template, "AWS::Lambda::Function")
    [integration] = resources_of(template, "AWS::ApiGatewayV2::Integration")
    read_timeout = template["Parameters"]["ReadTimeoutSeconds"]
    assert 2 * read_timeout["MaxValue"] < function["Timeout"] < API_GATEWAY_TIMEOUT_SECONDS
    assert function["Timeout"] * 1000 < integration["TimeoutInMillis"] <= 30_000
    handler_default = re.search(r"DEFAULT_READ_TIMEOUT_SECONDS = ([0-9.]+)", HANDLER.read_text()).group(1)
    assert read_timeout["Default"] == float(handler_default)


def test_post_predict_reaches_the_relay_as_in_the_local_gateway(template: dict[str, Any]) -> None:
    [route] = resources_of(template, "AWS::ApiGatewayV2::Route")
    [integration] = resources_of(template, "AWS::ApiGatewayV2::Integration")
    method, path = route["RouteKey"].split(" ")
    assert set(re.findall(r'path [!=]= "(/[^"]*)"', GATEWAY.read_text())) == {path}
    assert method == "POST"
    assert route["Target"] == {"Fn::Sub": "integrations/${RelayIntegration}"}
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["RelayFunction", "Arn"]}
    assert integration["PayloadFormatVersion"] in ("1.0", "2.0")  # the handler takes both
    [permission] = resources_of(template, "AWS::Lambda::Permission")
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": "RelayFunction"}
    api_arn = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}"
    assert permission["SourceArn"] == {"Fn::Sub": f"{api_arn}/*/{method}{path}"}  # this API's route, any stage
    assert template["Outputs"]["PredictUrl"]["Value"] == {"Fn::Sub": f"${{HttpApi.ApiEndpoint}}{path}"}


def test_cors_admits_the_allowed_origin_only_and_the_stage_is_throttled(template: dict[str, Any]) -> None:
    [api] = resources_of(template, "AWS::ApiGatewayV2::Api")
    assert api["ProtocolType"] == "HTTP"
    cors = api["CorsConfiguration"]
    assert cors["AllowOrigins"] == [{"Ref": "AllowedOrigin"}]
    assert set(cors["AllowMethods"]) == {"POST", "OPTIONS"}
    assert [header.lower() for header in cors["AllowHeaders"]] == ["content-type"]
    origin_pattern = template["Parameters"]["AllowedOrigin"]["AllowedPattern"]
    assert re.fullmatch(origin_pattern, "https://reviews.example.com")
    assert re.fullmatch(origin_pattern, "http://localhost:8000")
    for refused in ("*", "https://reviews.example.com/", "reviews.example.com", "https://a.com, https://b.com"):
        assert not re.fullmatch(origin_pattern, refused)

    [stage] = resources_of(template, "AWS::ApiGatewayV2::Stage")
    assert (stage["StageName"], stage["AutoDeploy"]) == ("$default", True)
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
    }
    for name in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
        assert template["Parameters"][name]["MinValue"] >= 1


def test_every_parameter_is_constrained(template: dict[str, Any]) -> None:
    constraints = ("AllowedPattern", "AllowedValues", "MinValue", "MaxValue")
    for name, parameter in template["Parameters"].items():
        assert any(key in parameter for key in constraints), name


def test_the_relay_half_of_the_stack_creates_on_moto(
    template: dict[str, Any], moto_server: str, aws_environment: dict
) -> None:
    """moto's CloudFormation has no ApiGatewayV2, so the API, its permission and the URL outputs are left out."""
    region = AWS_TEST_ENVIRONMENT["AWS_DEFAULT_REGION"]
    s3, cloudformation, lambda_, iam, logs = (
        boto3.client(service, endpoint_url=moto_server, region_name=region)
        for service in ("s3", "cloudformation", "lambda", "iam", "logs")
    )
    stack = f"sentiment-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=stack, CreateBucketConfiguration={"LocationConstraint": region})
    package = relay_zip(HANDLER)
    key = relay_key("relay", package)
    upload(s3, stack, key, package)
    body = json.loads(json.dumps(template))
    body["Resources"] = {
        name: resource
        for name, resource in body["Resources"].items()
        if not resource["Type"].startswith("AWS::ApiGatewayV2::") and resource["Type"] != "AWS::Lambda::Permission"
    }
    body["Outputs"] = {"RelayFunctionName": body["Outputs"]["RelayFunctionName"]}
    parameters = {"AllowedOrigin": "https://reviews.example.com", "CodeBucket": stack, "CodeKey": key}
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(body),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": name, "ParameterValue": value} for name, value in parameters.items()],
    )
    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert described["StackStatus"] == "CREATE_COMPLETE"

    function = lambda_.get_function(FunctionName=f"{stack}-relay")["Configuration"]
    assert (function["Runtime"], function["Handler"], function["Timeout"]) == ("python3.12", "handler.handler", 28)
    assert {name: str(value) for name, value in function["Environment"]["Variables"].items()} == {
        "ENDPOINT_NAME": "imdb-sentiment",
        "ALLOWED_ORIGIN": "https://reviews.example.com",
        "MAX_REVIEW_BYTES": "20000",
        "READ_TIMEOUT_SECONDS": "12",
    }
    role = function["Role"].rsplit("/", 1)[1]
    # moto keeps a policy written by CloudFormation as the Python repr of its dict.
    documents = (iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                 for name in iam.list_role_policies(RoleName=role)["PolicyNames"])  # fmt: skip
    policies = [ast.literal_eval(document) if isinstance(document, str) else document for document in documents]
    invoke = [statement for policy in policies for statement in policy["Statement"] if "sagemaker" in str(statement)]
    assert invoke == [
        {
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": f"arn:aws:sagemaker:{region}:123456789012:endpoint/imdb-sentiment",
        }
    ]
    [group] = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{stack}-relay")["logGroups"]
    assert group["retentionInDays"] == 14
