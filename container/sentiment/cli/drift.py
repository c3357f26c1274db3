"""`sentiment-drift`: compare what an endpoint received (SageMaker Data Capture) with what its model was made for.

    sentiment-drift CAPTURE_DIR_OR_S3 [--model DIR] [--output DIR] [--endpoint-url URL] [--region REGION]

Reads every *.jsonl capture file below a folder or s3://bucket/prefix (the DestinationS3Uri of the
endpoint's DataCaptureConfig, or any part of it: an endpoint, a variant, a day), decodes each request
and answer, and judges four figures against the model card's (`--model`, default the bundled model):
words per review, share of unknown words, share of positive and of uncertain verdicts, each "drifted"
or "within range" with its rule (sentiment/drift.py). Writes drift.json (the summary) and drift.html
(the report, with plots) to `--output`. Exits 0 whether or not anything drifted; 1 with one line for
capture files it cannot use.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from sentiment.artifacts import BUNDLED_MODEL, load_model
from sentiment.drift import capture_files, drift_summary, read_capture, verdict_lines
from sentiment.errors import SentimentError
from sentiment.files import read_json, write_bytes_atomic, write_json_atomic
from sentiment.report import render_drift_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-drift", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("capture", help="a folder of capture files or s3://bucket/prefix")
    parser.add_argument(
        "--model", type=Path, help="the model folder whose card.json to compare with (default: bundled)"
    )
    parser.add_argument("--output", type=Path, default=Path("drift"), help="report folder (default: %(default)s)")
    parser.add_argument("--endpoint-url", help="S3's endpoint (moto, LocalStack); default: AWS")
    parser.add_argument("--region", help="the bucket's region (default: the environment's)")
    args = parser.parse_args(argv)
    model = args.model or BUNDLED_MODEL
    try:
        card = read_card(model)
        predictor = load_model(model)
        s3 = (
            boto3.client("s3", endpoint_url=args.endpoint_url, region_name=args.region)
            if args.capture.startswith("s3://")
            else None
        )
        capture = read_capture(capture_files(args.capture, s3), predictor.tokenize, predictor.vocabulary.index)
    except (SentimentError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(f"error: {args.capture}: {error}", file=sys.stderr)
        return 1
    print(
        f"drift: read {capture.records:,} records ({capture.reviews:,} reviews) "
        f"from {capture.files} files in {args.capture}; "
        f"{len(capture.skipped)} unreadable records skipped, {capture.error_answers} error answers"
    )
    for skipped in capture.skipped:
        print(f"drift: skipped {skipped}")
    summary = drift_summary(args.capture, str(args.model or "bundled"), card, capture)
    for line in verdict_lines(summary):
        print(f"drift: {line}")
    write_json_atomic(args.output / "drift.json", summary)
    write_bytes_atomic(args.output / "drift.html", render_drift_report(summary).encode("utf-8"))
    drifted, figures = len(summary["drifted"]), len(summary["figures"])
    print(f"drift: {drifted} of {figures} figures drifted; wrote drift.json and drift.html to {args.output}")
    return 0


def read_card(model: Path) -> dict[str, Any]:
    """The model card's traffic figures (and the rest of the card); an error saying how to add missing figures."""
    path = model / "card.json"
    if not path.is_file():
        raise SentimentError(f"{path}: no model card (give --model the model folder that sentiment-train wrote)")
    card = read_json(path)
    if not isinstance(card, dict) or not isinstance(card.get("traffic"), dict):
        raise SentimentError(
            f"{path} holds no traffic figures to compare with: add them with "
            f"`sentiment-card {model} --data VALIDATION_CHANNEL`"
        )
    return card


if __name__ == "__main__":
    sys.exit(main())
