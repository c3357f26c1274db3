#!/usr/bin/env python3
"""How models judge what visitors type into the page (a sentence or two), and whole reviews, side by side.

    python benchmarks/short_reviews.py [--model PATH ...] [--channels data/channels] [--test-reviews N]
                                       [--teacher build/teacher [--teacher-share 0.5]]

Sets, none of them seen in training:
  shared          ../shared/data/sentences/imdb_labelled.tsv: 1,000 hand-labelled single sentences from
                  IMDb reviews (Kotzias et al., 2015); for measuring and choosing, never for training
  probes          benchmarks/data/probes.jsonl: 348 sentences we wrote, in families (negation, contrast,
                  one word, emoji, typos, capitals, intensifiers, ...); each family is also a row of its own
  ours            benchmarks/data/short_reviews.jsonl: 100 one-sentence reviews we wrote earlier
  imdb_last       the last sentence (3-25 words) of each IMDb test review rated 1-2 or 9-10 stars,
                  labelled as its review: how reviewers sum up
  imdb_test       IMDb's test reviews, whole (the first --test-reviews of them; all 25,000 by default)
For each: accuracy, the share of verdicts in the page's "uncertain" band (0.4-0.6), the Brier score
(mean squared distance of P(positive) from the label: calibration and accuracy at once) and the cost
per review (one call of the whole set, on this machine's threads). `--model` takes model folders or
model.tar.gz files (default: the bundled model), side by side; an ensemble with short-text weights also
gets a row without them (its review weights at every length), the baseline they are measured against.
`--teacher` (a teacher from `python -m teacher.finetune`; needs teacher/requirements.txt) adds the
teacher's rows and, for each model, rows of the labels `python -m teacher.label` would make with it as
the student (teacher-share x teacher + the rest x model): what a student learning from them can at best
reach. Both leave out imdb_test: the teacher is never served, and a whole review costs it ~70 ms.
Writes benchmarks/results/short_reviews.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from common import REPOSITORY, print_table, write_results

from sentiment.artifacts import load_model
from sentiment.data.channels import read_channel
from sentiment.data.table import ReviewTable
from sentiment.predictor import UNCERTAIN_BAND, Predictor
from sentiment.text import sentences

SHARED = REPOSITORY.parent / "shared" / "data" / "sentences" / "imdb_labelled.tsv"
PROBES = REPOSITORY / "benchmarks" / "data" / "probes.jsonl"
OURS = REPOSITORY / "benchmarks" / "data" / "short_reviews.jsonl"
LAST_SENTENCE_WORDS = (3, 25)
UNCERTAIN = UNCERTAIN_BAND  # the page's band (web/app.js), defined beside the verdicts
TARGETS = {"shared": 0.94, "probes": 0.95}  # issue 16; and every probe family at least 0.90
FAMILY_TARGET = 0.90

Labelled = tuple[list[str], np.ndarray]


def shared_sentences() -> Labelled | None:
    if not SHARED.is_file():
        return None
    with SHARED.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["text"] for row in rows], np.array([int(row["label"]) for row in rows])


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def probe_sets() -> dict[str, Labelled]:
    """The whole probe suite, then each family of it."""
    records = jsonl(PROBES)
    sets = {"probes": ([r["text"] for r in records], np.array([r["label"] for r in records]))}
    for family in dict.fromkeys(r["family"] for r in records):
        chosen = [r for r in records if r["family"] == family]
        sets[f"probes/{family}"] = ([r["text"] for r in chosen], np.array([r["label"] for r in chosen]))
    return sets


def last_sentences(table: ReviewTable) -> Labelled:
    """The closing sentence of each clearly rated review (1-2 or 9-10 stars), with its review's label."""
    texts, labels = [], []
    for text, label, rating in zip(table.text, table.label, table.rating, strict=True):
        if 3 <= rating <= 8:
            continue
        closing = [s for s in sentences(text) if LAST_SENTENCE_WORDS[0] <= len(s.split()) <= LAST_SENTENCE_WORDS[1]]
        if closing:
            texts.append(closing[-1])
            labels.append(int(label))
    return texts, np.array(labels)


def timed_scores(score: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    """P(positive) for each text, and the seconds the one call took."""
    started = time.perf_counter()
    scores = np.asarray(score(texts), dtype=np.float64)
    return scores, time.perf_counter() - started


def figures(scores: np.ndarray, labels: np.ndarray, seconds: float) -> dict[str, float]:
    return {
        "acc": round(float(((scores >= 0.5) == labels).mean()), 4),
        "uncertain": round(float(((scores > UNCERTAIN[0]) & (scores < UNCERTAIN[1])).mean()), 4),
        "brier": round(float(np.mean((scores - labels) ** 2)), 4),
        "ms_per_review": round(1000 * seconds / len(scores), 3),
    }


Scored = dict[str, tuple[np.ndarray, float]]  # set name -> (P(positive) of each text, seconds of the call)


def measure(name: str, model: Predictor, sets: dict[str, Labelled]) -> tuple[list[dict[str, Any]], Scored]:
    """A row per set, and the scores behind them (the teacher's labels reuse them)."""
    rows, scored = [], {}
    for set_name, (texts, labels) in sets.items():
        scores, seconds = scored[set_name] = timed_scores(model.predict_proba, texts)
        rows.append({"model": name, "set": set_name, **figures(scores, labels, seconds)})
    return rows, scored


def teacher_rows(
    folder: Path, share: float, students: dict[str, Scored], sets: dict[str, Labelled]
) -> list[dict[str, Any]]:
    """The teacher alone, then the labels it would make with each student (from the student's scores
    already measured), on every set but imdb_test."""
    sys.path.insert(0, str(REPOSITORY))  # teacher/ is a folder of the repository, not an installed package
    from teacher.label import teacher_scores  # transformers: only when asked for (teacher/requirements.txt)
    from teacher.model import load_teacher

    teacher, _ = load_teacher(folder)
    rows = []
    for set_name, (texts, labels) in sets.items():
        if set_name == "imdb_test":
            continue
        theirs, seconds = timed_scores(lambda chosen: teacher_scores(teacher, chosen), texts)
        rows.append({"model": f"teacher {folder}", "set": set_name, **figures(theirs, labels, seconds)})
        for name, scored in students.items():
            ours, more = scored[set_name]
            mixed = share * theirs + (1 - share) * ours
            label_name = f"labels: {share:g} teacher + {1 - share:g} {name}"
            rows.append({"model": label_name, "set": set_name, **figures(mixed, labels, seconds + more)})
    return rows


def target_note(row: dict[str, Any]) -> str:
    target = TARGETS.get(row["set"], FAMILY_TARGET if row["set"].startswith("probes/") else None)
    if target is None:
        return ""
    return f">= {target:.0%}: {'met' if row['acc'] >= target else 'not met'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="model folder or model.tar.gz (repeatable)")
    parser.add_argument("--channels", type=Path, default=REPOSITORY / "data" / "channels")
    parser.add_argument("--test-reviews", type=int, default=25_000, help="whole IMDb test reviews scored")
    parser.add_argument("--teacher", type=Path, help="a teacher folder: adds its rows and its labels' rows")
    parser.add_argument("--teacher-share", type=float, default=0.5, help="the teacher's weight in the labels")
    args = parser.parse_args()
    if not (args.channels / "test").is_dir():
        parser.error(f"no test channel in {args.channels}: run `make data` first")
    if not 0.0 <= args.teacher_share <= 1.0:
        parser.error("--teacher-share must be from 0 to 1")

    test = read_channel(args.channels / "test", "test")
    sets: dict[str, Labelled] = {}
    shared = shared_sentences()
    if shared is None:
        print(f"note: {SHARED} is not here; the shared sentences are left out")
    else:
        sets["shared"] = shared
    sets.update(probe_sets())
    records = jsonl(OURS)
    sets["ours"] = ([r["text"] for r in records], np.array([r["label"] for r in records]))
    sets["imdb_last"] = last_sentences(test)
    whole = np.random.default_rng(0).permutation(len(test))[: args.test_reviews]  # both labels, not one
    sets["imdb_test"] = ([test.text[i] for i in whole], np.asarray(test.label)[whole])

    rows: list[dict[str, Any]] = []
    students: dict[str, Scored] = {}
    for path in args.model or [None]:
        model = load_model(path)
        name = "bundled" if path is None else str(path)
        model_rows, students[name] = measure(name, model, sets)
        rows.extend(model_rows)
        if model.ensemble is not None and model.ensemble.short_weights is not None:
            model.ensemble = replace(model.ensemble, short_weights=None, short_bias=None)
            rows.extend(measure(f"{name}, review weights only", model, sets)[0])
    if args.teacher is not None:
        rows.extend(teacher_rows(args.teacher, args.teacher_share, students, sets))
    for row in rows:
        row["target"] = target_note(row)
    print_table(rows, ["model", "set", "acc", "uncertain", "brier", "ms_per_review", "target"])
    sizes = {name: len(texts) for name, (texts, _) in sets.items()}
    print(f"texts per set: {sizes}")
    path = write_results("short_reviews", {"sizes": sizes, "rows": rows})
    print(f"results: {path.relative_to(REPOSITORY)}")


if __name__ == "__main__":
    main()
