"""sentiment.text: the default tokenizer and the tutorial's recipe."""

from __future__ import annotations

import hashlib
import re

import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer

from sentiment.text import (
    NLTK_ENGLISH_STOPWORDS,
    TOKENIZER_VERSION,
    TOKENIZERS,
    get_tokenizer,
    seed_tokenize,
    sentences,
    tokenize,
    tokenize_v1,
    tokenizer_from_settings,
    tokenizer_settings,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("   \n\t ", []),
        ("Great movie", ["great", "movie"]),
        ("I didn't like it", ["i", "did", "n't", "like", "it"]),
        ("Don’t", ["do", "n't"]),  # typographic apostrophe
        ("don`t", ["do", "n't"]),
        ("don´t, café", ["do", "n't", "café"]),
        ("It's not bad!!", ["it", "'s", "not", "bad", "!", "!"]),
        ("Why?", ["why", "?"]),
        (
            "A 10/10, or 3.5 stars of 1,000 in the 80s",
            ["a", "10/10", "or", "3.5", "stars", "of", "1,000", "in", "the", "80s"],
        ),
        ("Funny.<br /><br />Sad.", ["funny", "sad"]),
        ("<i>Brilliant</i>", ["brilliant"]),
        ("Tom &amp; Jerry &quot;rock&quot;", ["tom", "jerry", "rock"]),
        ("&lt;br&gt; stays text", ["br", "stays", "text"]),  # escaped markup is not a tag
        ("I <3 it, 2 < 3", ["i", "<3", "it", "2", "3"]),
        ("Loved it :) but :( at the end", ["loved", "it", ":)", "but", ":(", "at", "the", "end"]),
        ("Re:d is two words", ["re", "d", "is", "two", "words"]),
        ("ＦＵＬＬ ﬁne Café", ["full", "fine", "café"]),  # NFKC: full-width letters, ligatures
        ("日本語のレビュー", ["日本語のレビュー"]),
        ("snake_case", ["snake", "case"]),
    ],
)
def test_tokenize_examples(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_keeps_what_carries_sentiment() -> None:
    tokens = tokenize("This is NOT good. Isn't it awful?! 1/10")
    assert {"not", "n't", "!", "?", "1/10", "awful"} <= set(tokens)


def test_tokenize_handles_a_ten_thousand_word_review() -> None:
    review = "good " * 10_000
    assert tokenize(review) == ["good"] * 10_000


@given(st.text())
@settings(max_examples=500)
def test_tokenize_is_safe_on_any_unicode(text: str) -> None:
    tokens = tokenize(text)
    assert all(isinstance(token, str) and token for token in tokens)
    assert not any(re.search(r"\s", token) for token in tokens)
    assert tokens == tokenize(text)


@given(st.text(alphabet=st.characters(codec="utf-8")))
def test_tokenize_output_tokenizes_to_itself(text: str) -> None:
    tokens = tokenize(text)
    assert tokenize(" ".join(tokens)) == tokens


def tutorial_review_to_words(review: str) -> list[str]:
    """The tutorial's recipe, step by step as its notebook wrote it (stopwords from a list)."""
    stopwords = sorted(NLTK_ENGLISH_STOPWORDS)
    text = BeautifulSoup(review, "html.parser").get_text()
    text = re.sub(r"[^a-zA-Z0-9]", " ", text.lower())
    words = text.split()
    words = [w for w in words if w not in stopwords]
    return [PorterStemmer().stem(w) for w in words]


@pytest.mark.parametrize(
    "review",
    [
        "",
        "The movies were running, and I LOVED them.<br /><br />Happily ever after!",
        "Tom &amp; Jerry &foo; &#39;s <i>cartoons</i> <BR>x <br/>y <br>z",
        "<script>var x;</script>after <!-- hidden --> text <![CDATA[data]]>",
        "a < b > c <3 you <<< wait",
        "İstanbul's KELVIN sign \u212a and naïve café",
    ],
)
def test_seed_tokenize_matches_the_tutorial(review: str) -> None:
    assert seed_tokenize(review) == tutorial_review_to_words(review)


# Characters that exercise both of seed_tokenize's paths (with and without the HTML parser).
_HTML_PIECES = [*"<>/&;#!- brBRipxamq0129\n\tİ\u212aé", "<br />", "&amp;", "<i>", "</i>"]
_HTML_ISH = st.lists(st.sampled_from(_HTML_PIECES), max_size=40).map("".join)


@given(_HTML_ISH)
@settings(max_examples=300, deadline=None)
def test_seed_tokenize_matches_the_tutorial_on_html_like_text(review: str) -> None:
    assert seed_tokenize(review) == tutorial_review_to_words(review)


def test_nltk_stopword_list_is_the_179_word_english_list() -> None:
    # Pinned: the tutorial's results depend on this exact list (nltk_data's corpora/stopwords/english).
    assert len(NLTK_ENGLISH_STOPWORDS) == 179
    assert {"not", "no", "nor", "don't", "t", "ain", "wouldn't"} <= NLTK_ENGLISH_STOPWORDS
    listing = "\n".join(sorted(NLTK_ENGLISH_STOPWORDS)).encode()
    assert hashlib.sha256(listing).hexdigest() == "63c081f949766b37ecdc95ac5b55639990d34295166996357ff47df805fda211"


def test_tokenizers_are_registered_by_name() -> None:
    assert get_tokenizer("default") is tokenize
    assert get_tokenizer("seed") is seed_tokenize
    assert set(TOKENIZERS) == {"default", "seed"}
    with pytest.raises(ValueError, match="unknown tokenizer 'bert'"):
        get_tokenizer("bert")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("🙂🙂", [":)", ":)"]),
        ("Loved it 😍!", ["loved", "it", ":)", "!"]),
        ("meh 🙄👎", ["meh", ":(", ":("]),
        ("ok👍🏽", ["ok", ":)"]),  # a skin-tone modifier is no token
        ("I ❤️ it", ["i", ":)", "it"]),  # nor the variation selector after the heart
        ("lol 😂", ["lol", ":d"]),
        ("scary 😱 🌟", ["scary"]),  # faces and symbols without a clear sentiment are no tokens
    ],
)
def test_emoji_are_read_as_the_emoticons_they_stand_for(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens
    assert tokenize_v1(text) == [token for token in tokens if token[0].isalnum() or token == "!"]


def test_models_of_tokenizer_version_1_keep_its_tokens() -> None:
    assert tokenizer_from_settings({"name": "default", "version": 1}) is tokenize_v1
    assert tokenizer_from_settings({"name": "seed", "version": 1}) is seed_tokenize
    assert tokenizer_from_settings({"name": "default", "version": TOKENIZER_VERSION}) is tokenize
    with pytest.raises(ValueError, match="retrain the model"):
        tokenizer_from_settings({"name": "default", "version": 0})


def test_tokenizer_settings_name_the_tokenizer_and_its_version() -> None:
    settings = tokenizer_settings("seed")
    assert settings == {"name": "seed", "version": TOKENIZER_VERSION}
    assert tokenizer_from_settings(settings) is seed_tokenize
    with pytest.raises(ValueError, match="retrain the model"):
        tokenizer_from_settings({"name": "default", "version": TOKENIZER_VERSION + 1})
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenizer_settings("bert")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Great film!! I loved it. The end", ["Great film!!", "I loved it.", "The end"]),
        ("One.<br /><br />Two?<BR>Three...  Four", ["One.", "Two?", "Three...", "Four"]),
        ("No end at all", ["No end at all"]),
        ("3.5 stars, e.g. fine", ["3.5 stars, e.g.", "fine"]),
        ("", []),
        ("  \n ", []),
    ],
)
def test_sentences_split_at_ends_and_html_line_breaks(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@given(st.text())
def test_sentences_keep_every_word_in_order(text: str) -> None:
    words = [word for piece in sentences(text) for word in piece.split()]
    assert words == re.sub(r"<\s*br\s*/?\s*>", " ", text, flags=re.IGNORECASE).split()
