"""sentiment.drift: capture records decoded in every content type and encoding, bad records named or refused,
and each figure's test giving the answers known by hand."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from sentiment.drift import (
    MIN_REVIEWS,
    BadRecord,
    chi_square_p_value,
    compare,
    decode_answers,
    parse_record,
    population_stability_index,
    proportion_verdict,
    read_capture,
)
from sentiment.errors import CaptureError
from sentiment.evaluation import Traffic, traffic_figures


def part(body: str | bytes, content_type: str, mode: str, encoding: str) -> dict[str, str]:
    raw = body.encode() if isinstance(body, str) else body
    data = base64.b64encode(raw).decode() if encoding == "BASE64" else raw.decode()
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def record(
    body: str | bytes,
    content_type: str,
    answer: str,
    answer_type: str = "application/json",
    encoding: str = "JSON",
    time: str = "2026-12-02T13:04:05.123Z",
) -> bytes:
    """A capture line as SageMaker writes it (AWS's Data Capture format)."""
    document = {
        "captureData": {
            "endpointInput": part(body, content_type, "INPUT", encoding),
            "endpointOutput": part(answer, answer_type, "OUTPUT", encoding),
        },
        "eventMetadata": {"eventId": "7b8c5b1e-0000-4000-8000-000000000000", "inferenceTime": time},
        "eventVersion": "0",
    }
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "reviews"),
    [
        ("A fine film.", "text/plain", "BASE64", ["A fine film."]),
        ('"A fine film."', "application/json", "JSON", ["A fine film."]),
        ('["One.", {"text": "Two."}]', "application/json", "JSON", ["One.", "Two."]),
        (
            '{"instances": ["One.", "Two."], "explain": true}',
            "application/json; charset=utf-8",
            "JSON",
            ["One.", "Two."],
        ),
        ('"One."\n{"text": "Two."}\n', "application/jsonlines", "JSON", ["One.", "Two."]),
        ('One.\n"Two, with a comma."\n', "text/csv", "CSV", ["One.", "Two, with a comma."]),
        ('"One."\n"Two."\n', "application/jsonlines", "BASE64", ["One.", "Two."]),
    ],
)
def test_every_content_type_the_server_accepts_is_decoded_as_the_server_decodes_it(
    body: str, content_type: str, encoding: str, reviews: list[str]
) -> None:
    answer = json.dumps([{"label": "positive", "score": 0.9}] * len(reviews))
    if len(reviews) == 1:
        answer = json.dumps({"label": "positive", "score": 0.9})
    request = parse_record(record(body, content_type, answer, encoding=encoding))
    assert request is not None and request.reviews == reviews
    assert request.labels == ["positive"] * len(reviews) and request.hour == "2026-12-02T13"


@pytest.mark.parametrize(
    ("answer", "answer_type"),
    [
        ('[{"label": "positive", "score": 0.9}, {"label": "unknown", "score": 0.5}]', "application/json"),
        (
            '{"predictions": [{"label": "positive", "score": 0.9}, {"label": "unknown", "score": 0.5}]}',
            "application/json",
        ),
        ('{"label": "positive", "score": 0.9}\n{"label": "unknown", "score": 0.5}\n', "application/jsonlines"),
        ("positive,0.900000\nunknown,0.500000\n", "text/csv"),
        ("positive 0.900000\nunknown 0.500000\n", "text/plain; charset=utf-8"),
    ],
)
def test_every_answer_format_gives_its_verdicts(answer: str, answer_type: str) -> None:
    assert decode_answers(answer.encode(), answer_type) == [("positive", 0.9), ("unknown", 0.5)]


def test_an_error_answer_holds_no_verdict() -> None:
    error = '{"error": "bad_request", "message": "the review is empty"}'
    assert parse_record(record('""', "application/json", error)) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"captureData": ', "not a JSON line"),
        (b'{"eventVersion": "0"}', "the record has no captureData"),
        (json.dumps({"captureData": {"endpointInput": {}}}).encode(), "endpointInput has no data"),
        (record("x", "text/plain", "{}", encoding="GZIP"), "encoding 'GZIP' is not one of JSON, CSV, BASE64"),
        (record("x", "image/png", '{"label": "positive", "score": 0.9}', encoding="BASE64"), "is not supported"),
        (record('["a", "b"]', "application/json", '{"label": "positive", "score": 0.9}'), "2 reviews in endpointInput"),
        (record('"a"', "application/json", '{"label": "maybe", "score": 0.9}'), "is not a verdict"),
        (record('"a"', "application/json", '{"label": "positive", "score": 1.5}'), "not a probability"),
        (record('"a"', "application/json", "positive 0.9", answer_type="application/xml"), "not one the server"),
    ],
)
def test_a_bad_record_says_why(line: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        parse_record(line)


def good_lines(count: int) -> list[bytes]:
    return [record(f'"Review {n}."', "application/json", '{"label": "negative", "score": 0.2}') for n in range(count)]


def test_one_bad_line_among_many_is_skipped_counted_and_named() -> None:
    lines = good_lines(150)
    lines.insert(7, b"{truncated")
    capture = read_capture([("capture/a.jsonl", b"\n".join(lines) + b"\n")], str.split, {"Review"})
    assert capture.records == 151 and capture.reviews == 150 and capture.requests == 150
    # Each review is kept as its counts only: "Review 7." is 2 words here, "Review" known and "7." not.
    assert capture.words[:2] == [2, 2] and capture.unknown[:2] == [1, 1]
    assert capture.hours == {"2026-12-02T13": 150} and capture.traffic().labels == ("negative",) * 150
    assert capture.skipped == ["capture/a.jsonl line 8: not a JSON line (Expecting property name enclosed in "
                               "double quotes: line 1 column 2 (char 1))"]  # fmt: skip


def test_more_bad_lines_than_one_in_a_hundred_refuse_the_capture() -> None:
    lines = good_lines(150) + [b"not json"] * 3
    with pytest.raises(CaptureError, match=r"3 of 153 capture records cannot be read .* the first: b.jsonl line 151"):
        read_capture([("b.jsonl", b"\n".join(lines))], str.split, set())


def test_no_files_or_too_few_reviews_are_refused() -> None:
    with pytest.raises(CaptureError, match="no capture files"):
        read_capture([], str.split, set())
    with pytest.raises(CaptureError, match=f"{MIN_REVIEWS - 1} reviews in {MIN_REVIEWS - 1} captured records"):
        read_capture([("c.jsonl", b"\n".join(good_lines(MIN_REVIEWS - 1)))], str.split, set())


def test_the_chi_square_p_value_matches_its_tables() -> None:
    # Critical values of the chi-square distribution with 9 degrees of freedom: 16.919 at 5 %, 21.666 at 1 %.
    assert chi_square_p_value(16.919, 9) == pytest.approx(0.05, abs=1e-4)
    assert chi_square_p_value(21.666, 9) == pytest.approx(0.01, abs=1e-4)
    assert chi_square_p_value(3.841, 1) == pytest.approx(0.05, abs=1e-4)
    assert chi_square_p_value(0.0, 9) == 1.0 and chi_square_p_value(400.0, 9) < 1e-60


def test_the_stability_index_is_zero_for_the_same_shares_and_grows_with_a_shift() -> None:
    even = np.full(10, 0.1)
    assert population_stability_index(even, even) == 0.0
    shifted = np.array([0.55, 0.45] + [0.0] * 8)
    assert population_stability_index(even, shifted) > 1.0


def test_a_share_drifts_only_when_the_difference_is_both_clear_and_large() -> None:
    assert proportion_verdict("positive_share", 500, 1000, 480, 1000).drifted is False  # 2 points: noise
    assert proportion_verdict("positive_share", 500, 1000, 300, 1000).drifted is True  # 20 points, p ~ 1e-19
    # 40 points but from 5 requests: not clear (p > 0.01), so not called drift.
    few = proportion_verdict("positive_share", 500, 1000, 1, 5)
    assert few.difference > 0.1 and few.p_value > 0.01 and not few.drifted
    # 3 points over a million reviews: clear, but under the 10-point tolerance.
    assert proportion_verdict("positive_share", 500_000, 1_000_000, 530_000, 1_000_000).drifted is False


def traffic(rng: np.random.Generator, count: int, mean_words: float, positive: float, unknown: float) -> Traffic:
    words = np.maximum(1, rng.poisson(mean_words, count))
    labels = np.where(rng.random(count) < positive, "positive", "negative")
    scores = np.where(labels == "positive", rng.uniform(0.5, 1.0, count), rng.uniform(0.0, 0.5, count))
    return Traffic(words, rng.binomial(words, unknown), tuple(labels), scores)


def test_traffic_like_the_cards_is_within_range_and_other_traffic_drifts() -> None:
    rng = np.random.default_rng(3)
    reference = traffic_figures(traffic(rng, 2500, 230, 0.5, 0.015))
    same = compare(reference, traffic(rng, 400, 230, 0.5, 0.015))
    assert [verdict.drifted for verdict in same] == [False, False, False, False]
    short = {v.figure: v for v in compare(reference, traffic(rng, 400, 8, 0.5, 0.3))}
    assert short["words_per_review"].drifted and short["unknown_word_share"].drifted
    assert not short["positive_share"].drifted
    negative = {v.figure: v for v in compare(reference, traffic(rng, 400, 230, 0.1, 0.015))}
    assert negative["positive_share"].drifted and not negative["words_per_review"].drifted
    assert math.isclose(negative["positive_share"].reference, reference["positive_share"])


@pytest.mark.parametrize("line", ["positive", "positive,0.9,extra", "positive;0.9"])
def test_a_csv_answer_is_a_label_and_a_score_exactly(line: str) -> None:
    with pytest.raises(BadRecord, match="is not a verdict"):
        decode_answers(f"{line}\n".encode(), "text/csv")
