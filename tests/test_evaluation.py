"""sentiment.evaluation: metrics on toy inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentiment.evaluation import calibration_table, evaluate, roc_auc


def test_metrics_on_a_small_known_case() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    metrics = evaluate(labels, scores)
    assert metrics["confusion"] == {"true_positive": 2, "false_positive": 1, "true_negative": 2, "false_negative": 1}
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)  # 8 of the 9 positive-negative pairs are ordered right
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.3, 0.4, 0.8, 0.9]))
    assert metrics["log_loss"] == pytest.approx(expected_loss)
    assert metrics["brier"] == pytest.approx(np.mean((scores - labels) ** 2))


def test_perfect_and_reversed_rankings() -> None:
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(labels, np.full(4, 0.5)) == 0.5  # ties count half
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_roc_curve_runs_from_corner_to_corner() -> None:
    curve = evaluate(np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.9, 0.4, 0.35, 0.8]))["roc_curve"]
    assert curve["false_positive_rate"][0] == 0 and curve["true_positive_rate"][0] == 0
    assert curve["false_positive_rate"][-1] == 1 and curve["true_positive_rate"][-1] == 1
    assert curve["false_positive_rate"] == sorted(curve["false_positive_rate"])


def test_calibration_bins_and_error() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.05, 0.05, 0.95, 0.95])
    table = calibration_table(labels, scores)
    assert [b["count"] for b in table] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table[9]["mean_score"] == pytest.approx(0.95) and table[9]["positive_rate"] == 1.0
    assert evaluate(labels, scores)["expected_calibration_error"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("labels", "scores"), [([], []), ([1, 0], [0.5]), ([2, 0], [0.1, 0.2])], ids=["empty", "lengths", "labels"]
)
def test_bad_inputs_are_refused(labels: list, scores: list) -> None:
    with pytest.raises(ValueError):
        evaluate(np.array(labels), np.array(scores))
