"""`sentiment-card`: add (or refresh) the traffic figures of a trained model's card, without retraining.

    sentiment-card container/sentiment/bundled_model --data data/channels/validation

The figures are those `sentiment-train` writes for a new model (`sentiment.evaluation.card_traffic`):
words per review, share of unknown words, share of positive and of uncertain verdicts, for held-out
reviews scored by the model; `sentiment-drift` compares captured traffic with them. `--data` is a
channel folder or file (its labels are not used). Rewrites card.json and card.md only; the model's
own files are never touched. A rerun on the same data finds the same figures and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentiment.artifacts import load_model
from sentiment.data.channels import read_labeled
from sentiment.errors import SentimentError
from sentiment.evaluation import card_traffic, render_card
from sentiment.files import read_json, write_bytes_atomic, write_json_atomic

CARD, CARD_TEXT = "card.json", "card.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-card", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model folder holding card.json")
    parser.add_argument("--data", type=Path, required=True, help="held-out reviews: a channel folder or file")
    parser.add_argument("--cache-dir", type=Path, help="where to keep columnar copies of aclImdb sources")
    args = parser.parse_args(argv)
    try:
        card = read_card(args.model)
        predictor = load_model(args.model)
        reviews = read_labeled(args.data, args.cache_dir)
    except (SentimentError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    traffic = card_traffic(predictor, reviews, source_name(card, reviews.digest(), args.data))
    if card.get("traffic") == traffic:
        print(f"card: {args.model / CARD} already holds these figures ({len(reviews):,} reviews); nothing written")
        return 0
    card["traffic"] = traffic
    write_json_atomic(args.model / CARD, card)
    write_bytes_atomic(args.model / CARD_TEXT, render_card(card).encode("utf-8"))
    print(f"card: traffic figures of {len(reviews):,} {traffic['source']} reviews written to {args.model / CARD}")
    print(
        f"card: words per review {traffic['words_per_review']['quantiles']}, "
        f"unknown words {traffic['unknown_word_share']['mean']:.2%}, positive {traffic['positive_share']:.2%}, "
        f"uncertain {traffic['uncertain_share']:.2%}"
    )
    return 0


def read_card(model: Path) -> dict[str, Any]:
    path = model / CARD
    if not path.is_file():
        raise SentimentError(f"{path}: no model card here (a model folder written by sentiment-train holds one)")
    card = read_json(path)
    if not isinstance(card, dict) or "data" not in card:
        raise SentimentError(f"{path}: not a model card (no data section)")
    return card


def source_name(card: dict[str, Any], digest: str, data: Path) -> str:
    """The card's name for the channel whose reviews these are ("validation"), else the path given."""
    for name, entry in card["data"].items():
        if entry.get("sha256") == digest:
            return name
    return str(data)


if __name__ == "__main__":
    sys.exit(main())
