"""sentiment.serving.codecs: every content type in, every Accept out, and each malformed body refused."""

from __future__ import annotations

import json

import pytest

from sentiment.serving.codecs import Decoded, Result, answer_type, input_fn, negotiate, output_fn, parse_media_type
from sentiment.serving.errors import BadRequest, NotAcceptable, UnsupportedMediaType

RESULTS = [Result("positive", 0.9), Result("negative", 0.25)]
JSON_LINES = b'{"label": "positive", "score": 0.9}\n{"label": "negative", "score": 0.25}\n'


@pytest.mark.parametrize(
    ("body", "content_type", "reviews", "shape"),
    [
        (b"Loved it.", "text/plain", ["Loved it."], "single"),
        ("Très bien, 日本語 😀".encode(), "text/plain; charset=utf-8", ["Très bien, 日本語 😀"], "single"),
        (b'"Loved it."', "application/json", ["Loved it."], "single"),
        (b'{"text": "Loved it."}', "application/json", ["Loved it."], "single"),
        (b'{"review": "Loved it."}', "application/json", ["Loved it."], "single"),
        (b'["a", {"text": "b"}]', "application/json", ["a", "b"], "list"),
        (b'{"instances": ["a", "b"]}', "application/json", ["a", "b"], "instances"),
        (b'"a"\n{"text": "b"}\n', "application/jsonlines", ["a", "b"], "lines"),
        (b'"a"\r\n"b"', "application/x-jsonlines", ["a", "b"], "lines"),
        (
            b'a\n"b, with a comma"\n"c\nacross lines"\n',
            "text/csv",
            ["a", "b, with a comma", "c\nacross lines"],
            "lines",
        ),
        (b"\xef\xbb\xbfwith a byte order mark", "text/plain", ["with a byte order mark"], "single"),
    ],
)
def test_each_content_type_decodes(body: bytes, content_type: str, reviews: list[str], shape: str) -> None:
    decoded = input_fn(body, content_type)
    assert decoded.reviews == reviews and decoded.shape == shape


def test_explain_can_be_asked_in_a_json_object() -> None:
    assert input_fn(b'{"instances": ["a"], "explain": true}', "application/json").explain
    assert input_fn(b'{"text": "a", "explain": true}', "application/json").explain
    assert not input_fn(b'{"text": "a"}', "application/json").explain
    with pytest.raises(BadRequest, match="explain"):
        input_fn(b'{"text": "a", "explain": "yes please"}', "application/json")


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "text/plain", "empty"),
        (b"   \n ", "text/plain", "empty"),
        (b"\xff\xfe broken", "text/plain", "not valid UTF-8: byte 0xff at offset 0"),
        (b'{"text": ', "application/json", "malformed JSON"),
        (b"[]", "application/json", "no reviews"),
        (b'["fine", ""]', "application/json", "review 2 is empty"),
        (b'["fine", 3]', "application/json", "item 2 must be a review"),
        (b'{"instances": "a"}', "application/json", "must be a list"),
        (b"{}", "application/json", "must be a review"),
        (b"null", "application/json", "must be a review"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "JSON"),
        (b'"a"\n\n"b"\n', "application/jsonlines", "line 2 is empty"),
        (b'"a"\nnot json\n', "application/jsonlines", "malformed JSON in line 2"),
        (b"a,b\n", "text/csv", "2 fields"),
        (b'"unterminated\n', "text/csv", "malformed CSV"),
        (b"a\n\nb\n", "text/csv", "record 2"),
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        input_fn(body, content_type)


@pytest.mark.parametrize("content_type", [None, "", "application/xml", "image/png", "text/plain; charset=latin-1"])
def test_other_content_types_are_unsupported(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        input_fn(b"hello", content_type)


def test_json_answers_in_the_shape_asked() -> None:
    def answer(shape: str) -> object:
        decoded = Decoded(["x"], shape, "application/json")  # type: ignore[arg-type]
        assert answer_type(decoded, None) == "application/json"
        return json.loads(output_fn(RESULTS[: 1 if shape == "single" else 2], decoded, "application/json"))

    assert answer("single") == {"label": "positive", "score": 0.9}
    assert answer("list") == [{"label": "positive", "score": 0.9}, {"label": "negative", "score": 0.25}]
    assert answer("instances") == {"predictions": answer("list")}


@pytest.mark.parametrize(
    ("accept", "media", "body"),
    [
        (
            "application/jsonlines",
            "application/jsonlines",
            b'{"label": "positive", "score": 0.9}\n{"label": "negative", "score": 0.25}\n',
        ),
        ("text/csv", "text/csv", b"positive,0.900000\nnegative,0.250000\n"),
        ("text/plain", "text/plain", b"positive 0.900000\nnegative 0.250000\n"),
        ("text/*", "text/csv", b"positive,0.900000\nnegative,0.250000\n"),
        (None, "text/csv", b"positive,0.900000\nnegative,0.250000\n"),
        ("*/*", "text/csv", b"positive,0.900000\nnegative,0.250000\n"),
    ],
)
def test_accept_picks_the_answer_format(accept: str | None, media: str, body: bytes) -> None:
    decoded = Decoded(["a", "b"], "lines", "text/csv")
    assert answer_type(decoded, accept) == media
    assert output_fn(RESULTS, decoded, media) == body


def test_contributions_travel_in_json_only() -> None:
    result = Result("positive", 0.9, contributions=[{"token": "loved", "contribution": 1.5}])
    body = output_fn([result], Decoded(["a"], "single", "text/plain"), "application/json")
    assert json.loads(body)["contributions"] == [{"token": "loved", "contribution": 1.5}]
    assert output_fn([result], Decoded(["a"], "lines", "text/csv"), "text/csv") == b"positive,0.900000\n"


def test_plain_text_is_one_review_unless_batch_transform_splits_it_by_line() -> None:
    body = "A fine film.\r\nDull and long.\n\u2028 still the second line? no, a third\n".encode()
    assert input_fn(body, "text/plain").reviews == [body.decode()]
    decoded = input_fn(body, "text/plain", plain_text_lines=True)
    assert decoded.reviews == ["A fine film.", "Dull and long.", "\u2028 still the second line? no, a third"]
    assert decoded.shape == "lines" and answer_type(decoded, None) == "application/jsonlines"
    assert answer_type(decoded, "text/csv", batch_transform=True) == "text/csv"
    with pytest.raises(BadRequest, match="review 2 is empty"):
        input_fn(b"fine\n\nfilm\n", "text/plain", plain_text_lines=True)


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonlines", "text/csv"])
def test_in_batch_transform_records_split_by_line_never_get_one_json_answer(content_type: str) -> None:
    body = b'"one"\n"two"\n' if content_type == "application/jsonlines" else b"one\ntwo\n"
    decoded = input_fn(body, content_type, plain_text_lines=True)
    assert answer_type(decoded, "application/json") == "application/json"  # a real-time client may ask for an array
    with pytest.raises(NotAcceptable, match="2 records split by line need one answer line each"):
        answer_type(decoded, "application/json", batch_transform=True)
    single = input_fn(body.split(b"\n")[0] + b"\n", content_type, plain_text_lines=True)
    assert answer_type(single, "application/json", batch_transform=True) == "application/json"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("text/csv;q=0.5, application/json", "application/json"),
        ("application/json;q=0.2, text/csv;q=0.9", "text/csv"),
        ("image/png, application/*;q=0.1", "application/json"),
        ("application/x-jsonlines", "application/jsonlines"),
        ("TEXT/CSV", "text/csv"),
    ],
)
def test_negotiation_honours_quality_and_wildcards(accept: str, chosen: str) -> None:
    assert negotiate(accept, default="application/json") == chosen


@pytest.mark.parametrize("accept", ["image/png", "application/xml, text/html", "text/csv;q=0"])
def test_unanswerable_accept_is_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        negotiate(accept, default="application/json")


def test_media_types_parse_with_parameters() -> None:
    assert parse_media_type('Application/JSON; charset="UTF-8"') == ("application/json", {"charset": "UTF-8"})
