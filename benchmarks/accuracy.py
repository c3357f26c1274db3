#!/usr/bin/env python3
"""Accuracy, training time, size and speed of each model family on the full IMDb data.

    python benchmarks/accuracy.py [--channels data/channels] [--models reference,lstm,linear,ensemble]

Each model is trained by the training job itself (`sentiment.cli.train.run`, what `train` runs in
the image) on the channels `make run` writes: train (22,500), validation (2,500, carved by movie),
test (25,000, used only for this final report) and unlabeled (50,000). Rows:
  reference  the tutorial's LSTM (preset=reference); the tutorial reported about 85.4 %
  lstm       the default LSTM alone (target: >= 90.5 % within 15 minutes of training)
  linear     NB-weighted logistic regression over word 1-3-grams
  ensemble   LSTM + linear, weights fit on validation: the bundled default (target: >= 92.6 % in 20 minutes)
Training time is wall time on this machine; throughput is `predict` on the 25,000 test reviews.
Writes benchmarks/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPOSITORY, print_table, write_results

from sentiment.artifacts import load_model, save_model
from sentiment.contract import TrainingPaths
from sentiment.data.channels import read_channel
from sentiment.hyperparameters import parse_hyperparameters

FLAGS = {
    "reference": ["--preset", "reference"],
    "lstm": ["--model", "lstm"],
    "linear": ["--model", "linear"],
    "ensemble": ["--model", "ensemble"],
}
TARGETS = {"reference": "about 85.4 % (tutorial)", "lstm": ">= 90.5 % in 15 min", "ensemble": ">= 92.6 % in 20 min"}


def train_and_measure(name: str, channels: Path, work: Path) -> dict[str, Any]:
    from sentiment.cli.train import run  # imported late: `common` must put the repository on the path first

    base = work / name
    for channel in ("train", "validation", "test", "unlabeled"):
        (base / "input" / "data").mkdir(parents=True, exist_ok=True)
        (base / "input" / "data" / channel).symlink_to((channels / channel).resolve())
    paths = TrainingPaths.from_environment(
        {"SAGEMAKER_BASE_DIR": str(base), "SENTIMENT_CACHE_DIR": str(work / "cache")}
    )
    hp = parse_hyperparameters(FLAGS[name])
    print(f"== {name}: {' '.join(FLAGS[name])}", flush=True)
    run(hp, paths)
    card = json.loads((paths.model / "card.json").read_text())

    model = load_model(paths.model)
    save_model(model, base / "half", half=True)
    test = read_channel(channels / "test", "test")
    started = time.perf_counter()
    model.predict_proba(test.text)
    seconds = time.perf_counter() - started
    return {
        "model": name,
        "test_acc": round(card["test"]["accuracy"], 4),
        "val_acc": round(card["validation_accuracy"][card["model"]], 4),
        "train_minutes": round(card["training_seconds"] / 60, 2),
        "size_MB": round(_size(paths.model) / 1e6, 1),
        "size_fp16_MB": round(_size(base / "half") / 1e6, 1),
        "reviews/s": round(len(test) / seconds, 1),
        "target": TARGETS.get(name, ""),
        "stages_s": card["stage_seconds"],
        "test_metrics": card["test"],
    }


def _size(model: Path) -> int:
    return sum((model / name).stat().st_size for name in ("model.json", "weights.safetensors", "vocabulary.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=Path, default=REPOSITORY / "data" / "channels")
    parser.add_argument("--models", default=",".join(FLAGS), help="comma-separated, from: " + ", ".join(FLAGS))
    parser.add_argument("--results-name", default="accuracy")
    args = parser.parse_args()
    names = [name.strip() for name in args.models.split(",")]
    unknown = [name for name in names if name not in FLAGS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    if not (args.channels / "train").is_dir():
        parser.error(f"no channels in {args.channels}: run `make run` first")

    rows = []
    with tempfile.TemporaryDirectory(prefix="accuracy-") as work:
        for name in names:
            rows.append(train_and_measure(name, args.channels, Path(work)))
    print_table(
        rows, ["model", "test_acc", "val_acc", "train_minutes", "size_MB", "size_fp16_MB", "reviews/s", "target"]
    )
    path = write_results(args.results_name, {"channels": str(args.channels), "rows": rows})
    print(f"results: {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
