"""sentiment.training on a small made-up set: convergence, determinism, resume, batching."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sentiment.checkpoints import CheckpointStore
from sentiment.data.channels import SoftLabeled
from sentiment.data.table import ReviewTable
from sentiment.distributed import Group, Rendezvous
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.models.linear import LinearSettings
from sentiment.models.lstm import LSTMSettings
from sentiment.text import get_tokenizer, tokenizer_settings
from sentiment.training import (
    CROP_WORDS,
    built_short_texts,
    fit,
    job_fingerprint,
    learning_rate_at,
    sentence_crops,
    sharpened,
    train_linear,
    with_sentence_crops,
)
from sentiment.vocabulary import Vocabulary, length_batches
from tests.builders import NEGATIVE_WORDS, POSITIVE_WORDS, make_review

SMALL = [
    "--epochs", "4", "--embedding_dim", "16", "--hidden_dim", "16", "--batch_size", "16", "--vocab_size", "300",
    "--min_count", "1", "--learning_rate", "0.01", "--patience", "0", "--ngram_min_count", "1",
]  # fmt: skip


def made_up(count: int, seed: int) -> ReviewTable:
    rng = random.Random(seed)
    labels = [i % 2 for i in range(count)]
    return ReviewTable.from_columns(text=[make_review(rng, bool(label), words=24) for label in labels], label=labels)


@pytest.fixture(scope="module")
def data() -> tuple[ReviewTable, ReviewTable, ReviewTable]:
    return made_up(240, 1), made_up(80, 2), made_up(120, 3)


@pytest.mark.parametrize("family", ["lstm", "linear", "ensemble"])
def test_each_family_learns_a_separable_set(data: tuple, family: str) -> None:
    train, validation, unlabeled = data
    lines: list[str] = []
    result = fit(parse_hyperparameters([*SMALL, "--model", family]), train, validation, unlabeled, report=lines.append)
    assert result.validation[family] >= 0.9
    assert result.predictor.family == family
    test = made_up(60, 4)
    assert np.mean((result.predictor.predict_proba(test.text) >= 0.5) == (test.label == 1)) >= 0.9
    if family != "linear":
        assert [entry["epoch"] for entry in result.history] == [1, 2, 3, 4]
        assert any(line.startswith("epoch=4 train_loss=") and " val_acc=" in line for line in lines)
        assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_the_same_seed_gives_the_same_model_and_another_seed_another(data: tuple) -> None:
    train, validation, unlabeled = data
    texts = made_up(20, 5).text

    def logits(seed: int) -> np.ndarray:
        hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--seed", str(seed)])
        return fit(hp, train, validation, unlabeled, report=lambda line: None).predictor.logits(texts)

    first = logits(7)
    assert np.array_equal(first, logits(7))
    assert not np.array_equal(first, logits(8))


class Interrupted(Exception):
    pass


def test_a_restarted_job_resumes_from_its_checkpoint_and_ends_the_same(data: tuple, tmp_path: Path) -> None:
    train, validation, unlabeled = data
    hp = parse_hyperparameters([*SMALL, "--model", "lstm", "--pretrained_vectors", "true"])
    texts = made_up(20, 5).text
    straight = fit(hp, train, validation, unlabeled, report=lambda line: None)

    def stop_in_epoch_3(line: str) -> None:
        if line.startswith("epoch=3"):
            raise Interrupted  # after epoch 2's checkpoint, before epoch 3's

    store = CheckpointStore(tmp_path, job="job-1")
    with pytest.raises(Interrupted):
        fit(hp, train, validation, unlabeled, checkpoints=store, report=stop_in_epoch_3)
    assert {p.name for p in tmp_path.iterdir()} == {
        "vectors.json",
        "vectors.safetensors",
        "lstm.json",
        "lstm.safetensors",
    }

    lines: list[str] = []
    resumed = fit(
        hp, train, validation, unlabeled, checkpoints=CheckpointStore(tmp_path, job="job-1"), report=lines.append
    )
    assert "resumed: the LSTM continues after epoch 2 (checkpoint)" in lines
    assert not any(line.startswith(("epoch=1", "epoch=2")) for line in lines)
    assert [entry["epoch"] for entry in resumed.history] == [1, 2, 3, 4]
    assert np.array_equal(resumed.predictor.logits(texts), straight.predictor.logits(texts))


def test_a_checkpoint_of_another_job_is_not_resumed(
    data: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, validation, _ = data
    hp = parse_hyperparameters([*SMALL, "--model", "lstm", "--epochs", "2"])
    fit(hp, train, validation, checkpoints=CheckpointStore(tmp_path, job="job-1"), report=lambda line: None)
    lines: list[str] = []
    fit(hp, train, validation, checkpoints=CheckpointStore(tmp_path, job="job-2"), report=lines.append)
    assert any(line.startswith("epoch=1") for line in lines)
    assert "belongs to another job" in caplog.text


def test_a_damaged_checkpoint_is_not_resumed(data: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train, validation, _ = data
    hp = parse_hyperparameters([*SMALL, "--model", "lstm", "--epochs", "2"])
    fit(hp, train, validation, checkpoints=CheckpointStore(tmp_path, job="j"), report=lambda line: None)
    (tmp_path / "lstm.safetensors").write_bytes(b"garbage")
    lines: list[str] = []
    fit(hp, train, validation, checkpoints=CheckpointStore(tmp_path, job="j"), report=lines.append)
    assert any(line.startswith("epoch=1") for line in lines)
    assert "tensors missing or changed" in caplog.text


def test_length_batches_cover_every_row_once_with_similar_lengths() -> None:
    lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    batches = length_batches(lengths, 32, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    assert all(len(batch) <= 32 for batch in batches)
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 60  # sorted within buckets of 50 batches: far less than random batches' ~470


def test_one_cycle_warms_up_then_decays_to_zero() -> None:
    settings = LSTMSettings(learning_rate=0.01)
    rates = [learning_rate_at(step, 100, settings) for step in range(100)]
    assert rates[0] == pytest.approx(0.001) and max(rates) == pytest.approx(0.01)
    assert rates.index(max(rates)) == 9 and rates[-1] < 1e-4
    constant = LSTMSettings(schedule="constant", learning_rate=0.01)
    assert {learning_rate_at(step, 100, constant) for step in range(100)} == {0.01}


def test_cuda_is_refused_clearly_when_absent() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from sentiment.training import choose_device

    with pytest.raises(ValueError, match="no CUDA device"):
        choose_device("cuda")
    assert choose_device("auto").type == "cpu"


def test_sentence_crops_are_one_or_two_whole_sentences_labelled_as_their_review() -> None:
    reviews = [
        "Superb acting throughout the film. The plot drags in the middle. A joy to watch again!",
        "Awful script. I left early. Nobody should pay for this mess.",
        "One sentence only, never cropped.",
    ]
    labels = np.array([1, 0, 1], dtype=np.int8)
    crops, crop_labels = sentence_crops(reviews, labels, per_review=3, seed=1)
    assert len(crops) == len(crop_labels) > 0 and crop_labels.dtype == labels.dtype
    for crop, label in zip(crops, crop_labels, strict=True):
        (source,) = [index for index, review in enumerate(reviews) if crop in review]
        assert source != 2 and label == labels[source]
        assert CROP_WORDS[0] <= len(crop.split()) <= CROP_WORDS[1]
        assert crop[-1] in ".!"  # whole sentences, never a cut one
    assert sentence_crops(reviews, labels, per_review=3, seed=1)[0] == crops  # the seed decides
    assert sentence_crops(reviews, labels, per_review=0, seed=1)[0] == []


def test_training_rows_with_sentence_crops_follow_their_review_and_carry_its_label() -> None:
    reviews = [
        "Superb acting throughout the film. The plot drags in the middle. A joy to watch again!",
        "Awful script. I left early. Nobody should pay for this mess.",
        "One sentence only, never cropped.",
    ]
    labels = np.array([1, 0, 1], dtype=np.int8)
    tokens = [review.lower().split() for review in reviews]

    def rows_of(texts: list[str], per_review: int) -> tuple[list[list[str]], list[int]]:
        picked = [reviews.index(text) for text in texts]
        rows = with_sentence_crops(texts, [tokens[i] for i in picked], labels[picked], per_review, str.split, 1)
        return rows.tokens, rows.labels.tolist()

    rows, row_labels = rows_of(reviews, 2)
    assert rows[0] == tokens[0] and tokens[1] in rows and rows[-1] == tokens[2]  # a lone sentence: no crop
    starts = [rows.index(review_tokens) for review_tokens in tokens]
    assert starts[0] == 0 and starts[1] - starts[0] > 1 and starts[2] - starts[1] > 1  # each review's crops follow it
    for review, (start, end) in enumerate(zip(starts, [*starts[1:], len(rows)], strict=True)):
        assert row_labels[start:end] == [labels[review]] * (end - start)
        for crop in rows[start + 1 : end]:
            assert " ".join(crop) in reviews[review] and CROP_WORDS[0] <= len(crop) <= CROP_WORDS[1]
    # A review's crops depend on its text and the seed only: parts of a channel, in order, give the whole.
    first, second = rows_of(reviews[:1], 2), rows_of(reviews[1:], 2)
    assert (first[0] + second[0], first[1] + second[1]) == (rows, row_labels)
    assert rows_of(reviews, 0) == (tokens, labels.tolist())


def test_sentence_crops_are_added_to_the_lstms_training_rows_only(data: tuple) -> None:
    train, validation, _ = data
    lines: list[str] = []
    models = {}
    for crops in ("0", "2"):
        hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--sentence_crops", crops])
        models[crops] = fit(hp, train, validation, report=lines.append).predictor
    (line,) = [line for line in lines if line.startswith("sentence crops:")]  # only the run that asked
    rows = int(line.split(" on ")[1].split(" rows")[0].replace(",", ""))
    assert rows > len(train) and f"({len(train):,} reviews)" in line
    with_crops, without = models["2"].members, models["0"].members
    assert np.array_equal(with_crops["linear"].scorer.coefficients, without["linear"].scorer.coefficients)
    assert not torch.equal(with_crops["lstm"].network.embedding.weight, without["lstm"].network.embedding.weight)


def test_built_short_texts_are_added_to_both_families_training_rows(data: tuple) -> None:
    train, validation, _ = data
    lines: list[str] = []
    models = {}
    for count in ("0", "200"):
        hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--short_texts", count])
        models[count] = fit(hp, train, validation, report=lines.append).predictor
    assert [line for line in lines if line.startswith("built short texts:")] == [
        "built short texts: 200 short reviews added to training"
    ]  # only the run that asked
    with_texts, without = models["200"].members, models["0"].members
    linear_with, linear_without = with_texts["linear"].scorer.coefficients, without["linear"].scorer.coefficients
    assert not (linear_with.shape == linear_without.shape and np.array_equal(linear_with, linear_without))
    assert not torch.equal(with_texts["lstm"].network.embedding.weight, without["lstm"].network.embedding.weight)
    assert models["200"].vocabulary.tokens == models["0"].vocabulary.tokens  # the vocabulary is the reviews'


def test_each_rank_trains_on_its_own_share_of_the_built_short_texts() -> None:
    hosts = ("algo-1", "algo-2")
    ranks = [Group(Rendezvous(hosts=hosts, host_rank=rank)) for rank in range(2)]
    shares = [built_short_texts(50, 1, str.split, group) for group in ranks]
    alone = built_short_texts(50, 1, str.split)
    assert len(alone.tokens) == 50 and [len(share.tokens) for share in shares] == [25, 25]
    interleaved = [tokens for pair in zip(shares[0].tokens, shares[1].tokens, strict=True) for tokens in pair]
    assert interleaved == alone.tokens
    assert np.concatenate([shares[0].labels, shares[1].labels]).sum() == alone.labels.sum()


def test_short_text_weights_fit_short_texts_and_leave_reviews_alone(data: tuple) -> None:
    train, validation, _ = data
    short = [f"The film was {word}." for word in [*POSITIVE_WORDS, *NEGATIVE_WORDS]]
    labels = np.array([word in POSITIVE_WORDS for word in [*POSITIVE_WORDS, *NEGATIVE_WORDS]])
    models = {}
    for enabled in ("false", "true"):
        hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--short_text_weights", enabled])
        models[enabled] = fit(hp, train, validation, report=lambda line: None).predictor
    with_short, without = models["true"], models["false"]
    assert without.ensemble is not None and without.ensemble.short_weights is None
    assert with_short.ensemble is not None and with_short.ensemble.short_weights is not None
    # The same seed trains the same parts; review-length texts keep the review weights exactly.
    assert with_short.ensemble.weights == without.ensemble.weights
    long_reviews = [make_review(random.Random(seed), bool(seed % 2), words=120) for seed in range(10)]
    assert min(len(with_short.tokenize(text)) for text in long_reviews) >= 80
    assert np.allclose(with_short.logits(long_reviews), without.logits(long_reviews))
    assert ((with_short.logits(short) >= 0) == labels).all()


def test_negation_scopes_let_a_unigram_model_tell_not_bad_from_bad() -> None:
    # Every word is in as many positive as negative reviews: plain unigrams cannot separate them.
    token_lists = [["not", "bad"], ["good"], ["bad"], ["not", "good"]] * 10
    labels = np.array([1, 1, 0, 0] * 10, dtype=np.int8)
    vocabulary = Vocabulary.build(token_lists, tokenizer_settings("default"), max_size=10, min_count=1)
    accuracies = {}
    for window in (0, 2):
        settings = LinearSettings(ngram_max=1, ngram_min_count=1, negation_window=window)
        store = CheckpointStore(None, job="")
        linear = train_linear(settings, 0, vocabulary, token_lists, labels, store, lambda line: None)
        assert linear.negation_window == window
        accuracies[window] = float(((linear.logits(vocabulary, token_lists) > 0) == labels).mean())
    assert accuracies == {0: 0.5, 2: 1.0}


def soft_sentences(count: int, seed: int) -> SoftLabeled:
    """Short texts of the made-up vocabulary, scored like a teacher that is sure of most and doubts some."""
    rng = random.Random(seed)
    texts, scores = [], []
    for index in range(count):
        positive = index % 2 == 0
        texts.append(make_review(rng, positive, words=8).split("<br />")[0])
        scores.append((0.9 if positive else 0.1) if index % 5 else 0.5)
    return SoftLabeled(texts, np.array(scores, dtype=np.float32))


def test_soft_labelled_sentences_teach_the_lstm_and_leave_the_linear_model_alone(data: tuple) -> None:
    train, validation, unlabeled = data
    hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--pseudo_labels", "false"])
    probe = made_up(30, 6).text
    plain = fit(hp, train, validation, unlabeled, report=lambda line: None)
    lines: list[str] = []
    taught = fit(hp, train, validation, unlabeled, report=lines.append, sentences=soft_sentences(60, 9))
    assert "sentences: the LSTM also learns from 60 soft-labelled texts, mean 0.500" in lines
    tokens = [get_tokenizer(hp.tokenizer)(text) for text in probe]
    linear, lstm = (
        [result.predictor.members[name].logits(tokens) for result in (plain, taught)] for name in ("linear", "lstm")
    )
    assert np.array_equal(*linear)  # the n-gram weights never see the soft labels
    assert not np.array_equal(*lstm)
    assert taught.validation["lstm"] >= 0.9


def test_the_sentences_are_part_of_the_job_fingerprint(data: tuple) -> None:
    train, validation, unlabeled = data
    hp = parse_hyperparameters(SMALL)
    without = job_fingerprint(hp, train, validation, unlabeled, None)
    with_some = job_fingerprint(hp, train, validation, unlabeled, soft_sentences(10, 1))
    assert len({without, with_some, job_fingerprint(hp, train, validation, unlabeled, soft_sentences(10, 2))}) == 3
    assert with_some == job_fingerprint(hp, train, validation, unlabeled, soft_sentences(10, 1))


def test_sharpened_scores_scale_their_logits_and_keep_one_half_zero_and_one() -> None:
    scores = np.array([0.0, 0.3, 0.5, 0.6, 0.9, 1.0], dtype=np.float32)
    assert sharpened(scores, 1.0) is scores  # as labelled: the same array, nothing recomputed
    twice = sharpened(scores, 2.0)
    logits = np.log(scores[1:5] / (1 - scores[1:5]))
    np.testing.assert_allclose(np.log(twice[1:5] / (1 - twice[1:5])), 2 * logits, atol=1e-5)
    assert twice.dtype == np.float32 and twice[0] == 0.0 and twice[2] == 0.5 and twice[5] == 1.0
    softer = sharpened(scores, 0.5)
    assert np.all(np.abs(softer[1:5] - 0.5) <= np.abs(scores[1:5] - 0.5))
    assert np.all((twice >= 0) & (twice <= 1)) and np.all(np.diff(twice) >= 0)  # order kept
