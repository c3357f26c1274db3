"""sentiment.evaluation: metrics on toy inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentiment.evaluation import Traffic, calibration_table, evaluate, length_bin_counts, roc_auc, traffic_figures


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


# -- traffic figures --------------------------------------------------------------------------------


def traffic(words: list[int], unknown: list[int], labels: list[str], scores: list[float]) -> Traffic:
    return Traffic(np.array(words), np.array(unknown), tuple(labels), np.array(scores, dtype=np.float64))


def test_traffic_counts_each_reviews_words_and_the_unknown_ones() -> None:
    known = {"great", "film", "dull"}
    measured = Traffic.of(
        [["great", "film", "zzz"], ["dull"], []], known, ["positive", "negative", "unknown"], [0.9, 0.2, 0.5]
    )
    assert measured.words.tolist() == [3, 1, 0] and measured.unknown.tolist() == [1, 0, 0]
    assert measured.unknown_share.tolist() == pytest.approx([1 / 3, 0.0, 1.0])  # no words at all: nothing known
    with pytest.raises(ValueError, match="2 reviews but 1 labels"):
        Traffic.of([["a"], ["b"]], known, ["positive"], [0.9])


def test_traffic_figures_hold_what_drift_compares() -> None:
    figures = traffic_figures(
        traffic(
            [10, 20, 30, 40], [0, 2, 3, 40], ["positive", "negative", "positive", "unknown"], [0.9, 0.45, 0.59, 0.5]
        )
    )
    assert figures["reviews"] == 4 and figures["words_per_review"]["mean"] == 25.0
    assert figures["words_per_review"]["quantiles"]["0.5"] == 25.0
    assert figures["unknown_word_share"]["mean"] == pytest.approx((0 + 0.1 + 0.1 + 1.0) / 4)
    assert figures["positive_share"] == 0.5 and figures["positives"] == 2
    # 0.45 and 0.59 lie inside (0.4, 0.6); the "unknown" verdict's 0.5 is no verdict, so not uncertain.
    assert figures["uncertain"] == 2 and figures["uncertain_band"] == [0.4, 0.6]
    assert figures["unknown_verdict_share"] == 0.25
    bins = figures["words_per_review"]["bins"]
    assert len(bins["shares"]) == len(bins["edges"]) + 1 and sum(bins["shares"]) == pytest.approx(1.0)


def test_length_bins_put_each_review_below_between_or_above_the_edges() -> None:
    # A review as long as an edge belongs to the bin above it (the same rule for the card and for traffic).
    assert length_bin_counts(np.array([1, 5, 9, 10, 11, 50]), [5.0, 10.0]).tolist() == [1, 2, 3]
    # Reviews all of one length make one edge, not nine equal ones.
    figures = traffic_figures(traffic([24] * 10, [0] * 10, ["positive"] * 10, [0.9] * 10))
    assert figures["words_per_review"]["bins"] == {"edges": [24.0], "shares": [0.0, 1.0]}


def test_no_traffic_has_no_figures() -> None:
    with pytest.raises(ValueError, match="no reviews"):
        traffic_figures(traffic([], [], [], []))
