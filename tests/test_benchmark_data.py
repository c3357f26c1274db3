"""benchmarks/data: the sentences we wrote to measure short reviews stay well formed and apart."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"
FAMILIES = {
    "negated_negative",
    "negated_positive",
    "contrast_positive",
    "contrast_negative",
    "one_word",
    "emoji",
    "typos",
    "all_caps",
    "intensifiers",
    "plain_praise",
    "plain_complaint",
    "scores",
}


def records(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def plain(text: object) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", str(text).lower()).strip()


def test_the_probe_suite_has_every_family_labelled() -> None:
    probes = records("probes.jsonl")
    assert len(probes) >= 300
    assert all(set(probe) == {"text", "label", "family"} and probe["label"] in (0, 1) for probe in probes)
    families = Counter(str(probe["family"]) for probe in probes)
    assert set(families) == FAMILIES and min(families.values()) >= 24
    one_sided = {"contrast_positive": 1, "plain_praise": 1, "contrast_negative": 0, "plain_complaint": 0}
    for family, label in one_sided.items():
        assert {probe["label"] for probe in probes if probe["family"] == family} == {label}


def test_no_probe_repeats_another_or_one_of_our_earlier_sentences() -> None:
    probes = [plain(probe["text"]) for probe in records("probes.jsonl")]
    assert len(set(probes)) == len(probes)
    assert not set(probes) & {plain(review["text"]) for review in records("short_reviews.jsonl")}
