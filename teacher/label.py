"""Label sentence windows of the unlabeled reviews for the LSTM: the `sentences` training channel.

    python -m teacher.label --unlabeled data/channels/unlabeled --teacher build/teacher \
        --output build/sentences      # about 3 minutes on 2 CPU cores for 50,000 reviews

Cuts up to `--per-review` windows of one or two sentences from each review (`sentiment.training.crops_of`:
what visitors type is one or two sentences), then scores each with the fine-tuned teacher and with a
model of ours (`--student`, default the bundled model). Each window's label is the mean of the two
probabilities, kept soft: where they disagree the label says so, and the LSTM learns the doubt
instead of a coin flip. Writes `<output>/sentences.jsonl`, `{"text", "score"}` per line, and
`<output>/sentences.json` (how they were labelled, for the student's model card), replacing the folder whole.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from sentiment.artifacts import BUNDLED_MODEL, load_model
from sentiment.data.channels import SENTENCES_DETAILS, SoftLabeled, read_channel, write_sentences
from sentiment.errors import SentimentError
from sentiment.files import atomic_directory, read_json, write_json_atomic
from sentiment.models.lstm import native_bfloat16
from sentiment.training import crops_of
from teacher.model import Teacher, encode, load_teacher, tokenizer

BATCH = 128  # windows per teacher forward pass, sorted by length so each batch pads little


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teacher.label", description=__doc__.split("\n\n")[0])
    parser.add_argument("--unlabeled", type=Path, required=True, help="the unlabeled channel folder")
    parser.add_argument("--teacher", type=Path, required=True, help="a teacher from python -m teacher.finetune")
    parser.add_argument("--output", type=Path, required=True, help="the sentences channel folder to write")
    parser.add_argument("--student", type=Path, help="the model whose opinion is averaged in (default: bundled)")
    parser.add_argument("--per-review", type=int, default=3, help="windows cut per review (default: %(default)s)")
    parser.add_argument("--teacher-share", type=float, default=0.5, help="the teacher's weight in each label")
    parser.add_argument("--seed", type=int, default=0, help="the same seed cuts the same windows")
    args = parser.parse_args(argv)
    if args.per_review < 1 or not 0.0 <= args.teacher_share <= 1.0:
        parser.error("--per-review must be at least 1 and --teacher-share from 0 to 1")
    try:
        label(args)
    except SentimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def label(args: argparse.Namespace) -> SoftLabeled:
    teacher, card = load_teacher(args.teacher)
    unlabeled = read_channel(args.unlabeled, "unlabeled")
    texts = windows(list(unlabeled.text), args.per_review, args.seed)
    if not texts:
        raise SentimentError(f"{args.unlabeled}: no review has two or more sentences to cut windows from")
    started = time.perf_counter()
    student = load_model(args.student)
    ours = student.predict_proba(texts)  # one call: the LSTM encodes in bounded groups, n-grams grow with the words
    theirs = teacher_scores(teacher, texts)
    scores = (args.teacher_share * theirs + (1 - args.teacher_share) * ours).astype(np.float32)
    labelled = SoftLabeled(texts, scores)
    agree = float(np.mean((theirs >= 0.5) == (ours >= 0.5)))
    details = {
        "source": "unlabeled reviews",
        "source_sha256": unlabeled.digest(),
        "windows": len(texts),
        "per_review": args.per_review,
        "seed": args.seed,
        "score": f"{args.teacher_share:g} x teacher + {1 - args.teacher_share:g} x student",
        "teacher": asdict(card),
        "student": student_name(args.student),
        "agreement": round(agree, 4),
    }
    with atomic_directory(args.output) as staging:  # the texts and what says how they were labelled, together
        write_sentences(labelled, staging / "sentences.jsonl")
        write_json_atomic(staging / SENTENCES_DETAILS, details)
    print(
        f"sentences: {len(texts):,} windows in {args.output} ({time.perf_counter() - started:.0f}s); teacher and "
        f"student agree on {agree:.1%}; mean score {scores.mean():.3f}"
    )
    return labelled


def student_name(folder: Path | None) -> str:
    """The student model as its card names it: folder, commit and creation time."""
    path = Path(folder) if folder is not None else BUNDLED_MODEL
    try:
        card = read_json(path / "card.json")
    except (OSError, ValueError):
        return str(path)
    return f"{path.name} (commit {card.get('git_commit')}, created {card.get('created')})"


def windows(reviews: list[str], per_review: int, seed: int) -> list[str]:
    """Up to `per_review` distinct windows of one or two sentences from each review, in review order."""
    rng = np.random.default_rng([seed, 11])
    texts: list[str] = []
    for review in reviews:
        texts.extend(dict.fromkeys(crops_of(review, per_review, rng)))
    return texts


def teacher_scores(teacher: Teacher, texts: list[str]) -> np.ndarray:
    """The teacher's probability positive for each text."""
    tokenize = tokenizer()
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    scores = np.zeros(len(texts), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bfloat16()):
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            ids, mask = encode(tokenize, [texts[index] for index in chosen])
            scores[chosen] = torch.sigmoid(teacher(ids, mask).float()).numpy()
    return scores


if __name__ == "__main__":
    raise SystemExit(main())
