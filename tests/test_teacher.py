"""teacher/: fine-tune the real sentence encoder for a few steps, resume it, and label sentences with it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import teacher.finetune as finetune
from sentiment.artifacts import load_model
from sentiment.data.channels import SENTENCES_DETAILS, read_sentences, sentences_details, write_channel
from sentiment.data.table import ReviewTable
from teacher.label import main as label_main
from teacher.label import teacher_scores, windows
from teacher.model import CARD, WEIGHTS, load_teacher
from tests.builders import make_review
from tests.test_training import made_up

STEPS = ["--steps", "4", "--batch-size", "4", "--threads", "2"]


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("channels")
    write_channel(made_up(40, 1), root / "train", "train")
    rng = random.Random(2)
    texts = [make_review(rng, index % 2 == 0, words=24) for index in range(6)] + ["One sentence only."]
    write_channel(ReviewTable.from_columns(text=texts, label=[-1] * len(texts)), root / "unlabeled", "unlabeled")
    return root


@pytest.fixture(scope="module")
def trained(channels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("teacher") / "teacher"
    assert finetune.main(["--train", str(channels / "train"), "--output", str(output), *STEPS]) == 0
    return output


def test_a_fine_tuned_teacher_is_saved_as_safetensors_with_its_card(trained: Path) -> None:
    assert sorted(path.name for path in trained.iterdir()) == sorted([WEIGHTS, CARD])
    card = json.loads((trained / CARD).read_text())
    assert card["format"] == "sentiment-teacher" and card["steps"] == 4 and card["reviews"] == 40
    assert card["base"] == "sentence-transformers/all-MiniLM-L6-v2"
    model, loaded = load_teacher(trained)
    assert loaded.steps == 4 and not model.training


def test_an_interrupted_fine_tuning_resumes_and_ends_as_an_uninterrupted_one(
    channels: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(finetune, "CHECKPOINT_EVERY", 2)
    calls = 0
    real_encode = finetune.encode

    def failing_on_the_third_step(*args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_encode(*args)

    output = tmp_path / "teacher"
    arguments = ["--train", str(channels / "train"), "--output", str(output), *STEPS]
    monkeypatch.setattr(finetune, "encode", failing_on_the_third_step)
    with pytest.raises(KeyboardInterrupt):
        finetune.main(arguments)
    assert not output.exists()
    monkeypatch.setattr(finetune, "encode", real_encode)
    assert finetune.main(arguments) == 0
    assert "resumed: the teacher continues after step 2 (checkpoint)" in capsys.readouterr().out
    resumed, straight = load_teacher(output)[0].state_dict(), load_teacher(trained)[0].state_dict()
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)


def test_labelled_sentences_are_the_mean_of_teacher_and_student(
    channels: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "sentences"
    arguments = ["--unlabeled", str(channels / "unlabeled"), "--teacher", str(trained), "--output", str(output)]
    assert label_main(arguments) == 0
    assert sorted(path.name for path in output.iterdir()) == sorted(["sentences.jsonl", SENTENCES_DETAILS])
    sentences = read_sentences(output)
    reviews = list(read_sentences.__globals__["read_channel"](channels / "unlabeled", "unlabeled").text)
    assert sentences.texts == windows(reviews, 3, 0) and 6 <= len(sentences) <= 18  # none from one sentence
    expected = 0.5 * teacher_scores(load_teacher(trained)[0], sentences.texts) + 0.5 * load_model(None).predict_proba(
        sentences.texts
    )
    assert np.allclose(sentences.scores, expected, atol=2e-5)
    details = sentences_details(output)
    assert details["windows"] == len(sentences) and details["teacher"]["steps"] == 4
    assert details["score"] == "0.5 x teacher + 0.5 x student" and details["student"].startswith("bundled_model")
    assert f"sentences: {len(sentences):,} windows in {output}" in capsys.readouterr().out


def test_a_folder_without_a_teacher_or_with_broken_weights_is_a_clear_error(
    channels: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    arguments = ["--unlabeled", str(channels / "unlabeled"), "--output", str(tmp_path / "out"), "--teacher"]
    assert label_main([*arguments, str(tmp_path)]) == 1
    assert "holds no teacher" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CARD).write_bytes((trained / CARD).read_bytes())
    (broken / WEIGHTS).write_bytes((trained / WEIGHTS).read_bytes()[:1000])
    assert label_main([*arguments, str(broken)]) == 1
    assert "not the teacher's weights" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
