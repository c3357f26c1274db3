#!/usr/bin/env python3
"""How models judge short reviews, like the one-sentence reviews people type into the page.

    python benchmarks/short_reviews.py [--model PATH ...] [--channels data/channels]

Two sets, neither seen in training:
  ours            benchmarks/data/short_reviews.jsonl: 100 one-sentence reviews we wrote (50 positive,
                  50 negative; plain praise and complaints, negations, scores in words)
  imdb_last       the last sentence (3-25 words) of each IMDb test review rated 1-2 or 9-10 stars,
                  labelled as its review: how reviewers sum up (IMDb test split: final reports only)
For each: accuracy, and the share of verdicts in the page's "uncertain" band (0.4-0.6).
`--model` takes model folders or model.tar.gz files (default: the bundled model), each a row; an
ensemble with short-text weights gets a second row without them (its review weights for every length),
the baseline they are measured against.
Writes benchmarks/results/short_reviews.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from common import REPOSITORY, print_table, write_results

from sentiment.artifacts import load_model
from sentiment.data.channels import read_channel
from sentiment.data.table import ReviewTable
from sentiment.predictor import Predictor
from sentiment.text import sentences

OURS = REPOSITORY / "benchmarks" / "data" / "short_reviews.jsonl"
LAST_SENTENCE_WORDS = (3, 25)
UNCERTAIN = (0.4, 0.6)  # web/app.js's band


def our_reviews() -> tuple[list[str], np.ndarray]:
    records = [json.loads(line) for line in OURS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [record["text"] for record in records], np.array([record["label"] for record in records])


def last_sentences(table: ReviewTable) -> tuple[list[str], np.ndarray]:
    """The closing sentence of each clearly rated review (1-2 or 9-10 stars), with its review's label."""
    texts, labels = [], []
    for text, label, rating in zip(table.text, table.label, table.rating, strict=True):
        if 3 <= rating <= 8:
            continue
        closing = [s for s in sentences(text) if LAST_SENTENCE_WORDS[0] <= len(s.split()) <= LAST_SENTENCE_WORDS[1]]
        if closing:
            texts.append(closing[-1])
            labels.append(int(label))
    return texts, np.array(labels)


def judge(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "acc": round(float(((scores >= 0.5) == labels).mean()), 4),
        "uncertain": round(float(((scores > UNCERTAIN[0]) & (scores < UNCERTAIN[1])).mean()), 4),
    }


def measure(name: str, model: Predictor, sets: dict[str, tuple[list[str], np.ndarray]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name}
    for set_name, (texts, labels) in sets.items():
        for key, value in judge(model.predict_proba(texts), labels).items():
            row[f"{set_name}_{key}"] = value
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="model folder or model.tar.gz (repeatable)")
    parser.add_argument("--channels", type=Path, default=REPOSITORY / "data" / "channels")
    args = parser.parse_args()
    if not (args.channels / "test").is_dir():
        parser.error(f"no test channel in {args.channels}: run `make data` first")

    sets = {"ours": our_reviews(), "imdb_last": last_sentences(read_channel(args.channels / "test", "test"))}
    rows: list[dict[str, Any]] = []
    for path in args.model or [None]:
        model = load_model(path)
        name = "bundled" if path is None else str(path)
        rows.append(measure(name, model, sets))
        if model.ensemble is not None and model.ensemble.short_weights is not None:
            model.ensemble = replace(model.ensemble, short_weights=None, short_bias=None)
            rows.append(measure(f"{name}, review weights only", model, sets))
    print_table(rows, ["model", "ours_acc", "ours_uncertain", "imdb_last_acc", "imdb_last_uncertain"])
    sizes = {name: len(texts) for name, (texts, _) in sets.items()}
    print(f"reviews: {sizes}")
    path = write_results("short_reviews", {"sizes": sizes, "rows": rows})
    print(f"results: {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
