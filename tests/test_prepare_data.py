"""deploy/prepare_data.py end to end: source -> channels -> S3 (moto's standalone server)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import numpy as np
import pytest

from sentiment.data.channels import SENTENCES_DETAILS, SoftLabeled, read_sentences, sentences_details, write_sentences
from tests.conftest import REPOSITORY

SCRIPT = REPOSITORY / "deploy" / "prepare_data.py"


def run_script(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_local_channels_from_an_archive(tmp_path: Path, small_imdb_archive: Path) -> None:
    result = run_script(
        "--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--validation-fraction", "0.25"
    )
    assert result.returncode == 0, result.stderr
    channels = tmp_path / "work" / "channels"
    assert sorted(p.name for p in channels.iterdir()) == ["channels.json", "test", "train", "unlabeled", "validation"]
    assert (channels / "test" / "test.jsonl").read_text().count("\n") == 24
    assert "read:     60 reviews" in result.stdout
    assert "split:    test            24 reviews (12 positive, 12 negative)" in result.stdout
    assert "note:     differs from the official dataset: train/pos: 12 (official 12,500)" in result.stdout
    assert list((tmp_path / "work" / "cache").glob("imdb-*.npz"))


def test_shards_write_each_channel_as_that_many_files(tmp_path: Path, small_imdb_archive: Path) -> None:
    result = run_script(
        "--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--validation-fraction", "0.25",
        "--shards", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "write:    4 channels as 3 files each" in result.stdout
    test = tmp_path / "work" / "channels" / "test"
    assert sorted(p.name for p in test.iterdir()) == [f"test-0000{i}-of-00003.jsonl" for i in range(3)]
    assert sum(path.read_text().count("\n") for path in test.iterdir()) == 24


def test_csv_format_and_a_chosen_output_folder(tmp_path: Path, small_imdb_folder: Path) -> None:
    result = run_script(
        "--source", small_imdb_folder, "--work-dir", tmp_path / "w", "--output", tmp_path / "out",
        "--format", "csv", "--no-unlabeled", "--validation-fraction", "0.25",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["channels.json", "test", "train", "validation"]
    assert (tmp_path / "out" / "train" / "train.csv").read_bytes().startswith(b"id,label,rating,movie,text\r\n")


def test_a_corrupt_archive_fails_cleanly_and_writes_nothing(tmp_path: Path, small_imdb_archive: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(small_imdb_archive.read_bytes()[:500])
    result = run_script("--source", broken, "--work-dir", tmp_path / "work")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {broken}: corrupt or truncated archive")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "work" / "channels").exists()


def test_an_output_folder_that_is_not_a_channel_set_is_left_alone(tmp_path: Path, small_imdb_archive: Path) -> None:
    (tmp_path / "work" / "cache").mkdir(parents=True)
    (tmp_path / "work" / "cache" / "keep.txt").write_text("mine")
    result = run_script("--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--output", tmp_path / "work")
    assert result.returncode == 1
    assert "holds no channels.json: refusing to replace it" in result.stderr
    assert "read:" not in result.stdout  # refused before any work
    assert (tmp_path / "work" / "cache" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validation-fraction", "1.5"], "--validation-fraction must be between 0 and 1"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--shards", "0"], "--shards must be 1 or more, not 0"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = run_script(*args)
    assert result.returncode == 2
    assert message in result.stderr


def s3_objects(endpoint: str, bucket: str) -> dict[str, dict]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.head_object(Bucket=bucket, Key=item["Key"]) for item in listing}


def test_upload_creates_the_bucket_and_skips_unchanged_files_on_rerun(
    tmp_path: Path, small_imdb_archive: Path, moto_server: str, aws_environment: dict[str, str]
) -> None:
    bucket = f"sentiment-{uuid.uuid4().hex[:12]}"
    args = [
        "--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--validation-fraction", "0.25",
        "--bucket", bucket, "--prefix", "/runs/imdb/", "--endpoint-url", moto_server, "--region", "eu-west-1",
    ]  # fmt: skip
    first = run_script(*args, env=aws_environment)
    assert first.returncode == 0, first.stderr
    assert f"created bucket {bucket} in eu-west-1" in first.stdout
    assert f"channel:  train      s3://{bucket}/runs/imdb/train/" in first.stdout

    objects = s3_objects(moto_server, bucket)
    channel_keys = [f"runs/imdb/{c}/{c}.jsonl" for c in ("test", "train", "unlabeled", "validation")]
    assert sorted(objects) == ["runs/imdb/channels.json", *channel_keys]
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    local = tmp_path / "work" / "channels" / "train" / "train.jsonl"
    remote = s3.get_object(Bucket=bucket, Key="runs/imdb/train/train.jsonl")
    assert remote["Body"].read() == local.read_bytes()
    assert remote["Metadata"]["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()

    second = run_script(*args, env=aws_environment)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("upload:   unchanged") == 5
    assert "upload:   sent" not in second.stdout and "created bucket" not in second.stdout

    # Another format and no unlabeled channel: the objects of the earlier set go.
    third = run_script(*args, "--format", "csv", "--no-unlabeled", env=aws_environment)
    assert third.returncode == 0, third.stderr
    assert "deleted   s3://" in third.stdout
    assert sorted(s3_objects(moto_server, bucket)) == [
        "runs/imdb/channels.json",
        *(f"runs/imdb/{c}/{c}.csv" for c in ("test", "train", "validation")),
    ]


def test_an_upload_without_credentials_is_a_clear_error(
    tmp_path: Path, small_imdb_archive: Path, moto_server: str, aws_environment: dict[str, str]
) -> None:
    env = {k: v for k, v in aws_environment.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    result = run_script(
        "--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--validation-fraction", "0.25",
        "--bucket", "some-bucket", "--endpoint-url", moto_server, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error: no AWS credentials" in result.stderr


def test_labelled_sentences_join_the_channel_set_and_its_upload(
    tmp_path: Path, small_imdb_archive: Path, moto_server: str, aws_environment: dict[str, str]
) -> None:
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    write_sentences(
        SoftLabeled(["Not bad at all.", "Dull.", "Loved it!"], np.array([0.8, 0.1, 0.95])), labelled / "s.jsonl"
    )
    (labelled / SENTENCES_DETAILS).write_text(json.dumps({"score": "0.5 x teacher + 0.5 x student"}))
    bucket = f"sentiment-{uuid.uuid4().hex[:12]}"
    args = [
        "--source", small_imdb_archive, "--work-dir", tmp_path / "work", "--validation-fraction", "0.25",
        "--bucket", bucket, "--endpoint-url", moto_server, "--region", "eu-west-1",
    ]  # fmt: skip
    result = run_script(*args, "--sentences", labelled, "--shards", "3", env=aws_environment)
    assert result.returncode == 0, result.stderr
    assert "add:      sentences        3 soft-labelled texts from" in result.stdout
    assert "write:    5 channels as 3 files each" in result.stdout
    channels = tmp_path / "work" / "channels"
    assert read_sentences(channels / "sentences").texts == ["Not bad at all.", "Dull.", "Loved it!"]
    assert sentences_details(channels / "sentences") == {"score": "0.5 x teacher + 0.5 x student"}
    manifest = json.loads((channels / "channels.json").read_text())["channels"]["sentences"]
    assert manifest["texts"] == 3 and manifest["mean_score"] == pytest.approx(0.6167, abs=1e-4)
    assert [entry["file"] for entry in manifest["files"]] == [
        f"sentences/sentences-0000{i}-of-00003.jsonl" for i in range(3)
    ]
    keys = sorted(key for key in s3_objects(moto_server, bucket) if "/sentences/" in key)
    assert keys == [
        f"imdb-sentiment/data/sentences/{name}" for name in sorted(p.name for p in (channels / "sentences").iterdir())
    ]
    assert f"channel:  sentences  s3://{bucket}/imdb-sentiment/data/sentences/" in result.stdout

    without = run_script(*args, env=aws_environment)  # a set without them: their objects go too
    assert without.returncode == 0, without.stderr
    assert not (channels / "sentences").exists()
    assert not [key for key in s3_objects(moto_server, bucket) if "/sentences/" in key]

    (labelled / "s.jsonl").write_text('{"text": "fine", "score": 7}\n')
    refused = run_script(*args, "--sentences", labelled, env=aws_environment)
    assert refused.returncode == 1 and "s.jsonl: line 1: 'score' must be a number from 0 to 1" in refused.stderr
