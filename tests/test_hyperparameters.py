"""sentiment.hyperparameters: one parser for SageMaker's strings and for flags; presets; clear errors."""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Literal, get_origin

import pytest

from sentiment.hyperparameters import (
    PRESETS,
    HyperparameterError,
    Hyperparameters,
    describe,
    parse_hyperparameters,
)


def test_no_input_gives_the_defaults() -> None:
    assert parse_hyperparameters() == Hyperparameters()


def test_sagemaker_strings_and_flags_mean_the_same() -> None:
    strings = {"epochs": "3", "bidirectional": "false", "learning_rate": "0.01", "model": "lstm"}
    flags = ["--epochs", "3", "--bidirectional", "False", "--learning-rate", "1e-2", "--model", "lstm"]
    assert parse_hyperparameters(strings=strings) == parse_hyperparameters(flags)
    hp = parse_hyperparameters(flags)
    assert (hp.epochs, hp.bidirectional, hp.learning_rate, hp.model) == (3, False, 0.01, "lstm")


def test_flags_override_the_file_and_sagemaker_keys_are_left_alone() -> None:
    hp = parse_hyperparameters(["--epochs", "2"], strings={"epochs": "9", "sagemaker_program": "train_sentiment.py"})
    assert hp.epochs == 2


def test_the_reference_preset_is_the_tutorials_lstm_and_explicit_values_win() -> None:
    hp = parse_hyperparameters(["--preset", "reference"])
    assert (hp.model, hp.tokenizer, hp.vocab_size, hp.max_length, hp.embedding_dim, hp.hidden_dim) == (
        "lstm", "seed", 5000, 500, 32, 200,
    )  # fmt: skip
    assert (hp.pooling, hp.bidirectional, hp.batch_size, hp.epochs, hp.patience) == ("last", False, 512, 10, 0)
    assert parse_hyperparameters(strings={"preset": "reference", "epochs": "2"}).epochs == 2


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
    ],
)
def test_bad_hyperparameters_are_refused_with_a_reason(flags: list[str], message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        parse_hyperparameters(flags)


def test_presets_only_name_real_fields_and_every_field_is_described() -> None:
    names = {spec.name for spec in fields(Hyperparameters)}
    for preset in PRESETS.values():
        assert set(preset) <= names
    assert all(name in describe() for name in names)


def test_every_field_has_a_type_the_parser_converts() -> None:
    hints = typing.get_type_hints(Hyperparameters)
    for spec in fields(Hyperparameters):
        assert hints[spec.name] in (int, float, bool) or get_origin(hints[spec.name]) is Literal, spec.name
