#!/usr/bin/env python3
"""Steps 1-3 of the tutorial: get the IMDb reviews, write the training channels, upload them to S3.

    python deploy/prepare_data.py --source ../shared/data/aclImdb_v1.tar.gz            # local channels only
    python deploy/prepare_data.py --bucket my-bucket --prefix imdb-sentiment/data      # download + upload

`--source` takes the official URL (the default: downloaded with resume and md5 check), a local
aclImdb .tar.gz, or an extracted aclImdb/ folder. Channels land in `--output` as
`<channel>/<channel>.jsonl` (train, validation carved from train with `--seed`, test, unlabeled, and
with `--sentences` the soft-labelled sentences that `python -m teacher.label` wrote). With
`--bucket`, the folder is mirrored to `s3://<bucket>/<prefix>/`: files already there with the same
sha256 are skipped (a rerun after an interruption uploads only what is missing), objects of an earlier
set that this one lacks are deleted, and the manifest `channels.json` is uploaded last.

`--shards K` writes each channel as K files of consecutive reviews (`<channel>-00000-of-0000K.jsonl`, ...):
SageMaker hands whole files to instances, in a training job whose channels are `ShardedByS3Key`
(`deploy/sagemaker.py train --instance-count N --distribution sharded`, K >= N) and in a Batch
Transform on several instances (`deploy/sagemaker.py batch --input .../test/ --instance-count N`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from sentiment.data import (
    CHANNEL_FORMATS,
    CHANNELS,
    DEFAULT_SEED,
    DEFAULT_VALIDATION_FRACTION,
    IMDB_ARCHIVE_NAME,
    IMDB_MD5,
    IMDB_URL,
    download,
    imdb_channels,
    load_imdb,
    official_count_differences,
    write_channels,
)
from sentiment.data.channels import MANIFEST, SENTENCES, check_replaceable, read_sentences, sentences_details
from sentiment.errors import SentimentError
from sentiment.files import file_digest

S3Client = Any  # boto3 builds its client classes at run time

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = REPOSITORY / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source", default=IMDB_URL, help="URL, aclImdb .tar.gz or aclImdb/ folder (default: %(default)s)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="downloads and cache (default: %(default)s)"
    )
    parser.add_argument(
        "--md5", help="expected md5 of a downloaded source (default: the official one for the official URL)"
    )
    parser.add_argument("--output", type=Path, help="channel folder (default: <work-dir>/channels)")
    parser.add_argument(
        "--format", choices=CHANNEL_FORMATS, default="jsonl", help="channel file format (default: %(default)s)"
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=DEFAULT_VALIDATION_FRACTION,
        help="share of train held out (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the validation split (default: %(default)s)"
    )
    parser.add_argument("--no-unlabeled", action="store_true", help="leave out the 50,000 unlabeled reviews")
    parser.add_argument(
        "--sentences",
        type=Path,
        help="a folder of soft-labelled sentences (python -m teacher.label) to add as the sentences channel",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="files per channel, for jobs on several instances (SageMaker deals whole files) (default: %(default)s)",
    )
    parser.add_argument(
        "--bucket", help="S3 bucket to upload the channels to (created if missing); no upload without it"
    )
    parser.add_argument("--prefix", default="imdb-sentiment/data", help="S3 key prefix (default: %(default)s)")
    parser.add_argument("--region", help="AWS region (default: the AWS environment's)")
    parser.add_argument("--endpoint-url", help="S3 endpoint, e.g. a local S3-compatible server")
    args = parser.parse_args(argv)
    if not 0.0 < args.validation_fraction < 1.0:
        parser.error("--validation-fraction must be between 0 and 1")
    if args.shards < 1:
        parser.error(f"--shards must be 1 or more, not {args.shards}")
    args.prefix = args.prefix.strip("/")
    args.output = (args.output or args.work_dir / "channels").resolve()
    if args.md5 is None and args.source.replace("http://", "https://", 1) == IMDB_URL:
        args.md5 = IMDB_MD5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    try:
        check_replaceable(args.output)  # before minutes of work, not after
        source = fetch_source(args.source, args.md5, args.work_dir / "downloads")
        output = write_local_channels(args, source)
        if args.bucket:
            upload_channels(output, args.bucket, args.prefix, args.region, args.endpoint_url)
    except (SentimentError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def fetch_source(source: str, md5: str | None, downloads: Path) -> Path:
    """A local path as given, or the URL downloaded into `downloads` (resumed, md5-checked)."""
    if not source.startswith(("http://", "https://")):
        print(f"source:   {source}")
        return Path(source)
    print(f"download: {source}")
    return download(source, downloads / (source.rstrip("/").rsplit("/", 1)[-1] or IMDB_ARCHIVE_NAME), md5)


def write_local_channels(args: argparse.Namespace, source: Path) -> Path:
    """Read the source (through the cache), split it, and write the channel folder; returns it."""
    started = time.perf_counter()
    table = load_imdb(source, cache_dir=args.work_dir / "cache")
    print(f"read:     {len(table):,} reviews in {time.perf_counter() - started:.1f} s")
    for difference in official_count_differences(table):
        print(f"note:     differs from the official dataset: {difference}")

    tables = imdb_channels(table, args.validation_fraction, args.seed, unlabeled=not args.no_unlabeled)
    for name, channel in tables.items():
        counts = ", ".join(f"{n:,} {label}" for label, n in channel.label_counts().items() if n)
        print(f"split:    {name:<10} {len(channel):>7,} reviews ({counts})")

    output = args.output
    started = time.perf_counter()
    details = {"source": str(args.source), "validation_fraction": args.validation_fraction, "seed": args.seed}
    if args.shards > 1:
        details["shards"] = args.shards
    sentences, labelled_by = None, None
    if args.sentences is not None:
        sentences, labelled_by = read_sentences(args.sentences), sentences_details(args.sentences)
        print(f"add:      {SENTENCES:<10} {len(sentences):>7,} soft-labelled texts from {args.sentences}")
    paths = write_channels(tables, output, args.format, details, args.shards, sentences, labelled_by)
    total = sum(path.stat().st_size for files in paths.values() for path in files)
    shards = f" as {args.shards} files each" if args.shards > 1 else ""
    print(
        f"write:    {len(paths)} channels{shards}, {total / 1e6:.0f} MB in {output} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return output


def upload_channels(output: Path, bucket: str, prefix: str, region: str | None, endpoint_url: str | None) -> None:
    """Mirror the channel folder to s3://bucket/prefix/: changed files are uploaded, identical ones
    skipped, objects the folder no longer has are deleted, and the manifest goes last."""
    s3 = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
    try:
        ensure_bucket(s3, bucket)
        for channel in (*CHANNELS, SENTENCES):
            local = {path.name: path for path in sorted((output / channel).glob("*"))}
            remote = set(list_keys(s3, bucket, s3_key(prefix, channel, "")))
            for name, path in local.items():
                upload_if_changed(s3, path, bucket, s3_key(prefix, channel, name))
            for key in sorted(remote - {s3_key(prefix, channel, name) for name in local}):
                s3.delete_object(Bucket=bucket, Key=key)
                print(f"upload:   deleted   s3://{bucket}/{key} (not in this channel set)")
        upload_if_changed(s3, output / MANIFEST, bucket, s3_key(prefix, MANIFEST))
    except botocore.exceptions.NoCredentialsError:
        raise SentimentError("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        raise SentimentError(f"S3 upload to s3://{bucket}/{prefix} failed: {error}") from None
    for channel in (*CHANNELS, SENTENCES):
        if (output / channel).is_dir():
            print(f"channel:  {channel:<10} s3://{bucket}/{s3_key(prefix, channel, '')}")


def s3_key(prefix: str, *parts: str) -> str:
    return "/".join([prefix, *parts] if prefix else parts)


def upload_if_changed(s3: S3Client, path: Path, bucket: str, key: str) -> None:
    digest = file_digest(path)
    if remote_sha256(s3, bucket, key) == digest:
        print(f"upload:   unchanged s3://{bucket}/{key}")
        return
    s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
    print(f"upload:   sent      s3://{bucket}/{key} ({path.stat().st_size / 1e6:.1f} MB)")


def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def ensure_bucket(s3: S3Client, bucket: str) -> None:
    """Create `bucket` in the client's region unless it exists."""
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    region = s3.meta.region_name
    options = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **options)
    print(f"upload:   created bucket {bucket} in {region}")


def remote_sha256(s3: S3Client, bucket: str, key: str) -> str | None:
    """The sha256 recorded on an uploaded object, or None when there is no such object."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise
    return head.get("Metadata", {}).get("sha256")


if __name__ == "__main__":
    sys.exit(main())
