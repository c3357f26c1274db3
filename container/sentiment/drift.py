"""Data drift: what an endpoint received, read from SageMaker Data Capture files, against the traffic its
model was made for (the model card's `traffic` figures, `sentiment.evaluation.traffic_figures`).

Capture files are JSON Lines, one object per invocation, under `<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/`:

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-12-02T13:00:00Z"}, "eventVersion": "0"}

`encoding` is JSON or CSV (the body as text, for the content types the endpoint's CaptureContentTypeHeader
names) or BASE64 (any other). A request is decoded exactly as the server decodes it
(`sentiment.serving.codecs.input_fn`, every content type it accepts) and its answer in any format the
server answers in; the verdicts are those the endpoint gave, never recomputed. A record that cannot be
read (not JSON, a field missing, a body the server would refuse, answers that do not match the reviews)
is skipped and counted, each named by file and line, while they are at most 1 % of the records; more,
and reading stops with an error naming the first. Answers that are errors ({"error": ...}) are counted
apart: they hold no verdict.

Each figure is "drifted" when two things hold: a two-sample test says the captured traffic differs from
the card's (p < 0.01), and the difference is large enough to matter (at least the figure's tolerance).
Many requests make tiny differences significant; a few make large ones noise: both conditions guard.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.errors import CaptureError
from sentiment.evaluation import Traffic, length_bin_counts, length_bin_shares, traffic_figures
from sentiment.predictor import LABELS, UNKNOWN
from sentiment.serving.codecs import CSV, JSON, JSON_LINES, PLAIN, input_fn, parse_media_type
from sentiment.serving.errors import ServingError

CAPTURE_SUFFIX = ".jsonl"
MAX_BAD_SHARE = 0.01  # unreadable records skipped (and listed) up to this share; beyond it the capture is refused
MIN_REVIEWS = 50  # below this, no test can tell drift from chance (and the length test needs 5 per bin)
SIGNIFICANCE = 0.01  # a figure can only drift when its two-sample test gives p below this
LISTED_PROBLEMS = 20  # skipped records named one by one in the summary


class BadRecord(ValueError):
    """One capture record that cannot be read; the message says why."""


# -- reading capture files -------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedRequest:
    """One captured invocation: its reviews, the verdicts the endpoint answered, and when."""

    reviews: list[str]
    labels: list[str]
    scores: list[float]
    hour: str  # "2026-12-02T13" from eventMetadata.inferenceTime, "" when absent


@dataclass
class Capture:
    """What capture files held: each readable review measured as the model sees it (its words, the unknown
    ones) with the endpoint's verdict, and what could not be read. Review texts are not kept."""

    files: int = 0
    records: int = 0
    requests: int = 0
    error_answers: int = 0
    skipped: list[str] = field(default_factory=list)  # "FILE line N: why"
    hours: Counter[str] = field(default_factory=Counter)  # requests per hour of inferenceTime
    words: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    @property
    def reviews(self) -> int:
        return len(self.labels)

    def add(self, request: CapturedRequest, measured: Traffic) -> None:
        self.requests += 1
        self.hours[request.hour or "unknown"] += 1
        self.words.extend(measured.words.tolist())
        self.unknown.extend(measured.unknown.tolist())
        self.labels.extend(measured.labels)
        self.scores.extend(measured.scores.tolist())

    def traffic(self) -> Traffic:
        return Traffic(
            np.array(self.words, dtype=np.int64),
            np.array(self.unknown, dtype=np.int64),
            tuple(self.labels),
            np.array(self.scores, dtype=np.float64),
        )


def read_capture(
    files: Iterable[tuple[str, bytes]], tokenize: Callable[[str], list[str]], known: Container[str]
) -> Capture:
    """The traffic in capture files given as (name, bytes), each review's words counted by the model's
    `tokenize` and vocabulary (`known`); CaptureError when the files cannot be used."""
    capture = Capture()
    for name, data in files:
        capture.files += 1
        for number, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            capture.records += 1
            try:
                request = parse_record(line)
            except BadRecord as error:
                capture.skipped.append(f"{name} line {number}: {error}")
                continue
            if request is None:
                capture.error_answers += 1
            else:
                tokens = [tokenize(review) for review in request.reviews]
                capture.add(request, Traffic.of(tokens, known, request.labels, request.scores))
    if capture.files == 0:
        raise CaptureError(f"no capture files (*{CAPTURE_SUFFIX}) found")
    allowed = max(1, int(MAX_BAD_SHARE * capture.records))
    if len(capture.skipped) > allowed:
        raise CaptureError(
            f"{len(capture.skipped)} of {capture.records} capture records cannot be read (at most {allowed} are "
            f"skipped); the first: {capture.skipped[0]}"
        )
    if capture.reviews < MIN_REVIEWS:
        raise CaptureError(
            f"{capture.reviews} reviews in {capture.records} captured records: at least {MIN_REVIEWS} are needed "
            "to tell drift from chance"
        )
    return capture


def parse_record(line: bytes) -> CapturedRequest | None:
    """One capture line as a request with its verdicts; None when the endpoint answered an error."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRecord(f"not a JSON line ({error})") from None
    captured = _field(record, "captureData", dict, "the record")
    body, content_type = decode_data(_field(captured, "endpointInput", dict, "captureData"), "endpointInput")
    answer, answer_type = decode_data(_field(captured, "endpointOutput", dict, "captureData"), "endpointOutput")
    verdicts = decode_answers(answer, answer_type)
    if verdicts is None:  # the server refused the request: its input need not be readable
        return None
    try:
        reviews = input_fn(body, content_type).reviews
    except ServingError as error:
        raise BadRecord(f"endpointInput: {error.message}") from None
    if len(verdicts) != len(reviews):
        raise BadRecord(f"{len(reviews)} reviews in endpointInput but {len(verdicts)} answers in endpointOutput")
    metadata = record.get("eventMetadata") if isinstance(record.get("eventMetadata"), dict) else {}
    time = metadata.get("inferenceTime")
    hour = time[:13] if isinstance(time, str) and re.match(r"\d{4}-\d\d-\d\dT\d\d", time) else ""
    return CapturedRequest(reviews, [label for label, _ in verdicts], [score for _, score in verdicts], hour)


def decode_data(part: dict[str, Any], where: str) -> tuple[bytes, str]:
    """The body and content type of an endpointInput or endpointOutput, whatever its encoding."""
    data = _field(part, "data", str, where)
    content_type = _field(part, "observedContentType", str, where)
    encoding = part.get("encoding")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True), content_type
        except binascii.Error as error:
            raise BadRecord(f"{where}: data is not base64 ({error})") from None
    if encoding in ("JSON", "CSV"):
        return data.encode("utf-8"), content_type
    raise BadRecord(f"{where}: encoding {encoding!r} is not one of JSON, CSV, BASE64")


def decode_answers(body: bytes, content_type: str) -> list[tuple[str, float]] | None:
    """(label, score) per review from an answer in any format the server answers in; None for an error answer."""
    media_type, _ = parse_media_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRecord("endpointOutput: not UTF-8 text") from None
    lines = [line for line in text.split("\n") if line.strip()]
    if media_type == JSON:
        document = _json(text, "endpointOutput")
        if isinstance(document, dict) and "error" in document:
            return None
        if isinstance(document, dict) and isinstance(document.get("predictions"), list):
            document = document["predictions"]
        return [_verdict(item) for item in (document if isinstance(document, list) else [document])]
    if media_type == JSON_LINES:
        return [_verdict(_json(line, "endpointOutput")) for line in lines]
    if media_type in (CSV, PLAIN):
        return [_delimited_verdict(line.strip(), "," if media_type == CSV else " ") for line in lines]
    raise BadRecord(f"endpointOutput: content type {content_type!r} is not one the server answers in")


def _delimited_verdict(line: str, separator: str) -> tuple[str, float]:
    """`label,score` (CSV) or `label score` (plain text), as the server writes them."""
    fields = line.split(separator)
    if len(fields) != 2:
        raise BadRecord(f"endpointOutput: {line[:80]!r} is not a verdict (label{separator}score)")
    return _verdict({"label": fields[0], "score": fields[1]})


def _verdict(item: Any) -> tuple[str, float]:
    if not isinstance(item, dict) or item.get("label") not in (*LABELS, UNKNOWN):
        raise BadRecord(f"endpointOutput: {str(item)[:80]!r} is not a verdict (label and score)")
    try:
        score = float(item.get("score"))
    except (TypeError, ValueError):
        raise BadRecord(f"endpointOutput: score {item.get('score')!r} is not a number") from None
    if not 0.0 <= score <= 1.0:
        raise BadRecord(f"endpointOutput: score {score} is not a probability")
    return item["label"], score


def _field(document: Any, name: str, kind: type, where: str) -> Any:
    value = document.get(name) if isinstance(document, dict) else None
    if not isinstance(value, kind):
        raise BadRecord(f"{where} has no {name}")
    return value


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadRecord(f"{where}: malformed JSON ({error.msg})") from None


# -- where capture files come from -----------------------------------------------------------------


def capture_files(source: str, s3_client: Any = None) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every *.jsonl below a folder or an s3://bucket/prefix, in name order (hour by hour)."""
    if source.startswith("s3://"):
        yield from _s3_files(source, s3_client)
        return
    folder = Path(source)
    if not folder.is_dir():
        raise CaptureError(f"{source}: no such folder (give a capture folder or s3://bucket/prefix)")
    for path in sorted(folder.rglob(f"*{CAPTURE_SUFFIX}")):
        yield str(path), path.read_bytes()


def _s3_files(uri: str, client: Any) -> Iterator[tuple[str, bytes]]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise CaptureError(f"{uri}: no bucket named (s3://bucket/prefix)")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = sorted(item["Key"] for page in pages for item in page.get("Contents", []))
    for key in (key for key in keys if key.endswith(CAPTURE_SUFFIX)):
        yield f"s3://{bucket}/{key}", client.get_object(Bucket=bucket, Key=key)["Body"].read()


# -- comparing with the card -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How a figure is judged: which test, which measure of difference, and how large a difference matters."""

    test: str
    difference: str
    short: str  # the difference's name in the command's lines
    tolerance: float


RULES = {
    "words_per_review": Rule(
        "chi-square test of homogeneity over the card's ten length bins (its deciles)",
        "population stability index (PSI) over the same bins",
        "PSI",
        0.2,  # the usual line for a shift that needs attention (0.1-0.2 moderate)
    ),
    "unknown_word_share": Rule(
        "two-sample z-test of the mean share of unknown words per review",
        "absolute difference of the means",
        "difference",
        0.05,  # 5 points: the bundled model's validation reviews average 1.4 %
    ),
    "positive_share": Rule(
        "two-sample z-test of proportions",
        "absolute difference of the shares",
        "difference",
        0.10,  # 10 points: real traffic leans with the films of the week, not by half
    ),
    "uncertain_share": Rule(
        "two-sample z-test of proportions",
        "absolute difference of the shares",
        "difference",
        0.05,  # 5 points: the bundled model's validation reviews are uncertain 3.6 % of the time
    ),
}


@dataclass(frozen=True)
class FigureVerdict:
    figure: str
    reference: float
    captured: float
    p_value: float
    difference: float
    rule: Rule

    @property
    def drifted(self) -> bool:
        return self.p_value < SIGNIFICANCE and self.difference >= self.rule.tolerance

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "verdict": "drifted" if self.drifted else "within range",
            "reference": round(self.reference, 6),
            "captured": round(self.captured, 6),
            "p_value": float(f"{self.p_value:.3g}"),
            "difference": round(self.difference, 6),
            "rule": (
                f"drifted when the {self.rule.test} gives p < {SIGNIFICANCE} and the {self.rule.difference} "
                f"is at least {self.rule.tolerance:g}"
            ),
        }


def compare(reference: dict[str, Any], traffic: Traffic) -> list[FigureVerdict]:
    """Each figure of `traffic` judged against the card's `reference` (its `traffic` section)."""
    captured = traffic_figures(traffic)
    return [
        length_verdict(reference["words_per_review"], reference["reviews"], traffic.words),
        mean_verdict("unknown_word_share", reference, traffic.unknown_share),
        proportion_verdict(
            "positive_share", reference["positives"], reference["reviews"], captured["positives"], len(traffic)
        ),
        proportion_verdict(
            "uncertain_share", reference["uncertain"], reference["reviews"], captured["uncertain"], len(traffic)
        ),
    ]


def length_verdict(reference: dict[str, Any], reference_reviews: int, words: np.ndarray) -> FigureVerdict:
    """Words per review, binned by the card's deciles: the reference's counts against the captured ones."""
    edges, shares = reference["bins"]["edges"], np.asarray(reference["bins"]["shares"], dtype=np.float64)
    counts = length_bin_counts(words, edges).astype(np.float64)
    expected = shares * reference_reviews
    statistic, degrees = chi_square_homogeneity(expected, counts)
    captured_shares = counts / counts.sum()
    return FigureVerdict(
        "words_per_review",
        reference=float(reference["quantiles"]["0.5"]),
        captured=float(np.median(words)),
        p_value=chi_square_p_value(statistic, degrees),
        difference=population_stability_index(shares, captured_shares),
        rule=RULES["words_per_review"],
    )


def mean_verdict(figure: str, reference: dict[str, Any], values: np.ndarray) -> FigureVerdict:
    mean, std, reviews = reference[figure]["mean"], reference[figure]["std"], reference["reviews"]
    captured = float(values.mean())
    error = math.sqrt(std**2 / reviews + float(values.var(ddof=1)) / len(values))
    return FigureVerdict(
        figure, mean, captured, _two_sided(captured - mean, error), abs(captured - mean), RULES[figure]
    )


def proportion_verdict(figure: str, hits: int, total: int, captured_hits: int, captured_total: int) -> FigureVerdict:
    reference, captured = hits / total, captured_hits / captured_total
    pooled = (hits + captured_hits) / (total + captured_total)
    error = math.sqrt(pooled * (1 - pooled) * (1 / total + 1 / captured_total))
    return FigureVerdict(
        figure, reference, captured, _two_sided(captured - reference, error), abs(captured - reference), RULES[figure]
    )


def _two_sided(difference: float, error: float) -> float:
    """The two-sided p-value of a normal statistic; with no spread at all, 1 for no difference, else 0."""
    if error == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    return math.erfc(abs(difference / error) / math.sqrt(2))


def chi_square_homogeneity(first: np.ndarray, second: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic and its degrees of freedom for two samples' counts over the same bins."""
    keep = (first + second) > 0
    first, second = first[keep], second[keep]
    table = np.vstack([first, second])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum()), max(1, int(keep.sum()) - 1)


def chi_square_p_value(statistic: float, degrees: int) -> float:
    """P(X >= statistic) for X chi-square with `degrees` degrees of freedom (the regularized upper gamma)."""
    return _upper_gamma(degrees / 2, statistic / 2)


def _upper_gamma(a: float, x: float) -> float:
    """Q(a, x), the regularized upper incomplete gamma function: series below a + 1, continued fraction above."""
    if x <= 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        for n in range(1, 1000):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300  # Lentz's method for the continued fraction
    b, c, d = x + 1 - a, 1 / tiny, 1 / (x + 1 - a)
    h = d
    for n in range(1, 1000):
        an = -n * (n - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_prefix) * h


def population_stability_index(expected: np.ndarray, actual: np.ndarray, floor: float = 1e-4) -> float:
    """sum((actual - expected) * ln(actual / expected)) over bins; empty bins count as `floor` so it stays finite."""
    expected, actual = np.maximum(expected, floor), np.maximum(actual, floor)
    return float(((actual - expected) * np.log(actual / expected)).sum())


# -- the summary -----------------------------------------------------------------------------------


def drift_summary(source: str, model: str, card: dict[str, Any], capture: Capture) -> dict[str, Any]:
    """Everything the JSON summary and the HTML report show: the verdicts, the rules, and what they came from."""
    reference, traffic = card["traffic"], capture.traffic()
    verdicts = [verdict.to_json() for verdict in compare(reference, traffic)]
    captured = traffic_figures(traffic)
    return {
        "source": source,
        "model": model,
        "reference": {key: reference[key] for key in ("source", "sha256", "reviews")},
        "capture": {
            "files": capture.files,
            "records": capture.records,
            "requests": capture.requests,
            "reviews": capture.reviews,
            "error_answers": capture.error_answers,
            "skipped": len(capture.skipped),
            "skipped_records": capture.skipped[:LISTED_PROBLEMS],
            "skip_rule": f"unreadable records are skipped and listed while they are at most {MAX_BAD_SHARE:.0%} "
            "of the records; beyond that the capture is refused",
            "requests_per_hour": dict(sorted(capture.hours.items())),
        },
        "drifted": [verdict["figure"] for verdict in verdicts if verdict["verdict"] == "drifted"],
        "figures": verdicts,
        "length_bins": {
            "edges": reference["words_per_review"]["bins"]["edges"],
            "reference": reference["words_per_review"]["bins"]["shares"],
            "captured": [
                round(share, 6)
                for share in length_bin_shares(traffic.words, reference["words_per_review"]["bins"]["edges"])
            ],
        },
        "captured_figures": captured,
        "reference_figures": reference,
    }


def verdict_lines(summary: dict[str, Any]) -> Sequence[str]:
    """One line per figure, as the command prints them."""
    return [
        f"{figure['figure']}: {figure['verdict']} (card {figure['reference']:.4g}, captured {figure['captured']:.4g}; "
        f"p={figure['p_value']:.3g}, {rule.short} {figure['difference']:.3g}, drifted from {rule.tolerance:g})"
        for figure, rule in ((figure, RULES[figure["figure"]]) for figure in summary["figures"])
    ]
