#!/usr/bin/env python3
"""The page in AWS: upload web/ to the stack's private bucket, with the API's URL in its meta tag.

    python deploy/publish_page.py --bucket BUCKET --stack imdb-sentiment-api     # URL and page from the stack
    python deploy/publish_page.py --bucket BUCKET --api-url https://abc.execute-api.eu-west-1.amazonaws.com/predict

`index.html` gets the API's URL in `<meta name="sentiment-api">` (how web/app.js finds its API). Each file
goes up with its Content-Type and a Cache-Control: `no-cache` (revalidate every time) for the HTML and for
assets whose names stay the same across versions, a year and `immutable` for assets whose names carry
their content's hash (`app.0123abcd.js`). An object whose bytes and headers are already there is not
sent again, so a rerun uploads nothing; index.html goes last, after the files it names. With
`--distribution-id` (or `--stack`, whose PageDistributionId it reads) the changed paths are invalidated
in CloudFront. Prints the page's URL.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions

from sentiment.errors import SentimentError

REPOSITORY = Path(__file__).resolve().parent.parent
WEB_DIR = REPOSITORY / "web"
INDEX = "index.html"
CONTENT_TYPES = {  # the page's kinds of file, as local_test/gateway.py serves them; others are not the page's
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
REVALIDATE = "no-cache"  # cached, but asked about (ETag) before each use: a new version shows at once
IMMUTABLE = "public, max-age=31536000, immutable"  # a name that changes with its content never goes stale
HASHED_NAME = re.compile(r"\.[0-9a-f]{8,}\.[a-z0-9]+$")  # app.0123abcd.js: the content's hash in the name
META_TAG = re.compile(r'(<meta name="sentiment-api" content=")([^"]*)(">)')
# An http(s) URL with nothing an HTML attribute or the page's CSP could read differently: no quotes, no spaces.
API_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
STACK_OUTPUTS = ("PredictUrl", "PageUrl", "PageBucketName", "PageDistributionId")  # deploy/template.yaml's


class PublishError(SentimentError):
    """The page cannot be published: a missing bucket, stack or file, or a bad API URL."""


@dataclass(frozen=True)
class PageFile:
    """One object of the page: its key, bytes and the headers it is served with."""

    key: str
    body: bytes
    content_type: str
    cache_control: str

    @property
    def md5(self) -> str:
        # S3's ETag of an object put in one part, unencrypted or SSE-S3 (the template's bucket), is its MD5:
        # comparing it needs no download.
        return hashlib.md5(self.body, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Target:
    """Where the page goes and what it calls: the API's URL, and the distribution when known."""

    api_url: str
    page_url: str | None
    distribution_id: str | None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bucket", required=True, help="the page's bucket (the stack's PageBucketName output)")
    api = parser.add_mutually_exclusive_group(required=True)
    api.add_argument("--api-url", help="the API's POST URL, e.g. the stack's PredictUrl output")
    api.add_argument("--stack", help="a stack of deploy/template.yaml: its PredictUrl, PageUrl and distribution")
    parser.add_argument("--distribution-id", help="invalidate the changed paths in this CloudFront distribution")
    parser.add_argument("--source", type=Path, default=WEB_DIR, help="the page's folder (default: web/)")
    parser.add_argument("--region", help="AWS region (default: the AWS environment's)")
    parser.add_argument("--endpoint-url", help="S3, CloudFormation and CloudFront endpoint, e.g. moto's server")
    args = parser.parse_args(argv)
    if args.api_url is not None:
        try:
            check_api_url(args.api_url)
        except PublishError as error:
            parser.error(str(error))
    return args


def check_api_url(url: str, what: str = "--api-url") -> str:
    """`url` when the page may call it: https (http only on this machine), a host, a plain path."""
    if not API_URL.fullmatch(url):
        raise PublishError(f"{what} must be an http(s) URL of a host and a plain path, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        # The page is served over HTTPS; a browser refuses its calls to plain http (mixed content).
        raise PublishError(f"{what} must be https (the page is served over HTTPS), not {url!r}")
    return url


def page_files(source: Path, api_url: str) -> list[PageFile]:
    """The page's objects, index.html last (with `api_url` in its meta tag), the others by name."""
    if not (source / INDEX).is_file():
        raise PublishError(f"--source: no {INDEX} in {source}")
    files = []
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.suffix not in CONTENT_TYPES:
            continue  # README.md and the like describe the page; they are not part of it
        body = path.read_bytes()
        if path.name == INDEX:
            body = with_api_url(body.decode("utf-8"), api_url).encode("utf-8")
        cache = IMMUTABLE if HASHED_NAME.search(path.name) and path.suffix != ".html" else REVALIDATE
        files.append(PageFile(path.name, body, CONTENT_TYPES[path.suffix], cache))
    return sorted(files, key=lambda file: file.key == INDEX)


def with_api_url(html: str, api_url: str) -> str:
    """index.html with `api_url` as the content of its one sentiment-api meta tag."""
    found = len(META_TAG.findall(html))
    if found != 1:
        raise PublishError(f'{INDEX} must hold one <meta name="sentiment-api" content="..."> tag, not {found}')
    return META_TAG.sub(lambda match: f"{match.group(1)}{api_url}{match.group(3)}", html)


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            raise PublishError(f"--stack: stack {stack} does not exist") from None
        raise
    return {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}


def target_of_stack(cloudformation: Any, stack: str, bucket: str) -> Target:
    """The API URL, page URL and distribution a stack of deploy/template.yaml reports; its bucket must be `bucket`."""
    outputs = stack_outputs(cloudformation, stack)
    missing = [name for name in STACK_OUTPUTS if name not in outputs]
    if missing:
        raise PublishError(f"--stack: stack {stack} has no output {', '.join(missing)}: is it deploy/template.yaml's?")
    if outputs["PageBucketName"] != bucket:
        raise PublishError(f"--bucket: stack {stack}'s page bucket is {outputs['PageBucketName']}, not {bucket}")
    api_url = check_api_url(outputs["PredictUrl"], f"--stack: stack {stack}'s PredictUrl")
    return Target(api_url, outputs["PageUrl"], outputs["PageDistributionId"])


def page_url_of_distribution(cloudfront: Any, distribution_id: str) -> str:
    try:
        distribution = cloudfront.get_distribution(Id=distribution_id)["Distribution"]
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchDistribution":
            raise PublishError(f"--distribution-id: distribution {distribution_id} does not exist") from None
        raise
    return f"https://{distribution['DomainName']}/"


def check_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        reason = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be read ({code})"
        raise PublishError(f"--bucket: bucket {bucket} {reason}") from None


def is_current(s3: Any, bucket: str, file: PageFile) -> bool:
    """True when the object at file.key already has these bytes and these headers."""
    try:
        head = s3.head_object(Bucket=bucket, Key=file.key)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return False
        raise
    return (head.get("ETag", "").strip('"'), head.get("ContentType"), head.get("CacheControl")) == (
        file.md5,
        file.content_type,
        file.cache_control,
    )


def upload(s3: Any, bucket: str, files: list[PageFile]) -> list[str]:
    """Put each file that is not already current, in order; the keys sent."""
    sent = []
    for file in files:
        if is_current(s3, bucket, file):
            print(f"upload:   unchanged s3://{bucket}/{file.key}")
            continue
        s3.put_object(
            Bucket=bucket, Key=file.key, Body=file.body, ContentType=file.content_type, CacheControl=file.cache_control
        )
        headers = f"{file.content_type}, {file.cache_control}"
        print(f"upload:   sent s3://{bucket}/{file.key} ({len(file.body):,} bytes, {headers})")
        sent.append(file.key)
    return sent


def invalidate(cloudfront: Any, distribution_id: str, keys: list[str]) -> str:
    """Ask CloudFront to drop its copies of `keys` (and of `/`, which serves index.html); the invalidation's id."""
    paths = sorted({f"/{key}" for key in keys} | ({"/"} if INDEX in keys else set()))
    # Unique per publication: CloudFront answers a repeated reference with the old invalidation, and publishing
    # A, then B, then A again must invalidate B's copies. (A rerun that sends nothing invalidates nothing.)
    reference = f"publish-page-{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
    batch = {"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference}
    answer = cloudfront.create_invalidation(DistributionId=distribution_id, InvalidationBatch=batch)
    return answer["Invalidation"]["Id"]


def main(argv: list[str] | None = None, session: boto3.Session | None = None) -> int:
    args = parse_args(argv)
    session = session or boto3.Session()
    clients = {
        name: session.client(name, region_name=args.region, endpoint_url=args.endpoint_url)
        for name in ("s3", "cloudformation", "cloudfront")
    }
    try:
        # Everything is checked before the first upload: a bad option or a missing resource changes nothing.
        if args.stack is not None:
            target = target_of_stack(clients["cloudformation"], args.stack, args.bucket)
            print(f"stack:    {args.stack}: API {target.api_url}, page {target.page_url}")
        else:
            target = Target(args.api_url, None, None)
        distribution_id = args.distribution_id or target.distribution_id
        page_url = target.page_url
        if args.distribution_id is not None:
            page_url = page_url_of_distribution(clients["cloudfront"], args.distribution_id)
        files = page_files(args.source, target.api_url)
        check_bucket(clients["s3"], args.bucket)
        print(f"page:     {len(files)} files from {args.source}, API {target.api_url}")
        sent = upload(clients["s3"], args.bucket, files)
        if sent and distribution_id:
            invalidation = invalidate(clients["cloudfront"], distribution_id, sent)
            print(f"cdn:      invalidation {invalidation} in distribution {distribution_id} for {len(sent)} files")
        elif distribution_id:
            print(f"cdn:      nothing changed: no invalidation in distribution {distribution_id}")
        print(f"url:      {page_url or f's3://{args.bucket}/{INDEX} (--stack or --distribution-id prints its URL)'}")
    except botocore.exceptions.NoCredentialsError:
        print("error: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        print(f"error: {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}", file=sys.stderr)
        return 1
    except (PublishError, botocore.exceptions.BotoCoreError, OSError, UnicodeDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
