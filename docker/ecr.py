"""docker/ecr.py: the AWS calls of build_and_push.sh (no AWS CLI needed), through boto3.

    python docker/ecr.py registry                          -> 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    python docker/ecr.py ensure-repository NAME [--dry-run] -> creates the ECR repository when it is missing
    python docker/ecr.py login-password                    -> the password for `docker login --username AWS`

Credentials, region (AWS_REGION, then AWS_DEFAULT_REGION, then the profile's) and AWS_ENDPOINT_URL come from
the environment as boto3 reads them; errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class EcrError(Exception):
    """What went wrong, said in one line."""


def region(session: Any) -> str:
    """The region to push to; an error naming the variables to set when there is none."""
    name = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or session.region_name
    if not name:
        raise EcrError("no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
    return name


def registry(session: Any) -> str:
    """ACCOUNT.dkr.ecr.REGION.amazonaws.com for the caller's account (STS) and region."""
    where = region(session)
    account = session.client("sts", region_name=where).get_caller_identity()["Account"]
    domain = "amazonaws.com.cn" if where.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{where}.{domain}"


def ensure_repository(session: Any, name: str, dry_run: bool = False) -> str:
    """Create repository `name` unless it exists; says which happened (or would, with `dry_run`)."""
    ecr = session.client("ecr", region_name=region(session))
    try:
        uri = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"]
        return f"repository {name} exists: {uri}"
    except ClientError as error:
        if error.response["Error"]["Code"] != "RepositoryNotFoundException":
            raise
    if dry_run:
        return f"repository {name} does not exist; would create it"
    created = ecr.create_repository(
        repositoryName=name,
        imageTagMutability="MUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
    )
    return f"repository {name} created: {created['repository']['repositoryUri']}"


def login_password(session: Any) -> str:
    """The registry password from ECR's authorization token (valid for 12 hours)."""
    ecr = session.client("ecr", region_name=region(session))
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    if user != "AWS" or not password:
        raise EcrError("ECR's authorization token is not of the form AWS:password")
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ecr.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("registry", help="the registry host of the caller's account and region")
    ensure = commands.add_parser("ensure-repository", help="create the repository when it is missing")
    ensure.add_argument("name")
    ensure.add_argument("--dry-run", action="store_true", help="only say whether it would be created")
    commands.add_parser("login-password", help="the password for docker login --username AWS")
    args = parser.parse_args(argv)
    try:
        session = boto3.session.Session()
        if args.command == "registry":
            answer = registry(session)
        elif args.command == "ensure-repository":
            answer = ensure_repository(session, args.name, args.dry_run)
        else:
            answer = login_password(session)
    except (EcrError, ClientError, BotoCoreError) as error:
        sys.stderr.write(f"ecr.py {args.command}: {error}\n")
        return 1
    sys.stdout.write(answer + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
