"""sentiment.spans: the tokenizers' own tokens, each with the span of the text as typed that it came from."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiment.spans import Traced, seed_token_spans, span_tokenizer, token_spans
from sentiment.text import seed_tokenize, tokenize, tokenize_v1

# What reviews hold that changes length on the way to tokens: markup, entities, ligatures, full-width and
# composed letters, curly apostrophes, emoji, letters that lowercase to two, "n't".
PIECES = [
    "good", "Bad", "film", " ", ", ", ".", "!", "?", "<br />", "<b>", "</b>", "&amp;", "&lt;3", "&#39;", "&eacute",
    "ﬁ", "ＦＵＬＬ", "e\u0301", "\u1100\u1161", "’", "`", "don't", "didn’t", "😍", "😡", "👍🏽", "❤️", "İ", "ß",
    ":-)", ";)", ":d", "7/10", "3.5", "n't", "\u2028", "\t", "日本",
]  # fmt: skip


def assert_true_spans(text: str, tokens: list[str], spans: list[tuple[int, int]]) -> None:
    assert len(spans) == len(tokens)
    previous = 0
    for start, end in spans:
        assert 0 <= start <= end <= len(text) and start >= previous - 1
        previous = start


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map("".join))
def test_the_tokens_are_the_tokenizers_own(text: str) -> None:
    for emoji, tokenizer in ((True, tokenize), (False, tokenize_v1)):
        tokens, spans = token_spans(text, emoji=emoji)
        assert tokens == tokenizer(text)
        assert_true_spans(text, tokens, spans)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_at_all(text: str) -> None:
    tokens, spans = token_spans(text)
    assert tokens == tokenize(text)
    assert_true_spans(text, tokens, spans)


@pytest.mark.parametrize(
    ("text", "typed"),
    [
        ("I didn't like it", ["I", "did", "n't", "like", "it"]),
        ("Great &amp; <b>BAD</b>!", ["Great", "BAD", "!"]),
        ("the ﬁlm, ＦＵＬＬ width", ["the", "ﬁlm", "ＦＵＬＬ", "width"]),
        ("Loved it 😍😍 :-)", ["Loved", "it", "😍", "😍", ":-)"]),
        ("café — don’t", ["café", "do", "n’t"]),
        ("e\u0301te\u0301", ["e\u0301te\u0301"]),
        ("7/10, really", ["7/10", "really"]),
    ],
)
def test_each_span_is_what_was_typed_for_the_token(text: str, typed: list[str]) -> None:
    tokens, spans = token_spans(text)
    assert tokens == tokenize(text)
    assert [text[start:end] for start, end in spans] == typed


def test_a_step_that_cannot_be_traced_per_character_keeps_its_whole_stretch() -> None:
    traced = Traced.of("ab").sub(__import__("re").compile("ab"), lambda match: "xyz")
    assert traced.text == "xyz" and [traced.span(i, i + 1) for i in range(3)] == [(0, 2)] * 3
    assert traced.span(1, 1) == (0, 0)  # an empty stretch sits where it would be


def test_seed_stems_span_the_words_they_were_stemmed_from() -> None:
    text = "The MOVIES were wonderful, and I loved them <br />!"
    tokens, spans = seed_token_spans(text)
    assert tokens == seed_tokenize(text) == ["movi", "wonder", "love"]
    assert [text[start:end] for start, end in spans] == ["MOVIES", "wonderful", "loved"]


def test_the_span_tokenizer_follows_the_models_tokenizer_settings() -> None:
    assert span_tokenizer({"name": "default", "version": 2})("🙂")[0] == [":)"]
    assert span_tokenizer({"name": "default", "version": 1})("🙂")[0] == []
    assert span_tokenizer({"name": "seed", "version": 2})("Loved movies")[0] == ["love", "movi"]
