"""Review text to tokens: the default tokenizer and the tutorial's recipe (`seed_tokenize`).

Pure functions, no I/O. Both are registered by name in `TOKENIZERS` so that a saved vocabulary can
name the tokenizer it was built with and serving can apply exactly the same one.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

# Bump when `tokenize` changes its output for any input: vocabularies record the version they were
# built with, so a model is never fed tokens its vocabulary was not made from.
#   1: the first.
#   2: emoji read as the emoticons they stand for (EMOJI_EMOTICONS); models of version 1 keep version 1.
TOKENIZER_VERSION = 2

# Emoji carry sentiment in short reviews as emoticons do, and IMDb's reviews (2011) hold emoticons, not emoji:
# each emoji below is read as the emoticon a reviewer would have typed, which the models have learned.
# Faces without a clear sentiment (neutral, surprise, fear) and symbols such as stars are left out.
EMOJI_EMOTICONS = {
    ":)": "🙂😀😃😄😁😊☺😇🥰😍🤩😎😌😻🥳👍👏🙌💯❤♥💕💖💗💓💞💘",
    ":d": "😂🤣😆",
    ";)": "😉😜",
    ":p": "😛😝",
    ":(": "🙁☹😞😟😔😕😢😭😠😡🤬😤😒🙄😩😫🥱😴😖😣👎💩🤮🤢💔",
}
_EMOJI_TABLE = {ord(emoji): f" {emoticon} " for emoticon, emojis in EMOJI_EMOTICONS.items() for emoji in emojis}

# An HTML tag starts with a letter (or "/" and a letter), so "<3", "a < b" and "<<<" stay text.
_HTML_TAG = re.compile(r"<!--.*?-->|<\s*/?\s*[a-zA-Z][^<>]*>", re.DOTALL)

# Apostrophes people type (or word processors insert) in "don’t", besides "'" and "`".
_NON_ASCII_APOSTROPHES = ("\u2019", "\u2018", "\u02bc", "\u00b4", "\uff07")

# Alternatives, tried in order at each position of the lowercased text:
#   n't and clitics ('s 're 've 'll 'd 'm) as tokens of their own, so "didn't" shares "n't" with
#   "isn't" and the model learns negation once;
#   emoticons, which carry sentiment in short reviews (":d" and ":p" only apart from words, so
#   "re:d" stays two words);
#   numbers with separators kept whole ("7/10", "3.5", "1,000"): IMDb reviewers state scores;
#   words of letters and digits in any script ("80s", "café");
#   "!" and "?" one token each.
_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b"
    r"|[:;=]-?[()]|(?<![^\W_])[:;=]-?[dp](?![^\W_])|<3"
    r"|\d+(?:[.,:/]\d+)+"
    r"|[^\W_]+"
    r"|[!?]"
)


def tokenize(text: str) -> list[str]:
    """Split a review into lowercase tokens: HTML removed, negations, "!", "?", numbers and emoticons kept
    (emoji read as emoticons)."""
    return _tokenize(text, emoji=True)


def tokenize_v1(text: str) -> list[str]:
    """`tokenize` as version 1 was, emoji dropped: for the models built with it."""
    return _tokenize(text, emoji=False)


def _tokenize(text: str, emoji: bool) -> list[str]:
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if "`" in text:
        text = text.replace("`", "'")
    if not text.isascii():
        for apostrophe in _NON_ASCII_APOSTROPHES:  # before NFKC, which turns "´" into " ́"
            if apostrophe in text:
                text = text.replace(apostrophe, "'")
        # NFKC folds full-width letters, ligatures and composed accents to one spelling.
        text = unicodedata.normalize("NFKC", text)
        if emoji:
            text = text.translate(_EMOJI_TABLE)
    text = text.lower()
    if "n't" in text:
        text = text.replace("n't", " n't")
    return _TOKEN.findall(text)


# A sentence ends at ".", "!" or "?" (any run of them) followed by space; HTML line breaks end one too.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*<\s*br\s*/?\s*>\s*", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """The sentences of a review, HTML line breaks counted as ends; empty ones dropped."""
    pieces = _SENTENCE_END.split(text)
    return [piece.strip() for piece in pieces if piece and piece.strip()]


# NLTK's English stopword list (the 179 words of the `stopwords` corpus the tutorial downloaded).
# The corpus cannot be downloaded in an image build, so it ships here.
NLTK_ENGLISH_STOPWORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them their
    theirs themselves what which who whom this that that'll these those am is are was were be been
    being have has had having do does did doing a an the and but if or because as until while of
    at by for with about against between into through during before after above below to from up
    down in out on off over under again further then once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very s t can
    will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't
    didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't
    mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't
    wouldn wouldn't
    """.split()  # noqa: SIM905 (179 words read better as text than as 179 quoted items)
)

_NON_ALPHANUMERIC = re.compile(r"[^a-zA-Z0-9]")
_BR_TAG = re.compile(r"<br\s*/?>")


def _strip_html_like_beautifulsoup(text: str) -> str:
    """`BeautifulSoup(text, "html.parser").get_text()`, without parsing when only <br /> tags occur."""
    if "&" not in text:
        stripped = _BR_TAG.sub("", text) if "<" in text else text
        if "<" not in stripped:
            return stripped
    from bs4 import BeautifulSoup  # imported here: most reviews never need the parser

    return BeautifulSoup(text, "html.parser").get_text()


@cache
def _porter_stem(word: str) -> str:
    return _porter_stemmer().stem(word)


@lru_cache(maxsize=1)
def _porter_stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer  # nltk takes about a second to import

    return PorterStemmer()


def seed_tokenize(text: str) -> list[str]:
    """The tutorial's `review_to_words`, token for token: HTML strip, lowercase, a-z0-9 words,
    NLTK English stopwords removed, Porter stems."""
    words = _NON_ALPHANUMERIC.sub(" ", _strip_html_like_beautifulsoup(text).lower()).split()
    return [_porter_stem(word) for word in words if word not in NLTK_ENGLISH_STOPWORDS]


Tokenizer = Callable[[str], list[str]]

TOKENIZERS: dict[str, Tokenizer] = {"default": tokenize, "seed": seed_tokenize}


def tokenizer_settings(name: str) -> dict[str, Any]:
    """What a vocabulary records about its tokenizer, so serving can refuse a mismatched one."""
    get_tokenizer(name)
    return {"name": name, "version": TOKENIZER_VERSION}


# Earlier versions this code still reproduces exactly, by name (the seed tokenizer never kept emoji).
_EARLIER_VERSIONS: dict[tuple[str, int], Tokenizer] = {("default", 1): tokenize_v1, ("seed", 1): seed_tokenize}


def tokenizer_from_settings(settings: dict[str, Any]) -> Tokenizer:
    """The tokenizer `settings` (from `tokenizer_settings`) name, if this code still produces its tokens."""
    name, version = str(settings.get("name")), settings.get("version")
    if version == TOKENIZER_VERSION:
        return get_tokenizer(name)
    if isinstance(version, int) and (name, version) in _EARLIER_VERSIONS:
        return _EARLIER_VERSIONS[(name, version)]
    raise ValueError(
        f"the vocabulary was built with tokenizer version {version!r}, "
        f"this code has version {TOKENIZER_VERSION}: retrain the model"
    )


def get_tokenizer(name: str) -> Tokenizer:
    """The tokenizer registered under `name`; a clear error for an unknown name."""
    try:
        return TOKENIZERS[name]
    except KeyError:
        known = ", ".join(sorted(TOKENIZERS))
        raise ValueError(f"unknown tokenizer {name!r}; known tokenizers: {known}") from None
