"""Request bodies to reviews and results to response bodies: SageMaker's `input_fn` and `output_fn`.

Content types (the request):

| Content-Type            | body                                                        | shape     |
| ----------------------- | ----------------------------------------------------------- | --------- |
| text/plain              | one review (in Batch Transform, MultiRecord: one per line)  | single    |
| application/json        | a review; a list of reviews; {"instances": [...]}           | as given  |
| application/jsonlines   | one review per line: a JSON string or {"text": "..."}       | lines     |
| text/csv                | one review per record, one field (quote commas and breaks)  | lines     |

A review in JSON may be a string or an object with "text" (or "review"). Accept picks the answer:
application/json, application/jsonlines, text/csv (`label,score`) or text/plain (`label score`),
one line per review for the last three, in order. Explanations, when asked for, travel in the JSON
forms only: each token's contribution and its span in the review as sent (`[start, end)`, in
characters), and the deciding words ("top_words").

In Batch Transform (SageMaker sets SAGEMAKER_BATCH=true) with the MultiRecord strategy, a text/plain
body is what SplitType=Line makes of a text file, one record per line, and it is answered one line
per record (JSON Lines unless Accept asks for CSV or plain text). There, every line-split request
must get a line-per-record answer: Batch Transform assembles the output line by line, so a JSON
array for several records would silently become one line; it is refused with a 406 instead.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sentiment.serving.errors import BadRequest, NotAcceptable, UnsupportedMediaType

Shape = Literal["single", "list", "instances", "lines"]

JSON = "application/json"
JSON_LINES = "application/jsonlines"
CSV = "text/csv"
PLAIN = "text/plain"
# Other names clients use for the same formats.
ALIASES = {
    "application/x-jsonlines": JSON_LINES,
    "application/jsonl": JSON_LINES,
    "application/x-ndjson": JSON_LINES,
    "application/csv": CSV,
}
TEXT_KEYS = ("text", "review")


@dataclass(frozen=True)
class Decoded:
    """A request's reviews, the shape to answer in, and whether explanations were asked for."""

    reviews: list[str]
    shape: Shape
    content_type: str
    explain: bool = False


@dataclass(frozen=True)
class Result:
    """One review's answer: the predictor's verdict and, when asked for, its explanation."""

    label: str
    score: float
    contributions: list[dict[str, Any]] | None = field(default=None)  # each token: contribution, span
    top_words: list[dict[str, Any]] | None = field(default=None)  # the deciding words, strongest first

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"label": self.label, "score": self.score}
        if self.contributions is not None:
            document["contributions"] = self.contributions
        if self.top_words is not None:
            document["top_words"] = self.top_words
        return document


# -- input_fn ---------------------------------------------------------------------------------------


def input_fn(body: bytes, content_type: str | None, plain_text_lines: bool = False) -> Decoded:
    """The reviews in `body`; BadRequest or UnsupportedMediaType says what is wrong with it.

    `plain_text_lines`: text/plain holds one review per line (Batch Transform's MultiRecord), not one review.
    """
    media_type, parameters = parse_media_type(content_type or "")
    if media_type not in DECODERS:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'!r} is not supported; send one of {', '.join(DECODERS)}"
        )
    charset = parameters.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send UTF-8")
    text = _utf8(body)
    decoder = _decode_plain_lines if media_type == PLAIN and plain_text_lines else DECODERS[media_type]
    reviews, shape, explain = decoder(text)
    if not reviews:
        raise BadRequest("the request holds no reviews")
    for number, review in enumerate(reviews, start=1):
        if not review.strip():
            where = "the review" if shape == "single" else f"review {number}"
            raise BadRequest(f"{where} is empty: send the text of a movie review")
    return Decoded(reviews=reviews, shape=shape, content_type=media_type, explain=explain)


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise BadRequest(
            f"the body is not valid UTF-8: byte 0x{body[error.start]:02x} at offset {error.start}"
        ) from None


def _decode_plain(text: str) -> tuple[list[str], Shape, bool]:
    return [text], "single", False


def _decode_plain_lines(text: str) -> tuple[list[str], Shape, bool]:
    # split("\n"), not splitlines(): Batch Transform splits at line feeds only, not at U+2028 or form feeds.
    reviews = [line.removesuffix("\r") for line in _records(text.split("\n"))]
    return reviews, "lines", False


def _decode_json(text: str) -> tuple[list[str], Shape, bool]:
    document = _parse_json(text, "the body")
    if isinstance(document, list):
        return [_review(item, f"item {number}") for number, item in enumerate(document, start=1)], "list", False
    if isinstance(document, dict) and "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise BadRequest('"instances" must be a list of reviews')
        reviews = [_review(item, f"instance {number}") for number, item in enumerate(instances, start=1)]
        return reviews, "instances", _explain_flag(document)
    return [_review(document, "the body")], "single", _explain_flag(document) if isinstance(document, dict) else False


def _decode_json_lines(text: str) -> tuple[list[str], Shape, bool]:
    reviews = []
    for number, line in enumerate(_records(text.split("\n")), start=1):
        if not line.strip():
            raise BadRequest(f"line {number} is empty: send one review per line")
        reviews.append(_review(_parse_json(line, f"line {number}"), f"line {number}"))
    return reviews, "lines", False


def _decode_csv(text: str) -> tuple[list[str], Shape, bool]:
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        raise BadRequest(f"malformed CSV: {error}") from None
    reviews = []
    for number, record in enumerate(_records(records), start=1):
        if len(record) != 1:
            raise BadRequest(
                f"CSV record {number} has {len(record)} fields; send one field, the review (quote commas in it)"
            )
        reviews.append(record[0])
    return reviews, "lines", False


def _records(records: list[Any]) -> list[Any]:
    """Records without the empty one a final line break leaves (a lone empty record is kept: empty review)."""
    if len(records) > 1 and not records[-1]:
        return records[:-1]
    return records


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"{where}: {error.msg} at line {error.lineno} column {error.colno}"
        raise BadRequest(f"malformed JSON in {where}") from None
    except RecursionError:
        raise BadRequest(f"malformed JSON in {where}: nested too deeply") from None


def _review(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in TEXT_KEYS:
            if isinstance(item.get(key), str):
                return item[key]
    raise BadRequest(f'{where} must be a review: a string or an object with "text"')


def _explain_flag(document: dict[str, Any]) -> bool:
    flag = document.get("explain", False)
    if not isinstance(flag, bool):
        raise BadRequest('"explain" must be true or false')
    return flag


DECODERS: dict[str, Callable[[str], tuple[list[str], Shape, bool]]] = {
    PLAIN: _decode_plain,
    JSON: _decode_json,
    JSON_LINES: _decode_json_lines,
    CSV: _decode_csv,
}


# -- output_fn --------------------------------------------------------------------------------------


def answer_type(decoded: Decoded, accept: str | None, batch_transform: bool = False) -> str:
    """The media type to answer `decoded` in: what `accept` prefers; NotAcceptable when nothing fits.

    In Batch Transform several line-split records must be answered line for line (see the module's notes).
    """
    split_plain_text = decoded.shape == "lines" and decoded.content_type == PLAIN
    default = JSON_LINES if split_plain_text else DEFAULT_ANSWER[decoded.content_type]
    media_type = negotiate(accept, default)
    if batch_transform and decoded.shape == "lines" and len(decoded.reviews) > 1 and media_type not in LINE_ANSWERS:
        raise NotAcceptable(
            f"{len(decoded.reviews)} records split by line need one answer line each, which {media_type} cannot "
            f"give (Batch Transform assembles them line by line): Accept one of {', '.join(LINE_ANSWERS)}"
        )
    return media_type


def output_fn(results: list[Result], decoded: Decoded, media_type: str) -> bytes:
    """The response body in `media_type`, as `answer_type` chose it."""
    return ENCODERS[media_type](results, decoded.shape)


def _encode_json(results: list[Result], shape: Shape) -> bytes:
    documents = [result.to_json() for result in results]
    body: Any = documents[0] if shape == "single" else {"predictions": documents} if shape == "instances" else documents
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _encode_json_lines(results: list[Result], shape: Shape) -> bytes:
    return "".join(json.dumps(result.to_json(), ensure_ascii=False) + "\n" for result in results).encode("utf-8")


def _encode_csv(results: list[Result], shape: Shape) -> bytes:
    return "".join(f"{result.label},{result.score:.6f}\n" for result in results).encode()


def _encode_plain(results: list[Result], shape: Shape) -> bytes:
    return "".join(f"{result.label} {result.score:.6f}\n" for result in results).encode()


ENCODERS: dict[str, Callable[[list[Result], Shape], bytes]] = {
    JSON: _encode_json,
    JSON_LINES: _encode_json_lines,
    CSV: _encode_csv,
    PLAIN: _encode_plain,
}
# What a request gets when its Accept allows anything: its own line-per-review format, else JSON.
DEFAULT_ANSWER = {PLAIN: JSON, JSON: JSON, JSON_LINES: JSON_LINES, CSV: CSV}
LINE_ANSWERS = (JSON_LINES, CSV, PLAIN)  # one line per review


def negotiate(accept: str | None, default: str) -> str:
    """The format `accept` ranks highest (quality values and wildcards honoured); NotAcceptable if none.

    At equal quality the earlier entry wins; `*/*` (or no Accept) means `default`.
    """
    if not accept or not accept.strip():
        return default
    best, best_quality = None, 0.0
    for entry in accept.split(","):
        media_range, parameters = parse_media_type(entry)
        candidate = _match(media_range, default)
        quality = _quality(parameters)
        if candidate is not None and quality > best_quality:
            best, best_quality = candidate, quality
    if best is None:
        raise NotAcceptable(f"cannot answer in {accept!r}; acceptable: {', '.join(ENCODERS)}")
    return best


def _match(media_range: str, default: str) -> str | None:
    if media_range in ("*/*", "*"):
        return default
    if media_range.endswith("/*"):
        family = media_range.removesuffix("*")
        return next((media for media in (default, *ENCODERS) if media.startswith(family)), None)
    return media_range if media_range in ENCODERS else None


def _quality(parameters: dict[str, str]) -> float:
    try:
        return min(1.0, max(0.0, float(parameters.get("q", "1"))))
    except ValueError:
        return 0.0


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype", {parameter: value}) from a Content-Type or one Accept entry, lowercased."""
    media, *rest = value.split(";")
    parameters = {}
    for parameter in rest:
        name, _, raw = parameter.partition("=")
        parameters[name.strip().lower()] = raw.strip().strip('"')
    media = media.strip().lower()
    return ALIASES.get(media, media), parameters
