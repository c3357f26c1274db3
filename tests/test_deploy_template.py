"""deploy/template.yaml: cfn-lint finds nothing, and the API, relay, page and permissions are the ones we mean."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from deploy.package_relay import relay_key, relay_zip, upload
from tests.conftest import AWS_TEST_ENVIRONMENT, REPOSITORY, free_port
from tests.stack import start_gateway, stop

TEMPLATE = REPOSITORY / "deploy" / "template.yaml"
HANDLER = REPOSITORY / "lambda" / "handler.py"
GATEWAY = REPOSITORY / "local_test" / "gateway.py"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
API_GATEWAY_TIMEOUT_SECONDS = 29
ENDPOINT_ARN = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointName}"
PAGE_ORIGIN = {"Fn::Sub": "https://${PageDistribution.DomainName}"}


def load_template() -> dict[str, Any]:
    """The template with CloudFormation's short tags (!Ref, !Sub, !GetAtt) read as their long forms."""
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [resource["Properties"] for resource in template["Resources"].values() if resource["Type"] == kind]


def cfn_lint(path: Path) -> list[dict[str, Any]]:
    # cfn-lint reads its bundled resource specifications: no network needed.
    result = subprocess.run([str(CFN_LINT), "--format", "json", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # bit 1 would be a crash
    return json.loads(result.stdout)


def test_cfn_lint_finds_nothing() -> None:
    assert cfn_lint(TEMPLATE) == []


@pytest.mark.parametrize(
    ("correct", "planted", "rule"),
    [
        ("Runtime: python3.12", "Runtime: python2.7", "E2533"),  # a runtime Lambda no longer takes
        ("ViewerProtocolPolicy: redirect-to-https", "ViewerProtocolPolicy: https-please", "E3030"),  # no such policy
        ("SigningProtocol: sigv4", "SigningProtocol: sigv2", "E3031"),  # OAC signs with SigV4 only
        ("PageOriginAccessControl.Id", "PageOriginAccessControl.Arn", "E1010"),  # an attribute OAC does not have
    ],
)
def test_cfn_lint_is_really_checking(tmp_path: Path, correct: str, planted: str, rule: str) -> None:
    text = TEMPLATE.read_text()
    assert text.count(correct) == 1
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace(correct, planted))
    assert [finding["Rule"]["Id"] for finding in cfn_lint(broken)] == [rule]


def test_api_gateways_own_cors_naming_the_page_would_be_a_circular_dependency(tmp_path: Path) -> None:
    """Why the relay answers CORS: the API's CorsConfiguration naming the distribution, whose headers policy names
    the API, is a cycle CloudFormation refuses (cfn-lint's E3004 on each of the three resources)."""
    text = TEMPLATE.read_text()
    assert text.count("      ProtocolType: HTTP\n") == 1
    cors = '      CorsConfiguration:\n        AllowOrigins: [!Sub "https://${PageDistribution.DomainName}"]\n'
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace("      ProtocolType: HTTP\n", "      ProtocolType: HTTP\n" + cors))
    assert [finding["Rule"]["Id"] for finding in cfn_lint(broken)] == ["E3004"] * 3


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
        "ALLOWED_ORIGIN": {"Fn::If": ["CustomOrigin", {"Ref": "AllowedOrigin"}, PAGE_ORIGIN]},
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
    routes = resources_of(template, "AWS::ApiGatewayV2::Route")
    [integration] = resources_of(template, "AWS::ApiGatewayV2::Integration")
    # POST for reviews, OPTIONS for the CORS preflight (the relay answers it), both on one path.
    assert sorted(route["RouteKey"] for route in routes) == ["OPTIONS /predict", "POST /predict"]
    path = "/predict"
    assert set(re.findall(r'path [!=]= "(/[^"]*)"', GATEWAY.read_text())) == {path}
    assert all(route["Target"] == {"Fn::Sub": "integrations/${RelayIntegration}"} for route in routes)
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["RelayFunction", "Arn"]}
    assert integration["PayloadFormatVersion"] in ("1.0", "2.0")  # the handler takes both
    permissions = resources_of(template, "AWS::Lambda::Permission")
    assert all(permission["Principal"] == "apigateway.amazonaws.com" for permission in permissions)
    assert all(permission["FunctionName"] == {"Ref": "RelayFunction"} for permission in permissions)
    assert all(permission["Action"] == "lambda:InvokeFunction" for permission in permissions)
    api_arn = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}"
    # Each of this API's routes, in any stage, and nothing else.
    assert sorted(permission["SourceArn"]["Fn::Sub"] for permission in permissions) == [
        f"{api_arn}/*/OPTIONS{path}",
        f"{api_arn}/*/POST{path}",
    ]
    assert template["Outputs"]["PredictUrl"]["Value"] == {"Fn::Sub": f"${{HttpApi.ApiEndpoint}}{path}"}


def test_cors_admits_one_origin_the_page_unless_another_is_given(template: dict[str, Any]) -> None:
    """The relay sends Access-Control-Allow-Origin (its ALLOWED_ORIGIN) on every answer and the preflight; API
    Gateway's own CORS is off, since it would override the relay's and would need the distribution's domain."""
    [api] = resources_of(template, "AWS::ApiGatewayV2::Api")
    assert api["ProtocolType"] == "HTTP"
    assert "CorsConfiguration" not in api
    assert template["Conditions"]["CustomOrigin"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AllowedOrigin"}, ""]}]}
    assert template["Parameters"]["AllowedOrigin"]["Default"] == ""
    origin_pattern = template["Parameters"]["AllowedOrigin"]["AllowedPattern"]
    for accepted in ("", "https://reviews.example.com", "http://localhost:8000"):
        assert re.fullmatch(origin_pattern, accepted)
    for refused in ("*", "https://reviews.example.com/", "reviews.example.com", "https://a.com, https://b.com", " "):
        assert not re.fullmatch(origin_pattern, refused)
    handler = HANDLER.read_text()
    assert 'headers["Access-Control-Allow-Origin"] = origin' in handler and 'if method == "OPTIONS"' in handler

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
    """moto's CloudFormation has no ApiGatewayV2 and no CloudFront, so the API, its permissions, the page and the
    URL outputs are left out (a custom AllowedOrigin, so the relay needs no distribution)."""
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
        if not resource["Type"].startswith(("AWS::ApiGatewayV2::", "AWS::CloudFront::", "AWS::S3::"))
        and resource["Type"] != "AWS::Lambda::Permission"
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


# ---------------------------------------------------------------------------------------------- the page


def page_resource(template: dict[str, Any], kind: str) -> dict[str, Any]:
    [properties] = resources_of(template, kind)
    return properties


def test_the_page_bucket_is_private_encrypted_and_without_acls(template: dict[str, Any]) -> None:
    bucket = page_resource(template, "AWS::S3::Bucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert "WebsiteConfiguration" not in bucket and "AccessControl" not in bucket  # no public website endpoint


def test_the_bucket_policy_lets_this_distribution_read_objects_and_nothing_else(template: dict[str, Any]) -> None:
    policy = page_resource(template, "AWS::S3::BucketPolicy")
    assert policy["Bucket"] == {"Ref": "PageBucket"}
    statements = policy["PolicyDocument"]["Statement"]
    allowed = [statement for statement in statements if statement["Effect"] == "Allow"]
    distribution_arn = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${PageDistribution}"
    assert [{key: value for key, value in statement.items() if key != "Sid"} for statement in allowed] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",  # not ListBucket: a missing page is a 403, not a listing
            "Resource": {"Fn::Sub": "${PageBucket.Arn}/*"},
            "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": distribution_arn}}},
        }
    ]
    # The rest only takes away: any request to the bucket without TLS is refused.
    denied = [statement for statement in statements if statement["Effect"] != "Allow"]
    assert [statement["Effect"] for statement in denied] == ["Deny"]
    assert denied[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert denied[0]["Principal"] == "*" and denied[0]["Action"] == "s3:*"


def test_cloudfront_reads_the_bucket_through_origin_access_control_over_https_only(template: dict[str, Any]) -> None:
    control = page_resource(template, "AWS::CloudFront::OriginAccessControl")["OriginAccessControlConfig"]
    assert (control["OriginAccessControlOriginType"], control["SigningBehavior"], control["SigningProtocol"]) == (
        "s3", "always", "sigv4",
    )  # fmt: skip
    assert not resources_of(template, "AWS::CloudFront::CloudFrontOriginAccessIdentity")  # not the legacy OAI
    config = page_resource(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["PageBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["PageOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["DefaultRootObject"] == "index.html"
    behaviors = [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]
    for behavior in behaviors:
        assert behavior["TargetOriginId"] == origin["Id"]
        assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
        assert behavior["AllowedMethods"] == ["GET", "HEAD"]  # nothing can be written through CloudFront
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": "PageHeadersPolicy"}
    outputs = template["Outputs"]
    assert outputs["PageUrl"]["Value"] == {"Fn::Sub": "https://${PageDistribution.DomainName}/"}
    assert outputs["PageBucketName"]["Value"] == {"Ref": "PageBucket"}
    assert outputs["PageDistributionId"]["Value"] == {"Ref": "PageDistribution"}


def content_security_policy(template: dict[str, Any]) -> dict[str, list[str]]:
    """The page's CSP as {directive: sources}, the API's origin left as ${HttpApi.ApiEndpoint}."""
    policy = page_resource(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    text = policy["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    directives = [part.split() for part in text.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def test_the_pages_csp_allows_its_own_files_and_this_api_only(template: dict[str, Any]) -> None:
    csp = content_security_policy(template)
    assert csp["default-src"] == ["'none'"]  # anything not named below (fonts, frames, workers...) is refused
    assert csp["connect-src"] == ["'self'", "${HttpApi.ApiEndpoint}"]  # the API's origin: https://<id>.execute-api...
    for directive in ("script-src", "style-src", "img-src"):
        assert csp[directive] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    every_source = [source for sources in csp.values() for source in sources]
    assert not [source for source in every_source if "unsafe" in source or "*" in source or source.endswith(":")]


def test_the_headers_policy_sends_nosniff_deny_hsts_and_no_referrer(template: dict[str, Any]) -> None:
    policy = page_resource(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    assert all(header["Override"] is True for header in security.values())  # whatever S3 sent, these win
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert "ContentTypeOptions" in security  # X-Content-Type-Options: nosniff, CloudFront's only value


def policy_headers(template: dict[str, Any], api_origin: str) -> dict[str, str]:
    """The headers CloudFront sends for the template's response-headers policy, the API being at `api_origin`."""
    policy = page_resource(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    security = policy["SecurityHeadersConfig"]
    csp = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    hsts = security["StrictTransportSecurity"]
    hsts_value = f"max-age={hsts['AccessControlMaxAgeSec']}"
    hsts_value += "; includeSubDomains" if hsts["IncludeSubdomains"] else ""
    hsts_value += "; preload" if hsts["Preload"] else ""
    assert set(security) == {
        "ContentSecurityPolicy", "ContentTypeOptions", "FrameOptions", "StrictTransportSecurity", "ReferrerPolicy",
    }  # fmt: skip
    return {
        "Content-Security-Policy": csp.replace("${HttpApi.ApiEndpoint}", api_origin),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": security["FrameOptions"]["FrameOption"],
        "Strict-Transport-Security": hsts_value,
        "Referrer-Policy": security["ReferrerPolicy"]["ReferrerPolicy"],
    }


def test_the_local_gateway_sends_the_policys_headers(template: dict[str, Any], tmp_path: Path) -> None:
    """local_test/gateway.py serves the page as CloudFront would: on every file and on a missing one."""
    gateway = start_gateway(tmp_path, f"http://127.0.0.1:{free_port()}")  # the relay is not needed for files
    try:
        expected = policy_headers(template, gateway.url)  # locally the API is the gateway's own POST /predict
        for path in ("/", "/app.js", "/style.css", "/nowhere.png"):
            try:
                response = urllib.request.urlopen(f"{gateway.url}{path}", timeout=10)
            except urllib.error.HTTPError as error:
                response = error
            with response:
                sent = {name: response.headers[name] for name in expected}
            assert sent == expected, path
    finally:
        assert stop(gateway) == 0
