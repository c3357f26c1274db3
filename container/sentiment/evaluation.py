"""Evaluation, in one place: the metrics of a model's scores, the report a person opens, and the model card.

`evaluate` gives accuracy, precision, recall, F1, ROC-AUC, log-loss, Brier score, the confusion
matrix, a 10-bin calibration table with its expected calibration error, and the ROC curve's points
(pure numpy). `write_evaluation` writes them with their plots (`sentiment.report` draws them);
`model_card` and `render_card` describe a trained model: data, settings, code, machine, results.
`sentiment-train` and `sentiment-evaluate` both write through here.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment import __version__
from sentiment.data.table import ReviewTable
from sentiment.files import write_bytes_atomic, write_json_atomic
from sentiment.hyperparameters import Hyperparameters
from sentiment.report import render_report

CALIBRATION_BINS = 10
ROC_POINTS = 200  # the curve is thinned to this many points for reports
EPSILON = 1e-7  # log-loss clips probabilities to [EPSILON, 1 - EPSILON]


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """All metrics of `scores` (probability of positive) for `labels` (1 positive, 0 negative)."""
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels and scores must be two non-empty sequences of the same length")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    predicted = scores >= threshold
    positive = labels == 1
    tp, fp = int(np.sum(predicted & positive)), int(np.sum(predicted & ~positive))
    fn, tn = int(np.sum(~predicted & positive)), int(np.sum(~predicted & ~positive))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    clipped = np.clip(scores, EPSILON, 1 - EPSILON)
    calibration = calibration_table(labels, scores)
    return {
        "reviews": len(labels),
        "accuracy": (tp + tn) / len(labels),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": roc_auc(labels, scores),
        "log_loss": float(-np.mean(positive * np.log(clipped) + ~positive * np.log(1 - clipped))),
        "brier": float(np.mean((scores - labels) ** 2)),
        "confusion": {"true_positive": tp, "false_positive": fp, "true_negative": tn, "false_negative": fn},
        "calibration": calibration,
        "expected_calibration_error": sum(b["count"] * abs(b["mean_score"] - b["positive_rate"]) for b in calibration)
        / len(labels),
        "roc_curve": roc_curve(labels, scores),
    }


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties half)."""
    positives, negatives = int(np.sum(labels == 1)), int(np.sum(labels == 0))
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """False- and true-positive rates as the threshold falls through the scores (thinned)."""
    order = np.argsort(-scores, kind="stable")
    hits = (labels[order] == 1).astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]  # last index of each score
    tpr = np.r_[0.0, np.cumsum(hits)[distinct] / max(1.0, hits.sum())]
    fpr = np.r_[0.0, np.cumsum(1 - hits)[distinct] / max(1.0, (1 - hits).sum())]
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).astype(int))
    return {"false_positive_rate": fpr[keep].round(5).tolist(), "true_positive_rate": tpr[keep].round(5).tolist()}


def calibration_table(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Per score bin: how many reviews, their mean score, and the share that are positive."""
    index = np.minimum((scores * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        table.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": count,
                "mean_score": float(scores[members].mean()) if count else 0.0,
                "positive_rate": float(labels[members].mean()) if count else 0.0,
            }
        )
    return table


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


# -- the report and the model card -----------------------------------------------------------------


def write_evaluation(
    directory: Path, title: str, metrics: dict[str, Any], history: list[dict[str, float]], details: dict[str, Any]
) -> None:
    """evaluation.json and evaluation.html (the report a person opens) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "evaluation.json", {"metrics": metrics, "history": history, "details": details})
    write_bytes_atomic(directory / "evaluation.html", render_report(title, metrics, history, details).encode("utf-8"))


def model_card(
    hp: Hyperparameters,
    channels: dict[str, ReviewTable],
    timings: dict[str, float],
    validation: dict[str, float],
    seconds: float,
    test_metrics: dict[str, Any] | None,
    data: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) the model: data, settings, code, machine, results.
    `data` describes the channels where `channels` holds only part of them (one rank's, on several instances)."""
    return {
        "model": hp.model,
        "preset": hp.preset,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "package_version": __version__,
        "git_commit": _git_commit(),
        "training_seconds": round(seconds, 1),
        "stage_seconds": {name: round(value, 1) for name, value in timings.items()},
        "hardware": _hardware(),
        "data": data or {name: {"reviews": len(table), "sha256": table.digest()} for name, table in channels.items()},
        "hyperparameters": hp.flat(),
        "validation_accuracy": validation,
        "test": summary(test_metrics),
    }


def render_card(card: dict[str, Any]) -> str:
    """The card as the Markdown a person reads (card.md)."""
    test, hardware = card["test"] or {}, card["hardware"]
    lines = [
        f"# Model card: {card['model']} ({card['preset']} preset)",
        "",
        "Sentiment of English movie reviews (positive / negative), trained on IMDb reviews (Maas et al., 2011).",
        "",
        f"- Created: {card['created']}, package {card['package_version']}, commit {card['git_commit']}",
        f"- Training time: {card['training_seconds']:.0f} s on {hardware['cpu']} "
        f"({hardware['threads']} threads, {hardware['device']})",
        f"- Validation accuracy: {', '.join(f'{k} {v:.4f}' for k, v in card['validation_accuracy'].items())}",
        f"- Test accuracy: {test['accuracy']:.4f} on {test['reviews']:,} reviews (ROC-AUC {test['roc_auc']:.4f})"
        if test
        else "- Test: no test channel was given",
        "",
        "## Data",
        *(f"- {name}: {entry['reviews']:,} reviews, sha256 {entry['sha256']}" for name, entry in card["data"].items()),
        "",
        "## Hyperparameters",
        *(f"- {name}: {value}" for name, value in card["hyperparameters"].items()),
        "",
        "## Limits",
        "- Trained on long IMDb reviews of 2011 and earlier; short texts and other domains score less reliably.",
        "- Binary only: neutral or mixed reviews get whichever side their words lean to.",
        "",
    ]
    return "\n".join(lines)


def summary(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline metrics, without the curves and tables."""
    if metrics is None:
        return None
    return {
        key: metrics[key]
        for key in ("reviews", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "confusion")
    }


def _hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _git_commit() -> str:
    """The commit the code came from: baked into the image at build time, or asked of git locally."""
    if commit := os.environ.get("SENTIMENT_GIT_COMMIT"):
        return commit
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() if found.returncode == 0 else "unknown"
