"""`sentiment-evaluate`: score a model on labeled reviews and write the report a person opens.

    sentiment-evaluate --data data/channels/test [--model /opt/ml/model] [--output evaluation/]

`--data` is a channel folder, one channel file (.jsonl, .csv, optionally .gz) or an aclImdb archive
or folder (its test split); `--model` a model folder or model.tar.gz (default: the bundled model).
Writes evaluation.json (every metric) and evaluation.html (plots) to `--output`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sentiment.artifacts import load_model
from sentiment.data.channels import read_labeled
from sentiment.errors import SentimentError
from sentiment.evaluation import evaluate, write_evaluation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="labeled reviews: channel folder, file, or aclImdb source"
    )
    parser.add_argument("--model", type=Path, help="model folder or model.tar.gz (default: the bundled model)")
    parser.add_argument("--output", type=Path, default=Path("evaluation"), help="report folder (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, help="where to keep columnar copies of aclImdb sources")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model)
        reviews = read_labeled(args.data, args.cache_dir)
        started = time.perf_counter()
        scores = model.predict_proba(reviews.text)
        seconds = time.perf_counter() - started
        metrics = evaluate(reviews.label, scores)
    except (SentimentError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    details = {
        "model": str(args.model or "bundled"),
        "data": str(args.data),
        "family": model.family,
        "reviews_per_second": round(len(scores) / seconds, 1),
    }
    write_evaluation(args.output, f"Evaluation of {details['model']} on {args.data}", metrics, [], details)
    print(
        f"accuracy={metrics['accuracy']:.4f} f1={metrics['f1']:.4f} roc_auc={metrics['roc_auc']:.4f} "
        f"log_loss={metrics['log_loss']:.4f} reviews={metrics['reviews']} ({len(scores) / seconds:,.0f} reviews/s)"
    )
    print(f"report: {args.output / 'evaluation.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
