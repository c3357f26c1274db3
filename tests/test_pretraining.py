"""sentiment.pretraining: each direction of the LSTM learns to predict the next word of unlabeled text,
resumes after an interruption to the very weights of an uninterrupted run, and training starts from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sentiment import pretraining
from sentiment.checkpoints import CheckpointStore
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.models.lstm import LSTMClassifier, LSTMConfig
from sentiment.models.member import Encoding
from sentiment.pretraining import LanguageModel, PretrainingPlan, pretrain
from sentiment.text import tokenize
from sentiment.training import fit, job_fingerprint
from sentiment.vocabulary import EncodedBatch, Vocabulary
from tests.test_training import SMALL, made_up

PLAN = PretrainingPlan(epochs=3, batch_size=16, learning_rate=5e-3, seed=1)


NOUNS = ("film", "plot", "cast", "score", "ending", "script")
WORDS = ("superb", "awful", "slow", "moving", "dull", "funny")
VERBS = ("liked", "hated")


def structured_reviews(count: int) -> list[str]:
    """Reviews with a grammar to learn: after "the" a noun, after a noun "was", and so on."""
    rng = np.random.default_rng(5)
    return [
        " ".join(
            f"the {NOUNS[rng.integers(6)]} was {WORDS[rng.integers(6)]} and i {VERBS[rng.integers(2)]} it ."
            for _ in range(3)
        )
        for _ in range(count)
    ]


def encoded_reviews(count: int = 300) -> tuple[Vocabulary, EncodedBatch]:
    tokens = [tokenize(text) for text in structured_reviews(count)]
    vocabulary = Vocabulary.build(tokens, {"name": "default", "version": 2}, 500, 1)
    return vocabulary, Encoding(64, "head_tail").encode(vocabulary, tokens)


def small_network(vocabulary: Vocabulary) -> LSTMClassifier:
    torch.manual_seed(1)
    shape = {"embedding_dim": 16, "hidden_dim": 16, "layers": 1, "bidirectional": True, "pooling": "max_mean"}
    return LSTMClassifier(
        LSTMConfig(vocab_size=len(vocabulary), dropout=0.0, embedding_dropout=0.1, word_dropout=0.0, **shape)
    )


def weights(network: LSTMClassifier) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in network.state_dict().items()}


def test_the_language_model_learns_the_next_word_in_both_directions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretraining, "CHECKPOINT_STEPS", 5)
    vocabulary, texts = encoded_reviews()
    network = small_network(vocabulary)
    model = LanguageModel(network)
    ids, lengths = torch.from_numpy(texts.ids[:64].astype(np.int64)), torch.from_numpy(texts.lengths[:64])
    model.eval()
    with torch.no_grad():
        untrained = model(ids, lengths).item()
    assert untrained == pytest.approx(np.log(len(vocabulary)), rel=0.25)  # a guess among every word
    before = weights(network)
    lines: list[str] = []
    pretrain(network, texts, PLAN, CheckpointStore(None, job=""), lines.append)
    losses = [float(line.split("lm_loss=")[1].split()[0]) for line in lines if line.startswith("pretrain step=")]
    assert losses[-1] < 0.7 * losses[0] and losses[-1] < 0.7 * untrained  # the grammar, being learned
    changed = {name for name, value in weights(network).items() if not torch.equal(value, before[name])}
    assert {"embedding.weight", "forward_layers.0.weight_hh_l0", "backward_layers.0.weight_hh_l0"} <= changed
    assert not {name for name in changed if name.startswith("classifier.")}  # no label seen, nothing to learn there
    assert not network.training  # handed back ready to score or train


def test_an_interrupted_pretraining_resumes_to_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pretraining, "CHECKPOINT_STEPS", 5)
    vocabulary, texts = encoded_reviews()
    whole = weights(pretrain(small_network(vocabulary), texts, PLAN, CheckpointStore(None, job=""), lambda _: None))

    class Interrupted(Exception):
        pass

    def stop_after_the_second_checkpoint(line: str) -> None:
        if line.startswith("pretrain step=10 "):
            raise Interrupted

    store = CheckpointStore(tmp_path, job="pretraining")
    with pytest.raises(Interrupted):
        pretrain(small_network(vocabulary), texts, PLAN, store, stop_after_the_second_checkpoint)
    lines: list[str] = []
    resumed = weights(
        pretrain(small_network(vocabulary), texts, PLAN, CheckpointStore(tmp_path, "pretraining"), lines.append)
    )
    assert lines[0].startswith("resumed: pretraining continues after step 10 of ")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_a_deeper_lstm_is_refused_clearly() -> None:
    vocabulary, _ = encoded_reviews(20)
    network = small_network(vocabulary)
    deeper = LSTMClassifier(LSTMConfig(**{**network.config.to_json(), "layers": 2}))
    with pytest.raises(ValueError, match="one LSTM layer"):
        LanguageModel(deeper)


def test_training_starts_the_lstm_from_its_pretraining() -> None:
    train, validation, unlabeled = made_up(240, 1), made_up(80, 2), made_up(120, 3)
    lines: list[str] = []
    hp = parse_hyperparameters([*SMALL, "--model", "lstm", "--pretrain_epochs", "1"])
    result = fit(hp, train, validation, unlabeled, report=lines.append)
    assert "pretrain" in result.timings
    last = [line.split() for line in lines if line.startswith("pretrain step=")][-1]
    assert last[1] == f"step={last[3]}"  # every step of the plan ran
    assert result.validation["lstm"] >= 0.9


def test_a_job_that_changes_only_how_labels_are_learned_reuses_the_pretraining(tmp_path: Path) -> None:
    train, validation, unlabeled = made_up(240, 1), made_up(80, 2), made_up(120, 3)
    small = [*SMALL, "--model", "lstm", "--pretrain_epochs", "1"]

    def run(*changes: str) -> list[str]:
        hp = parse_hyperparameters([*small, *changes])
        store = CheckpointStore(tmp_path, job_fingerprint(hp, train, validation, unlabeled))
        lines: list[str] = []
        fit(hp, train, validation, unlabeled, store, report=lines.append)
        return lines

    first = run()
    steps = [line for line in first if line.startswith("pretrain step=")]
    assert steps and not any(line.startswith("pretrained:") for line in first)
    assert "resumed: word vectors (checkpoint)" not in first
    total = steps[-1].split()[3]
    reused = run("--learning_rate", "0.005", "--dropout", "0.2")  # another job: its lstm stage starts afresh
    assert f"pretrained: {total} steps finished earlier, reused from the checkpoint folder" in reused
    assert not any(line.startswith("pretrain step=") for line in reused)
    assert "resumed: word vectors (checkpoint)" in reused  # the vectors pretraining started from, too
    retrained = run("--pretrain_learning_rate", "0.002")  # what pretraining reads changed: it runs again
    assert [line for line in retrained if line.startswith("pretrain step=")]
    assert not any(line.startswith("pretrained:") for line in retrained)
    assert "resumed: word vectors (checkpoint)" in retrained  # what they read did not change
    revectored = run("--embedding_dim", "24")  # a new vectors' shape: both stages run again
    assert not any(line.startswith(("resumed: word vectors", "pretrained:")) for line in revectored)
