"""Evaluation, in one place: the metrics of a model's scores, the report a person opens, and the model card.

`evaluate` gives accuracy, precision, recall, F1, ROC-AUC, log-loss, Brier score, the confusion
matrix, a 10-bin calibration table with its expected calibration error, and the ROC curve's points
(pure numpy). `write_evaluation` writes them with their plots (`sentiment.report` draws them);
`model_card` and `render_card` describe a trained model: data, settings, code, machine, results, and
the traffic it was made for (`traffic_figures`: words per review, share of unknown words, share of
positive and of uncertain verdicts), which `sentiment-drift` compares an endpoint's captured traffic with.
`sentiment-train` and `sentiment-evaluate` both write through here.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment import __version__
from sentiment.data.table import ReviewTable
from sentiment.files import write_bytes_atomic, write_json_atomic
from sentiment.hyperparameters import Hyperparameters
from sentiment.predictor import UNCERTAIN_BAND, UNKNOWN, Predictor, is_uncertain
from sentiment.report import render_report

CALIBRATION_BINS = 10
ROC_POINTS = 200  # the curve is thinned to this many points for reports
EPSILON = 1e-7  # log-loss clips probabilities to [EPSILON, 1 - EPSILON]
LENGTH_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # words per review, as the card shows them
LENGTH_BIN_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # deciles: ten bins of a tenth of the reviews each


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


# -- traffic: what the reviews and their verdicts look like ----------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Reviews as the model saw them and the verdicts they got, one entry per review, in order.

    `words` counts the model's own tokens (its tokenizer: lowercased, markup dropped, "n't" and "!" kept),
    `unknown` those of them not in its vocabulary.
    """

    words: np.ndarray
    unknown: np.ndarray
    labels: tuple[str, ...]
    scores: np.ndarray

    @classmethod
    def of(
        cls,
        token_lists: Sequence[Sequence[str]],
        known: Container[str],
        labels: Sequence[str],
        scores: Sequence[float],
    ) -> Traffic:
        """The traffic of tokenized reviews, given the vocabulary's words and each review's verdict."""
        if not len(token_lists) == len(labels) == len(scores):
            raise ValueError(f"{len(token_lists)} reviews but {len(labels)} labels and {len(scores)} scores")
        return cls(
            words=np.array([len(tokens) for tokens in token_lists], dtype=np.int64),
            # map over the bound __contains__ runs in C: 1.6x a generator of `not in` on 10,000 IMDb reviews.
            unknown=np.array(
                [len(tokens) - sum(map(known.__contains__, tokens)) for tokens in token_lists], dtype=np.int64
            ),
            labels=tuple(labels),
            scores=np.asarray(scores, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def unknown_share(self) -> np.ndarray:
        """Per review, the share of its words the model does not know (1 for a review with no words at all)."""
        return np.where(self.words > 0, self.unknown / np.maximum(self.words, 1), 1.0)

    @property
    def positive(self) -> np.ndarray:
        return np.array([label == "positive" for label in self.labels], dtype=bool)

    @property
    def uncertain(self) -> np.ndarray:
        return np.array([is_uncertain(label, score) for label, score in zip(self.labels, self.scores, strict=True)])


def scored_traffic(predictor: Predictor, texts: Sequence[str]) -> Traffic:
    """`texts` as `predictor` sees them, with the verdicts it gives them (what an endpoint would answer)."""
    token_lists = [predictor.tokenize(text) for text in texts]
    verdicts = predictor.verdicts(token_lists, predictor.probabilities_of_tokens(token_lists))
    return Traffic.of(token_lists, predictor.vocabulary.index, [v.label for v in verdicts], [v.score for v in verdicts])


def traffic_figures(traffic: Traffic) -> dict[str, Any]:
    """The figures of a stretch of traffic: words per review (quantiles and decile bins), the share of
    unknown words, and the shares of positive, uncertain and "unknown" verdicts. The model card holds
    them for the validation reviews; `sentiment-drift` computes them for captured traffic and compares."""
    if len(traffic) == 0:
        raise ValueError("no reviews to describe")
    words, unknown_share = traffic.words.astype(np.float64), traffic.unknown_share
    edges = sorted({round(float(value), 2) for value in np.quantile(words, LENGTH_BIN_EDGES)})
    positives, uncertain = int(traffic.positive.sum()), int(traffic.uncertain.sum())
    unknown_verdicts = sum(label == UNKNOWN for label in traffic.labels)
    return {
        "reviews": len(traffic),
        "words_per_review": {
            "mean": round(float(words.mean()), 2),
            "quantiles": {f"{q:g}": float(np.quantile(words, q)) for q in LENGTH_QUANTILES},
            "bins": {"edges": edges, "shares": [round(share, 6) for share in length_bin_shares(traffic.words, edges)]},
        },
        "unknown_word_share": {
            "mean": round(float(unknown_share.mean()), 6),
            "std": round(float(unknown_share.std()), 6),
        },
        "positive_share": round(positives / len(traffic), 6),
        "positives": positives,
        "uncertain_share": round(uncertain / len(traffic), 6),
        "uncertain": uncertain,
        "uncertain_band": list(UNCERTAIN_BAND),
        "unknown_verdict_share": round(unknown_verdicts / len(traffic), 6),
    }


def length_bin_counts(words: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """How many reviews fall in each bin the `edges` make: below the first, between two, from the last up."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(words, dtype=np.float64), side="right")
    return np.bincount(index, minlength=len(edges) + 1)


def length_bin_shares(words: np.ndarray, edges: Sequence[float]) -> list[float]:
    counts = length_bin_counts(words, edges)
    return (counts / max(1, counts.sum())).tolist()


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
    traffic: dict[str, Any] | None = None,
    data: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a reader needs to trust (or reproduce) the model: data, settings, code, machine, results, and
    `traffic` (`card_traffic`: the figures drift compares with). `data` describes the channels where
    `channels` holds only part of them (one rank's, on several instances)."""
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
        "traffic": traffic,
    }


def _data_line(name: str, entry: dict[str, Any]) -> str:
    if "mean_score" not in entry:
        return f"- {name}: {entry['reviews']:,} reviews, sha256 {entry['sha256']}"
    labelled = entry.get("labelled_by") or {}
    teacher = labelled.get("teacher")
    how = f"; labels {labelled['score']}" if "score" in labelled else ""
    how += f", teacher {teacher['base']}" if isinstance(teacher, dict) and "base" in teacher else ""
    return (
        f"- {name}: {entry['reviews']:,} soft-labelled texts for the LSTM (mean score {entry['mean_score']:.3f}"
        f"{how}), sha256 {entry['sha256']}"
    )


def card_traffic(predictor: Predictor, reviews: ReviewTable, source: str) -> dict[str, Any]:
    """The card's traffic figures: `reviews` (held out, as new traffic is) scored by `predictor`."""
    return {"source": source, "sha256": reviews.digest(), **traffic_figures(scored_traffic(predictor, reviews.text))}


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
        *(_data_line(name, entry) for name, entry in card["data"].items()),
        "",
        "## Hyperparameters",
        *(f"- {name}: {value}" for name, value in card["hyperparameters"].items()),
        "",
        *_traffic_lines(card.get("traffic")),
        "## Limits",
        "- Trained on long IMDb reviews of 2011 and earlier; short texts and other domains score less reliably.",
        "- Binary only: neutral or mixed reviews get whichever side their words lean to.",
        "",
    ]
    return "\n".join(lines)


def _traffic_lines(traffic: dict[str, Any] | None) -> list[str]:
    """The card's traffic section (what `sentiment-drift` compares with); nothing for a card without it."""
    if not traffic:
        return []
    words, band = traffic["words_per_review"], traffic["uncertain_band"]
    quantiles = ", ".join(f"{float(q):.0%} {value:g}" for q, value in words["quantiles"].items())
    return [
        f"## Traffic it was made for ({traffic['source']}: {traffic['reviews']:,} reviews, "
        "what `sentiment-drift` compares with)",
        f"- Words per review: mean {words['mean']:.1f}; quantiles {quantiles}",
        f"- Share of unknown words (per review, averaged): {traffic['unknown_word_share']['mean']:.2%}",
        f"- Positive verdicts: {traffic['positive_share']:.2%}",
        f"- Uncertain verdicts (score between {band[0]} and {band[1]}): {traffic['uncertain_share']:.2%}",
        "",
    ]


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
