#!/usr/bin/env python3
"""Tokenizer speed on IMDb's 25,000 training reviews, one core, against the tutorial's preprocessing.

    python benchmarks/preprocess.py [--source ../shared/data/aclImdb_v1.tar.gz]

Rows, all on the same reviews in one process pinned to one core:
  tutorial code    the tutorial's `review_to_words` as written: NLTK's stopword corpus read again for
                   every word, a new PorterStemmer per word (so slow it runs on a sample);
  tutorial recipe  the same steps with the stopword list read once and one stemmer (the baseline the
                   targets name: about 450 reviews/s);
  seed_tokenize    our reproduction, checked token for token against the recipe on every review;
  tokenize         the default tokenizer.
Targets: seed_tokenize >= 3x and tokenize >= 10x the recipe. Writes benchmarks/results/preprocess.json.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import REPOSITORY, SHARED_ARCHIVE, print_table, write_results

import sentiment.text
from sentiment.data import load_imdb
from sentiment.text import NLTK_ENGLISH_STOPWORDS, seed_tokenize, tokenize

TARGETS = {"seed_tokenize": 3.0, "tokenize": 10.0}  # minimum speed-up over the tutorial recipe


def install_stopword_corpus(nltk_data: Path) -> None:
    """NLTK's English stopword corpus where `nltk.corpus.stopwords` looks (it cannot be downloaded here)."""
    corpus = nltk_data / "corpora" / "stopwords"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "english").write_text("\n".join(sorted(NLTK_ENGLISH_STOPWORDS)) + "\n")


def tutorial_functions() -> tuple[Callable[[str], list[str]], Callable[[str], list[str]]]:
    """The tutorial's `review_to_words` as written (less its `nltk.download` call, which needs the
    network) and the same recipe with its per-word setup hoisted out of the loops."""
    from bs4 import BeautifulSoup
    from nltk.corpus import stopwords
    from nltk.stem.porter import PorterStemmer

    def tutorial_code(review: str) -> list[str]:
        text = BeautifulSoup(review, "html.parser").get_text()
        text = re.sub(r"[^a-zA-Z0-9]", " ", text.lower())
        words = text.split()
        words = [w for w in words if w not in stopwords.words("english")]
        return [PorterStemmer().stem(w) for w in words]

    stopword_list = stopwords.words("english")
    stemmer = PorterStemmer()

    def tutorial_recipe(review: str) -> list[str]:
        text = BeautifulSoup(review, "html.parser").get_text()
        text = re.sub(r"[^a-zA-Z0-9]", " ", text.lower())
        words = text.split()
        words = [w for w in words if w not in stopword_list]
        return [stemmer.stem(w) for w in words]

    return tutorial_code, tutorial_recipe


def timed(function: Callable[[str], list[str]], reviews: list[str]) -> tuple[list[list[str]], float]:
    started = time.perf_counter()
    tokens = [function(review) for review in reviews]
    return tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SHARED_ARCHIVE, help="aclImdb archive or folder")
    parser.add_argument("--cache-dir", type=Path, default=REPOSITORY / "data" / "cache")
    parser.add_argument("--code-sample", type=int, default=300, help="reviews for the (very slow) tutorial code")
    parser.add_argument("--limit", type=int, help="use only the first N training reviews (a quick run)")
    parser.add_argument("--results-name", default="preprocess", help="benchmarks/results/<name>.json")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the targets say
    reviews = load_imdb(args.source, args.cache_dir).where_split("train").text[: args.limit]
    sampled = random.Random(0).sample(range(len(reviews)), min(args.code_sample, len(reviews)))
    sample = [reviews[i] for i in sampled]
    print(f"{len(reviews):,} training reviews; tutorial code on a sample of {len(sample):,}")

    with tempfile.TemporaryDirectory() as nltk_data:
        install_stopword_corpus(Path(nltk_data))
        os.environ["NLTK_DATA"] = nltk_data
        tutorial_code, tutorial_recipe = tutorial_functions()
        code_tokens, code_seconds = timed(tutorial_code, sample)
        recipe_tokens, recipe_seconds = timed(tutorial_recipe, reviews)

    sentiment.text._porter_stem.cache_clear()  # a cold start, as in a fresh process
    seed_tokens, seed_seconds = timed(seed_tokenize, reviews)
    _, tokenize_seconds = timed(tokenize, reviews)
    recipe_is_code = [recipe_tokens[i] for i in sampled] == code_tokens
    seed_is_tutorial = seed_tokens == recipe_tokens and [seed_tokens[i] for i in sampled] == code_tokens

    def row(name: str, count: int, seconds: float, identical: Any = "") -> dict[str, Any]:
        rate = count / seconds
        return {
            "tokenizer": name,
            "reviews": count,
            "seconds": round(seconds, 3),
            "reviews/s": round(rate, 1),
            "x recipe": round(rate / (len(reviews) / recipe_seconds), 2),
            "x code": round(rate / (len(sample) / code_seconds), 2),
            "target": f">= {TARGETS[name]:g}x recipe" if name in TARGETS else "",
            "identical to tutorial": identical,
        }

    rows = [
        row("tutorial code", len(sample), code_seconds, "(reference)"),
        row("tutorial recipe", len(reviews), recipe_seconds, recipe_is_code),
        row("seed_tokenize", len(reviews), seed_seconds, seed_is_tutorial),
        row("tokenize", len(reviews), tokenize_seconds, "n/a (different tokens)"),
    ]
    for line in rows:
        if line["tokenizer"] in TARGETS:
            line["met"] = line["x recipe"] >= TARGETS[line["tokenizer"]]
    print_table(
        rows,
        [
            "tokenizer",
            "reviews",
            "seconds",
            "reviews/s",
            "x recipe",
            "x code",
            "target",
            "met",
            "identical to tutorial",
        ],
    )
    path = write_results(args.results_name, {"source": str(args.source), "rows": rows})
    print(f"results: {path.relative_to(REPOSITORY)}")
    if not (recipe_is_code and seed_is_tutorial):
        raise SystemExit("seed_tokenize differs from the tutorial's preprocessing")


if __name__ == "__main__":
    main()
