#!/usr/bin/env python3
"""The public API's code: zip the Lambda relay (lambda/handler.py) and upload it for deploy/template.yaml.

    python deploy/package_relay.py --bucket my-bucket          # prints CodeBucket=... CodeKey=...

The zip is reproducible (fixed timestamps and modes), and its key names the first 16 hex digits of its
sha256 (`<prefix>/relay-<digest>.zip`): the same code is uploaded once, and new code gets a new key,
which is what makes `aws cloudformation deploy` update the function. A rerun uploads nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from sentiment.errors import SentimentError

REPOSITORY = Path(__file__).resolve().parent.parent
HANDLER = REPOSITORY / "lambda" / "handler.py"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: the same code gives the same bytes


class PackageError(SentimentError):
    """The relay cannot be packaged or uploaded: a missing file or bucket, or S3 refusing."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bucket", required=True, help="an existing S3 bucket in the stack's region")
    parser.add_argument("--prefix", default="imdb-sentiment/relay", help="S3 key prefix (default: %(default)s)")
    parser.add_argument("--handler", type=Path, default=HANDLER, help="the relay's code (default: lambda/handler.py)")
    parser.add_argument("--region", help="AWS region (default: the AWS environment's)")
    parser.add_argument("--endpoint-url", help="S3 endpoint, e.g. moto's server (default: AWS's)")
    return parser.parse_args(argv)


def relay_zip(handler: Path) -> bytes:
    """A zip holding `handler` as handler.py at its root, byte for byte the same for the same code."""
    entry = zipfile.ZipInfo("handler.py", date_time=ZIP_DATE)
    entry.external_attr = 0o644 << 16  # readable by the Lambda runtime's user, whatever the local umask
    entry.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry, handler.read_bytes())
    return buffer.getvalue()


def relay_key(prefix: str, package: bytes) -> str:
    return f"{prefix.strip('/')}/relay-{hashlib.sha256(package).hexdigest()[:16]}.zip"


def upload(s3: Any, bucket: str, key: str, package: bytes) -> bool:
    """Put the zip at `key` unless an object with its sha256 is there; True when it was sent."""
    digest = hashlib.sha256(package).hexdigest()
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        reason = "does not exist" if code in ("404", "NoSuchBucket") else f"cannot be read ({code})"
        raise PackageError(f"--bucket: bucket {bucket} {reason}") from None
    try:
        if s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256") == digest:
            return False
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
    s3.put_object(Bucket=bucket, Key=key, Body=package, ContentType="application/zip", Metadata={"sha256": digest})
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.handler.is_file():
            raise PackageError(f"--handler: no file at {args.handler}")
        package = relay_zip(args.handler)
        key = relay_key(args.prefix, package)
        print(f"package:  {args.handler.name} -> {len(package):,} bytes zipped")
        s3 = boto3.Session().client("s3", region_name=args.region, endpoint_url=args.endpoint_url)
        sent = upload(s3, args.bucket, key, package)
        print(f"upload:   {'sent' if sent else 'unchanged'} s3://{args.bucket}/{key}")
        print(f"parameters: CodeBucket={args.bucket} CodeKey={key}")
    except botocore.exceptions.NoCredentialsError:
        print("error: no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 1
    except botocore.exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        print(f"error: {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}", file=sys.stderr)
        return 1
    except (PackageError, botocore.exceptions.BotoCoreError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
