"""deploy/publish_page.py against moto's standalone server: web/'s objects, their headers, the API's URL in the
meta tag, reruns that send nothing, CloudFront invalidations, and bad options that upload nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.publish_page import main
from tests.conftest import AWS_TEST_ENVIRONMENT, REPOSITORY

SCRIPT = REPOSITORY / "deploy" / "publish_page.py"
WEB = REPOSITORY / "web"
REGION = AWS_TEST_ENVIRONMENT["AWS_DEFAULT_REGION"]
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/predict"
PAGE_FILES = {  # web/'s files and what they are served with; README.md is not part of the page
    "index.html": ("text/html; charset=utf-8", "no-cache"),
    "app.js": ("text/javascript; charset=utf-8", "no-cache"),
    "style.css": ("text/css; charset=utf-8", "no-cache"),
}


@dataclass
class Cloud:
    """One test's moto: a fresh page bucket, a CloudFront distribution, and the S3 writes sent."""

    endpoint_url: str
    bucket: str
    capsys: pytest.CaptureFixture[str]
    puts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION)
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.cloudfront = boto3.client("cloudfront", endpoint_url=self.endpoint_url, region_name=REGION)
        self.cloudformation = boto3.client("cloudformation", endpoint_url=self.endpoint_url, region_name=REGION)
        self.distribution = self.create_distribution()

    def create_distribution(self) -> dict[str, Any]:
        origin = {
            "Id": "page-bucket",
            "DomainName": f"{self.bucket}.s3.{REGION}.amazonaws.com",
            "S3OriginConfig": {"OriginAccessIdentity": ""},
        }
        config = {
            "CallerReference": self.bucket,
            "Comment": "the page",
            "Enabled": True,
            "DefaultRootObject": "index.html",
            "Origins": {"Quantity": 1, "Items": [origin]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "page-bucket",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
            },
        }
        return self.cloudfront.create_distribution(DistributionConfig=config)["Distribution"]

    def session(self) -> boto3.Session:
        """A real session whose S3 PutObject calls are recorded (not altered) on their way out."""
        session = boto3.Session()
        session.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: self.puts.append(params["Key"])
        )
        return session

    def publish(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(
            ["--bucket", self.bucket, "--endpoint-url", self.endpoint_url, "--region", REGION, *args],
            session=self.session(),
        )
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def objects(self) -> dict[str, dict[str, Any]]:
        """Each object in the bucket: its body, Content-Type and Cache-Control as S3 serves them."""
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        found = {}
        for item in listed:
            answer = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])
            found[item["Key"]] = {
                "body": answer["Body"].read(),
                "type": answer["ContentType"],
                "cache": answer.get("CacheControl"),
            }
        return found

    def invalidations(self) -> list[list[str]]:
        """The paths of each invalidation of the distribution."""
        listed = self.cloudfront.list_invalidations(DistributionId=self.distribution["Id"])["InvalidationList"]
        found = []
        for item in listed.get("Items", []):
            batch = self.cloudfront.get_invalidation(DistributionId=self.distribution["Id"], Id=item["Id"])
            found.append(sorted(batch["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]))
        return found


@pytest.fixture
def cloud(moto_server: str, aws_environment: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Iterator[Cloud]:
    yield Cloud(moto_server, f"page-{uuid.uuid4().hex[:12]}", capsys)


def meta_api(html: bytes) -> str:
    [url] = re.findall(r'<meta name="sentiment-api" content="([^"]*)">', html.decode("utf-8"))
    return url


def test_publishes_web_with_its_types_cache_headers_and_the_api_url(cloud: Cloud) -> None:
    code, out, err = cloud.publish("--api-url", API_URL)
    assert (code, err) == (0, "")
    objects = cloud.objects()
    assert {key: (item["type"], item["cache"]) for key, item in objects.items()} == PAGE_FILES
    assert meta_api(objects["index.html"]["body"]) == API_URL
    source = (WEB / "index.html").read_text(encoding="utf-8")
    expected = source.replace('name="sentiment-api" content=""', f'name="sentiment-api" content="{API_URL}"')
    assert objects["index.html"]["body"].decode("utf-8") == expected  # the tag's content, nothing else, changed
    for key in ("app.js", "style.css"):
        assert objects[key]["body"] == (WEB / key).read_bytes()
    assert cloud.puts[-1] == "index.html"  # last: a visitor never gets a page naming files not yet there
    assert f"upload:   sent s3://{cloud.bucket}/index.html" in out
    assert f"url:      s3://{cloud.bucket}/index.html" in out  # no stack or distribution: no URL to print


def test_a_rerun_uploads_nothing_and_a_change_uploads_only_what_changed(cloud: Cloud, tmp_path: Path) -> None:
    assert cloud.publish("--api-url", API_URL)[0] == 0
    before = cloud.objects()
    cloud.puts.clear()
    code, out, _ = cloud.publish("--api-url", API_URL)
    assert code == 0 and cloud.puts == []
    assert out.count("upload:   unchanged") == len(PAGE_FILES)
    assert cloud.objects() == before

    other_api = "https://xyz789.execute-api.eu-west-1.amazonaws.com/predict"
    assert cloud.publish("--api-url", other_api)[0] == 0
    assert cloud.puts == ["index.html"]
    assert meta_api(cloud.objects()["index.html"]["body"]) == other_api

    source = tmp_path / "web"
    source.mkdir()
    for key in PAGE_FILES:
        (source / key).write_bytes((WEB / key).read_bytes())
    (source / "style.css").write_bytes((WEB / "style.css").read_bytes() + b"\n/* changed */\n")
    cloud.puts.clear()
    assert cloud.publish("--api-url", other_api, "--source", str(source))[0] == 0
    assert cloud.puts == ["style.css"]


def test_only_names_that_carry_a_hash_are_cached_for_long(cloud: Cloud, tmp_path: Path) -> None:
    source = tmp_path / "web"
    source.mkdir()
    (source / "index.html").write_text('<meta name="sentiment-api" content=""><script src="app.0123abcd.js"></script>')
    (source / "app.0123abcd.js").write_text("console.log(1);")
    (source / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (source / "notes.txt").write_text("not part of the page")
    assert cloud.publish("--api-url", API_URL, "--source", str(source))[0] == 0
    assert {key: (item["type"], item["cache"]) for key, item in cloud.objects().items()} == {
        "index.html": ("text/html; charset=utf-8", "no-cache"),
        "app.0123abcd.js": ("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        "logo.svg": ("image/svg+xml", "no-cache"),
    }


def test_a_distribution_id_invalidates_what_changed_and_prints_the_pages_url(cloud: Cloud) -> None:
    distribution = cloud.distribution["Id"]
    code, out, _ = cloud.publish("--api-url", API_URL, "--distribution-id", distribution)
    assert code == 0
    assert cloud.invalidations() == [["/", "/app.js", "/index.html", "/style.css"]]  # `/` serves index.html
    assert f"url:      https://{cloud.distribution['DomainName']}/" in out
    code, out, _ = cloud.publish("--api-url", API_URL, "--distribution-id", distribution)
    assert code == 0 and len(cloud.invalidations()) == 1  # nothing changed, nothing invalidated
    assert "nothing changed: no invalidation" in out
    assert cloud.publish("--api-url", API_URL + "2", "--distribution-id", distribution)[0] == 0
    assert sorted(cloud.invalidations()) == [["/", "/app.js", "/index.html", "/style.css"], ["/", "/index.html"]]


def create_stack(cloud: Cloud, name: str, outputs: dict[str, str]) -> None:
    """A stack with deploy/template.yaml's outputs (moto's CloudFormation has no CloudFront or API Gateway V2)."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloud.cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def stack_outputs(cloud: Cloud, **changes: str) -> dict[str, str]:
    outputs = {
        "PredictUrl": API_URL,
        "PageUrl": f"https://{cloud.distribution['DomainName']}/",
        "PageBucketName": cloud.bucket,
        "PageDistributionId": cloud.distribution["Id"],
    }
    return {**outputs, **changes}


def test_a_stack_gives_the_api_url_the_pages_url_and_its_distribution(cloud: Cloud) -> None:
    stack = f"page-{uuid.uuid4().hex[:8]}"
    create_stack(cloud, stack, stack_outputs(cloud))
    code, out, err = cloud.publish("--stack", stack)
    assert (code, err) == (0, "")
    assert meta_api(cloud.objects()["index.html"]["body"]) == API_URL
    assert len(cloud.invalidations()) == 1
    assert out.splitlines()[-1] == f"url:      https://{cloud.distribution['DomainName']}/"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "one of the arguments --api-url --stack is required"),
        (["--api-url", API_URL, "--stack", "s"], "not allowed with argument"),
        (["--api-url", "http://abc.execute-api.eu-west-1.amazonaws.com/predict"], "--api-url must be https"),
        (["--api-url", "javascript:alert(1)"], "--api-url must be an http(s) URL"),
        (["--api-url", 'https://a.example/predict" onload="x'], "--api-url must be an http(s) URL"),
        (["--api-url", "https://a.example/predict?x=1"], "--api-url must be an http(s) URL"),
    ],
)
def test_bad_options_are_usage_errors_and_upload_nothing(cloud: Cloud, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cloud.publish(*args)
    assert exit_.value.code == 2
    err = cloud.capsys.readouterr().err
    assert message in err.splitlines()[-1]
    assert cloud.objects() == {} and cloud.puts == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no bucket", "error: --bucket: bucket {missing} does not exist"),
        ("no stack", "error: --stack: stack {missing} does not exist"),
        (
            "not our stack",
            "error: --stack: stack {stack} has no output PageDistributionId: is it deploy/template.yaml's?",
        ),
        ("another bucket", "error: --bucket: stack {stack}'s page bucket is other-bucket, not {bucket}"),
        (
            "http api",
            "error: --stack: stack {stack}'s PredictUrl must be https (the page is served over HTTPS), not 'http://a.b/p'",
        ),
        ("no distribution", "error: --distribution-id: distribution {missing} does not exist"),
        ("no index", "error: --source: no index.html in {source}"),
        ("no meta tag", 'error: index.html must hold one <meta name="sentiment-api" content="..."> tag, not 0'),
    ],
)
def test_missing_resources_fail_with_one_line_and_upload_nothing(
    cloud: Cloud, tmp_path: Path, case: str, message: str
) -> None:
    missing, stack, source = f"missing-{uuid.uuid4().hex[:8]}", f"page-{uuid.uuid4().hex[:8]}", tmp_path / "web"
    source.mkdir()
    (source / "app.js").write_text("")
    args = ["--api-url", API_URL]
    if case == "no bucket":
        cloud.bucket, created = missing, cloud.bucket
    elif case == "no stack":
        args = ["--stack", missing]
    elif case in ("not our stack", "another bucket", "http api"):
        outputs = stack_outputs(cloud)
        if case == "not our stack":
            del outputs["PageDistributionId"]
        outputs.update({"another bucket": {"PageBucketName": "other-bucket"}, "http api": {"PredictUrl": "http://a.b/p"}}
                       .get(case, {}))  # fmt: skip
        create_stack(cloud, stack, outputs)
        args = ["--stack", stack]
    elif case == "no distribution":
        args += ["--distribution-id", missing]
    elif case == "no meta tag":
        (source / "index.html").write_text("<html></html>")
    if case in ("no index", "no meta tag"):
        args += ["--source", str(source)]
    code, _, err = cloud.publish(*args)
    assert code == 1
    assert err == message.format(missing=missing, stack=stack, bucket=cloud.bucket, source=source) + "\n"
    if case == "no bucket":
        cloud.bucket = created
    assert cloud.objects() == {} and cloud.puts == [] and cloud.invalidations() == []


def test_no_credentials_is_one_clear_line(moto_server: str, tmp_path: Path) -> None:
    environment = {"PATH": "/usr/bin:/bin", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bucket", "b", "--api-url", API_URL, "--endpoint-url", moto_server,
         "--region", REGION],
        capture_output=True, text=True, env={**environment, "AWS_EC2_METADATA_DISABLED": "true"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: no AWS credentials") and result.stderr.count("\n") == 1
