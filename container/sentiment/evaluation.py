"""Metrics of a binary classifier's scores against labels: pure numpy, no I/O.

`evaluate` gives accuracy, precision, recall, F1, ROC-AUC, log-loss, Brier score, the confusion
matrix, a 10-bin calibration table with its expected calibration error, and the ROC curve's points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
