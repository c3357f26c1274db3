"""sentiment.hyperparameters: one parser for SageMaker's strings and for flags; presets; clear errors."""

from __future__ import annotations

import typing
from typing import Literal, get_origin

import pytest

from sentiment.hyperparameters import (
    NAMES,
    PRESETS,
    SETTINGS,
    HyperparameterError,
    Hyperparameters,
    describe,
    hyperparameters_of,
    parse_hyperparameters,
)
from sentiment.models.ensemble import EnsembleSettings
from sentiment.models.linear import LinearSettings
from sentiment.models.lstm import LSTMSettings


def test_no_input_gives_the_defaults() -> None:
    assert parse_hyperparameters() == Hyperparameters()


def test_sagemaker_strings_and_flags_mean_the_same() -> None:
    strings = {"epochs": "3", "bidirectional": "false", "learning_rate": "0.01", "model": "lstm"}
    flags = ["--epochs", "3", "--bidirectional", "False", "--learning-rate", "1e-2", "--model", "lstm"]
    assert parse_hyperparameters(strings=strings) == parse_hyperparameters(flags)
    hp = parse_hyperparameters(flags)
    assert (hp.lstm.epochs, hp.lstm.bidirectional, hp.lstm.learning_rate, hp.model) == (3, False, 0.01, "lstm")


def test_flags_override_the_file_and_sagemaker_keys_are_left_alone() -> None:
    hp = parse_hyperparameters(["--epochs", "2"], strings={"epochs": "9", "sagemaker_program": "train_sentiment.py"})
    assert hp.lstm.epochs == 2


def test_the_reference_preset_is_the_tutorials_lstm_and_explicit_values_win() -> None:
    hp = parse_hyperparameters(["--preset", "reference"])
    assert (hp.model, hp.tokenizer, hp.vocab_size, hp.max_length, hp.lstm.embedding_dim, hp.lstm.hidden_dim) == (
        "lstm", "seed", 5000, 500, 32, 200,
    )  # fmt: skip
    lstm = hp.lstm
    assert (lstm.pooling, lstm.bidirectional, lstm.batch_size, lstm.epochs, lstm.patience) == (
        "last",
        False,
        512,
        10,
        0,
    )
    assert parse_hyperparameters(strings={"preset": "reference", "epochs": "2"}).lstm.epochs == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epoch", "3"], "unknown hyperparameter '--epoch'"),  # no abbreviations
        (["--colour", "red"], "unknown hyperparameter '--colour'"),
        (["--epochs", "three"], "'three' is not a whole number"),
        (["--epochs", "0"], "0 is outside 1 to 200"),
        (["--dropout", "1.5"], "1.5 is outside 0.0 to 0.9"),
        (["--model", "xgboost"], "'xgboost' is not one of lstm, linear, ensemble"),
        (["--preset", "fast"], "'fast' is not one of default, reference"),
        (["--bidirectional", "maybe"], "'maybe' is not true or false"),
        (["--epochs"], "expected one argument"),
        (["--learning_rate", "nan"], "--learning_rate: 'nan' is not a finite number"),
        (["--l2", "NaN"], "--l2: 'NaN' is not a finite number"),
        (["--dropout", "nan"], "--dropout: 'nan' is not a finite number"),
        (["--grad_clip", "nan"], "--grad_clip: 'nan' is not a finite number"),
        (["--grad_clip", "inf"], "--grad_clip: 'inf' is not a finite number"),
        (["--epochs", "1e3"], "'1e3' is not a whole number"),
        (["--short_texts", "-1"], "-1 is outside 0 to 200000"),
        (["--short_texts", "500000"], "500000 is outside 0 to 200000"),
    ],
)
def test_bad_hyperparameters_are_refused_with_a_reason(flags: list[str], message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        parse_hyperparameters(flags)


def test_presets_only_name_real_settings_and_every_setting_is_described() -> None:
    for preset in PRESETS.values():
        assert set(preset) <= set(NAMES)
    assert all(name in describe() for name in NAMES)
    assert len(NAMES) == len(set(NAMES)) == len(Hyperparameters().flat())


def test_every_setting_has_a_type_the_parser_converts_and_its_family_holds_it() -> None:
    for name, group, spec in SETTINGS:
        holder = type(Hyperparameters()) if group is None else type(getattr(Hyperparameters(), group))
        kind = typing.get_type_hints(holder)[spec.name]
        assert kind in (int, float, bool) or get_origin(kind) is Literal, name


def test_each_familys_defaults_are_written_once_in_its_module() -> None:
    hp = parse_hyperparameters(["--hidden_dim", "64", "--l2", "0.5", "--pseudo_labels", "false"])
    assert hp.lstm == LSTMSettings(hidden_dim=64) and hp.linear == LinearSettings(l2=0.5)
    assert hp.ensemble == EnsembleSettings(pseudo_labels=False)
    assert hp.flat()["hidden_dim"] == 64 and hp.flat()["seed"] == 1
    assert hyperparameters_of(hp.flat()) == hp
    with pytest.raises(HyperparameterError, match="unknown hyperparameter 'colour'"):
        hyperparameters_of({"colour": "red"})
