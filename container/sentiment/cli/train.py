"""`sentiment-train`: the training job. SageMaker's toolkit (`train`) runs it with the job's
hyperparameters as flags; people run it the same way, paths taken from the SageMaker contract.

    SAGEMAKER_BASE_DIR=local_test/test_dir sentiment-train --model lstm --epochs 3

Reads the channels (train required; validation carved from train when absent; test and unlabeled
optional), trains, writes the model, its metrics and card to the model folder and, with a test
channel, the evaluation report to the output data folder. On any failure it writes the reason to
the `failure` file and exits non-zero, before any work when the hyperparameters are wrong.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sentiment.artifacts import save_model
from sentiment.checkpoints import CheckpointStore
from sentiment.contract import TrainingPaths
from sentiment.data.channels import read_channel
from sentiment.data.splits import carve_validation
from sentiment.data.table import ReviewTable
from sentiment.errors import DataError, SentimentError
from sentiment.evaluation import card_traffic, evaluate, model_card, render_card, summary, write_evaluation
from sentiment.files import read_json, write_bytes_atomic, write_json_atomic
from sentiment.hyperparameters import HyperparameterError, Hyperparameters, describe, parse_hyperparameters
from sentiment.training import fit, job_fingerprint

log = logging.getLogger("sentiment.train")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(__doc__ + "\nHyperparameters (--name value; also read from hyperparameters.json):\n" + describe())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    paths = TrainingPaths.from_environment()
    try:
        hp = parse_hyperparameters(args, strings=_hyperparameters_file(paths.hyperparameters))
        run(hp, paths)
    except HyperparameterError as error:
        return _fail(paths, f"Invalid hyperparameters: {error}")
    except SentimentError as error:
        return _fail(paths, f"{type(error).__name__}: {error}")
    except Exception as error:  # the failure file must say why, whatever broke
        traceback.print_exc()
        return _fail(paths, f"Unexpected {type(error).__name__}: {error}")
    return 0


def run(hp: Hyperparameters, paths: TrainingPaths) -> None:
    started = time.perf_counter()
    print(f"hyperparameters: {json.dumps(hp.flat(), sort_keys=True)}", flush=True)
    channels = _read_channels(hp, paths)
    train, validation, test, unlabeled = (channels.get(name) for name in ("train", "validation", "test", "unlabeled"))
    assert train is not None and validation is not None
    job = job_fingerprint(hp, train, validation, unlabeled)
    result = fit(hp, train, validation, unlabeled, CheckpointStore(paths.checkpoints, job), report=_report)
    seconds = time.perf_counter() - started

    test_metrics = None
    if test is not None:
        test_metrics = evaluate(test.label, result.predictor.predict_proba(test.text))
        print(
            f"test_acc={test_metrics['accuracy']:.4f} test_auc={test_metrics['roc_auc']:.4f} test_reviews={len(test)}",
            flush=True,
        )
        write_evaluation(
            paths.output_data, "Test evaluation", test_metrics, result.history, {"model": hp.model, "preset": hp.preset}
        )
    # The validation reviews stand for new traffic: held out like it, unlike train, whose words the vocabulary holds.
    traffic = card_traffic(result.predictor, validation, "validation")
    card = model_card(hp, channels, result.timings, result.validation, seconds, test_metrics, traffic)
    paths.model.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        paths.model / "metrics.json",
        {"validation": result.validation, "test": summary(test_metrics), "history": result.history},
    )
    write_json_atomic(paths.model / "card.json", card)
    write_bytes_atomic(paths.model / "card.md", render_card(card).encode("utf-8"))
    save_model(result.predictor, paths.model)
    print(
        f"model: {paths.model} ({_size_mb(paths.model):.1f} MB) in {seconds:.0f} s",
        flush=True,
    )


def _read_channels(hp: Hyperparameters, paths: TrainingPaths) -> dict[str, ReviewTable]:
    folder = paths.channel("train")
    if folder is None:
        raise DataError(f"no train channel: expected reviews in {paths.channels / 'train'} (or SM_CHANNEL_TRAIN)")
    channels = {"train": read_channel(folder, "train", paths.cache)}
    for name in ("validation", "test", "unlabeled"):
        folder = paths.channel(name)
        if folder is not None:
            channels[name] = read_channel(folder, name, paths.cache)
    if "validation" not in channels:
        channels["train"], channels["validation"] = carve_validation(channels["train"], hp.validation_fraction, hp.seed)
        print(f"validation: {len(channels['validation']):,} reviews carved from train (seed {hp.seed})", flush=True)
    for name, table in channels.items():
        counts = ", ".join(f"{n:,} {label}" for label, n in table.label_counts().items() if n)
        print(f"channel {name}: {len(table):,} reviews ({counts})", flush=True)
        if name != "unlabeled":
            _require_both_labels(name, table)
    return channels


def _require_both_labels(name: str, table: ReviewTable) -> None:
    """A channel of one class teaches nothing (it would train to a constant) and cannot be evaluated."""
    counts = table.label_counts()
    missing = [label for label in ("positive", "negative") if counts[label] == 0]
    if missing:
        present = "positive" if counts["positive"] else "negative"
        raise DataError(
            f"channel {name!r}: all {len(table):,} reviews are {present}, none {missing[0]}: "
            "a sentiment model needs both positive and negative reviews in train, validation and test"
        )


def _size_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file()) / 1e6


def _hyperparameters_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        document = read_json(path)
    except ValueError as error:
        raise HyperparameterError(str(error)) from None
    if not isinstance(document, dict):
        raise HyperparameterError(f"{path}: expected a JSON object of name: value")
    return document


def _report(line: str) -> None:
    print(line, flush=True)


def _fail(paths: TrainingPaths, reason: str) -> int:
    print(f"error: {reason}", file=sys.stderr, flush=True)
    try:
        paths.write_failure(reason)
    except OSError as error:
        print(f"error: could not write {paths.failure}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
