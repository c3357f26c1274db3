"""Short reviews labelled by how they are built: negation, contrast and scores, for training.

IMDb's labels are for whole reviews, and a sentence cut from a review carries its review's label whether
or not it says anything about the film (about a quarter of them disagree with it). What the page is
typed is one or two sentences, often turning on "not", "never", "but" or a score. These are built from
word lists and clause patterns written for this purpose, so each label follows from the construction:

- a clause states a quality of a part of a film ("the script was clumsy") or the viewer's feeling
  ("I was hooked"); its polarity is the word's;
- negating a clause ("the script was never clumsy", "I wasn't hooked") flips it;
- "A, but B", "Although A, B", "A; however, B" and "A, yet B" take B's polarity, A and B opposite;
- a score out of 10 or 5 is positive from 7/10 (4/5) up, negative to 3/10 (2/5) down.

Pure and deterministic: the same seed gives the same texts on every host.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Clause = tuple[str, int]  # text without final punctuation, 1 = positive / 0 = negative
Subject = tuple[str, bool]  # a part of a film, and whether it is plural

# Parts of a film a review judges ("the film" and "this movie" as a whole are left to the reviews).
SUBJECTS: tuple[Subject, ...] = (
    ("the acting", False),
    ("the script", False),
    ("the story", False),
    ("the cast", False),
    ("the soundtrack", False),
    ("the photography", False),
    ("the direction", False),
    ("the lead", False),
    ("the screenplay", False),
    ("the editing", False),
    ("the finale", False),
    ("the premise", False),
    ("the music", False),
    ("the sequel", False),
    ("the remake", False),
    ("the animation", False),
    ("the humour", False),
    ("the last act", False),
    ("the characters", True),
    ("the performances", True),
    ("the songs", True),
    ("the action scenes", True),
    ("the visuals", True),
    ("the twists", True),
)
QUALITIES = {
    1: (
        "good",
        "great",
        "excellent",
        "brilliant",
        "wonderful",
        "superb",
        "gripping",
        "clever",
        "funny",
        "beautiful",
        "charming",
        "engaging",
        "entertaining",
        "impressive",
        "memorable",
        "enjoyable",
        "solid",
        "fantastic",
        "touching",
        "compelling",
        "fresh",
        "witty",
        "stunning",
        "terrific",
    ),
    0: (
        "bad",
        "awful",
        "terrible",
        "boring",
        "dull",
        "weak",
        "lame",
        "poor",
        "clumsy",
        "predictable",
        "tedious",
        "silly",
        "forgettable",
        "painful",
        "messy",
        "pointless",
        "stupid",
        "disappointing",
        "bland",
        "awkward",
        "cheesy",
        "lifeless",
        "annoying",
        "horrible",
    ),
}
# What the viewer felt, after "I was" / "I wasn't".
FEELINGS = {
    1: ("impressed", "moved", "hooked", "entertained", "delighted", "thrilled", "amused", "captivated"),
    0: ("bored", "disappointed", "annoyed", "confused", "irritated", "frustrated", "let down"),
}
# What the viewer did, after "I" / "I didn't" (only praise: "I didn't hate it" is lukewarm, not praise).
LIKINGS = {"liked": "like", "loved": "love", "enjoyed": "enjoy", "admired": "admire", "appreciated": "appreciate"}
INTENSIFIERS = ("", "", "", "really ", "very ", "truly ", "so ", "quite ", "incredibly ", "genuinely ")
# Ways to negate "X is Y" ("{be}" is the verb).
NEGATIONS = (
    "{be} not {quality}",
    "{be}n't {quality}",
    "{be} never {quality}",
    "{be} not at all {quality}",
    "{be} not {quality} at all",
    "{be} far from {quality}",
    "{be} by no means {quality}",
    "{be} not remotely {quality}",
)
CONTRASTS = ("{a}, but {b}", "Although {a}, {b}", "{a}; however, {b}", "{a}, yet {b}", "{a}, but overall {b}")
SCORE_PATTERNS = ("{n}/10", "{n} out of 10", "I'd give it {n}/10", "{n}/10 from me", "Rating: {n}/10")
FIVE_PATTERNS = ("{n}/5", "{n} out of 5 stars", "{n} stars out of 5")
ENDINGS = (".", ".", ".", "!", "")

Pick = Callable[[tuple], object]


def short_texts(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """`count` built short reviews and their labels (1 positive, 0 negative), about half of each label."""
    rng = np.random.default_rng([seed, 23])  # its own stream: never shifts training's randomness

    def pick(options: tuple) -> object:
        return options[int(rng.integers(0, len(options)))]

    # A plain clause alone ("The cast was great.") is what the models already judge well and what
    # evaluation sets hold word for word: plain clauses appear only inside contrasts and before scores.
    builders = (negated, negated, feeling, contrast, contrast, score)
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for attempt in range(count * 20):
        if len(texts) == count:
            break
        wanted = attempt % 2  # alternate labels (a repeat skipped may leave the halves a few apart)
        builder = pick(builders)
        text, label = builder(pick, wanted, pick(SUBJECTS))
        text = _sentence(text) + str(pick(ENDINGS))
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
    return texts, np.asarray(labels, dtype=np.int8)


def plain(pick: Pick, wanted: int, subject: Subject) -> Clause:
    """'the script was very clumsy': the quality's polarity."""
    return f"{subject[0]} {_be(pick, subject)} {pick(INTENSIFIERS)}{pick(QUALITIES[wanted])}", wanted


def negated(pick: Pick, wanted: int, subject: Subject) -> Clause:
    """'the script was never clumsy': the opposite of the quality's polarity."""
    pattern = str(pick(NEGATIONS))
    return f"{subject[0]} {pattern.format(be=_be(pick, subject), quality=pick(QUALITIES[1 - wanted]))}", wanted


def feeling(pick: Pick, wanted: int, subject: Subject) -> Clause:
    """'I was hooked by the story', 'I wasn't bored by the cast', 'I loved the songs', 'I didn't enjoy the story'."""
    kind = int(pick((0, 1, 2)))
    if kind == 0:
        return f"I was {pick(INTENSIFIERS)}{pick(FEELINGS[wanted])} by {subject[0]}", wanted
    if kind == 1:
        was = pick(("wasn't", "was not", "was never", "was not once"))
        return f"I {was} {pick(FEELINGS[1 - wanted])} by {subject[0]}", wanted
    past = str(pick(tuple(LIKINGS)))
    if wanted:
        return f"I {pick(('really ', '', 'truly '))}{past} {subject[0]}", 1
    negation = pick(("didn't", "did not", "never"))
    return f"I {negation} {past if negation == 'never' else LIKINGS[past]} {subject[0]}", 0


def contrast(pick: Pick, wanted: int, subject: Subject) -> Clause:
    """'Although the acting was weak, the story was gripping': the second clause's polarity. The first
    clause is plain (a part praised or faulted), the second of any kind, about another part."""
    other = subject
    while other == subject:
        other = pick(SUBJECTS)  # type: ignore[assignment]
    first, _ = plain(pick, 1 - wanted, other)
    second, _ = pick((plain, negated, feeling))(pick, wanted, subject)  # type: ignore[operator]
    return str(pick(CONTRASTS)).format(a=first, b=second), wanted


def score(pick: Pick, wanted: int, subject: Subject) -> Clause:
    """'The script was clumsy. 2/10', 'I was hooked by the story. 4 out of 5 stars': a clause of the
    same polarity, then the score (a score alone is what evaluation sets hold word for word)."""
    if pick((0, 1)):
        number = str(pick(SCORE_PATTERNS)).format(n=pick((7, 8, 9, 10) if wanted else (0, 1, 2, 3)))
    else:
        number = str(pick(FIVE_PATTERNS)).format(n=pick((4, 5) if wanted else (0, 1, 2)))
    clause, _ = pick((plain, negated, feeling))(pick, wanted, subject)  # type: ignore[operator]
    return f"{_sentence(clause)}. {number}", wanted


def _be(pick: Pick, subject: Subject) -> str:
    tense = int(pick((0, 1)))
    return ("are", "were")[tense] if subject[1] else ("is", "was")[tense]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]
