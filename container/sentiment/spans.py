"""Where each token came from: the tokenizers of `sentiment.text` run again, keeping, for every character,
the characters of the text as typed that it came from, so each token gets its span there.

`token_spans(text)` gives exactly `tokenize(text)`'s tokens (and `tokenize_v1`'s, `seed_tokenize`'s for
their settings) with a (start, end) span per token: `text[start:end]` is what the visitor typed for it,
"didn't" -> "did" (0, 3) and "n't" (3, 6), "&amp;" or "ﬁlm" or "🙂" whole. Slower than the tokenizers,
so only explanations use it. Where a step cannot be traced character by character (an NFKC composition
across what looked like separate characters, say), its output is traced to the whole stretch it came
from: spans stay true, only wider. Pure: no I/O.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentiment import text as tokenizers

Span = tuple[int, int]

# html.unescape's own pattern (CPython's html module): each match is replaced by unescaping it alone.
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
# Characters NFKC may compose with the one before although they start no combining sequence: Hangul jamo.
_HANGUL_JAMO = re.compile("[\u1160-\u11ff\ud7b0-\ud7ff]")
_NOT = re.compile("n't")


@dataclass(frozen=True)
class Traced:
    """A text and, for each of its characters, the [start, end) of the original characters it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> Traced:
        return cls(text, tuple(range(len(text))), tuple(range(1, len(text) + 1)))

    def sub(self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> Traced:
        """`pattern.sub(replace, text)`, each replacement traced to the whole match it replaces."""
        text: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        kept = 0
        for match in pattern.finditer(self.text):
            self._keep(kept, match.start(), text, starts, ends)
            new = replace(match)
            begin, end = self._range(match.start(), match.end())
            text.append(new)
            starts.extend([begin] * len(new))
            ends.extend([end] * len(new))
            kept = match.end()
        self._keep(kept, len(self.text), text, starts, ends)
        return Traced("".join(text), tuple(starts), tuple(ends))

    def per_character(self, change: Callable[[str], str]) -> Traced:
        """Each character replaced by `change(character)` (lower(), a translation table), traced to it."""
        pieces = [change(character) for character in self.text]
        starts = tuple(start for piece, start in zip(pieces, self.starts, strict=True) for _ in piece)
        ends = tuple(end for piece, end in zip(pieces, self.ends, strict=True) for _ in piece)
        return Traced("".join(pieces), starts, ends)

    def nfkc(self) -> Traced:
        """NFKC, one combining sequence at a time; the whole text traced as one stretch where that differs."""
        expected = unicodedata.normalize("NFKC", self.text)
        bounds = [
            i
            for i, character in enumerate(self.text)
            if i == 0 or (unicodedata.combining(character) == 0 and not _HANGUL_JAMO.match(character))
        ]
        pieces: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for begin, end in zip(bounds, [*bounds[1:], len(self.text)], strict=True):
            normalized = unicodedata.normalize("NFKC", self.text[begin:end])
            first, last = self._range(begin, end)
            pieces.append(normalized)
            starts.extend([first] * len(normalized))
            ends.extend([last] * len(normalized))
        if "".join(pieces) != expected:
            first, last = self._range(0, len(self.text))
            return Traced(expected, (first,) * len(expected), (last,) * len(expected))
        return Traced(expected, tuple(starts), tuple(ends))

    def span(self, start: int, end: int) -> Span:
        """The original span of this text's characters [start, end)."""
        return self._range(start, end)

    def _range(self, start: int, end: int) -> Span:
        if start >= end:  # an empty stretch: where it would be
            position = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends else 0)
            return position, position
        return min(self.starts[start:end]), max(self.ends[start:end])

    def _keep(self, start: int, end: int, text: list[str], starts: list[int], ends: list[int]) -> None:
        text.append(self.text[start:end])
        starts.extend(self.starts[start:end])
        ends.extend(self.ends[start:end])


def token_spans(text: str, emoji: bool = True) -> tuple[list[str], list[Span]]:
    """`tokenize(text)` (`tokenize_v1` without `emoji`) and each token's span in `text`; the same steps."""
    traced = Traced.of(text)
    if "<" in text:
        traced = traced.sub(tokenizers._HTML_TAG, lambda match: " ")
    if "&" in traced.text:
        traced = traced.sub(_CHARREF, lambda match: html.unescape(match.group(0)))
    if "`" in traced.text:
        traced = traced.per_character(lambda character: "'" if character == "`" else character)
    if not traced.text.isascii():
        apostrophes = set(tokenizers._NON_ASCII_APOSTROPHES)
        traced = traced.per_character(lambda character: "'" if character in apostrophes else character)
        traced = traced.nfkc()
        if emoji:
            traced = traced.per_character(lambda character: character.translate(tokenizers._EMOJI_TABLE))
    traced = traced.per_character(str.lower)
    if "n't" in traced.text:  # " n't" is traced to the "n't" typed, the space that splits it off included
        traced = traced.sub(_NOT, lambda match: " n't")
    matches = list(tokenizers._TOKEN.finditer(traced.text))
    return [match.group(0) for match in matches], [traced.span(match.start(), match.end()) for match in matches]


_WORD = re.compile(r"[a-z0-9]+")


def seed_token_spans(text: str) -> tuple[list[str], list[Span]]:
    """`seed_tokenize(text)` and each stem's span: the word it was stemmed from, found in `text` in order."""
    tokens = tokenizers.seed_tokenize(text)
    lowered = text.lower()
    if len(lowered) != len(text):  # a character that lowercases to two: search the text itself, ignoring case
        lowered = text
    words = [
        word
        for word in _WORD.findall(tokenizers._strip_html_like_beautifulsoup(text).lower())
        if word not in tokenizers.NLTK_ENGLISH_STOPWORDS
    ]
    spans: list[Span] = []
    position = 0
    for word in words:
        found = re.compile(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", re.IGNORECASE).search(lowered, position)
        if found is None:  # inside markup the parser dropped differently: the rest of the text holds it
            spans.append((position, len(text)))
            continue
        spans.append((found.start(), found.end()))
        position = found.end()
    return tokens, spans


def span_tokenizer(settings: dict[str, Any]) -> Callable[[str], tuple[list[str], list[Span]]]:
    """The span-keeping twin of the tokenizer `settings` name (see `sentiment.text.tokenizer_from_settings`)."""
    tokenize = tokenizers.tokenizer_from_settings(settings)
    if tokenize is tokenizers.seed_tokenize:
        return seed_token_spans
    if tokenize is tokenizers.tokenize_v1:
        return lambda text: token_spans(text, emoji=False)
    return token_spans
