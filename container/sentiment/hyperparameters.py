"""Training hyperparameters: the run's own settings and each model family's, one parser for flags and SageMaker.

SageMaker stores hyperparameters as strings (`{"epochs": "10"}`) and its training toolkit passes them
to the program as flags (`--epochs 10`); people pass the same flags by hand. Both go through
`parse_hyperparameters`, so "10", 10 and `--epochs 10` mean the same, and an unknown name or a bad
value is refused with a message that says which and why, before any work starts.

The names are one flat namespace, as SageMaker's are; each belongs to the run (`Hyperparameters`'
own fields) or to one family's settings, declared with its default and limits in that family's
module (`sentiment.models`): `--hidden_dim` is `hp.lstm.hidden_dim`, `--l2` is `hp.linear.l2`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_origin

from sentiment.models import FAMILIES
from sentiment.models.ensemble import EnsembleSettings
from sentiment.models.linear import LinearSettings
from sentiment.models.lstm import LSTMSettings
from sentiment.settings import parse_flag, setting

ModelFamily = Literal["lstm", "linear", "ensemble"]
Preset = Literal["default", "reference"]


class HyperparameterError(ValueError):
    """A hyperparameter that is unknown or has a value it cannot take."""


@dataclass(frozen=True)
class Hyperparameters:
    """Everything a training run can be told. Defaults are the README's best configuration."""

    model: ModelFamily = setting("ensemble", "lstm, linear, or ensemble (both, weights fit on validation)")
    preset: Preset = setting("default", "reference: the tutorial's LSTM; its settings override the defaults below")
    seed: int = setting(1, "seeds weights, shuffling and dropout: the same seed gives the same model")
    validation_fraction: float = setting(
        0.1, "share of train held out when no validation channel is given", low=0.01, high=0.5
    )

    # Text to ids, shared by the families.
    tokenizer: Literal["default", "seed"] = setting("default", "default, or seed (the tutorial's stemmed tokens)")
    vocab_size: int = setting(40_000, "words kept, with ids 0 (padding) and 1 (unknown)", low=10, high=500_000)
    min_count: int = setting(2, "a word must occur this often in train to get an id", low=1)
    max_length: int = setting(400, "tokens kept per review in training", low=8)
    # Chosen on validation (bundled ensemble, 2,500 reviews): 92.28 % at 200 against 92.20 % at 400, and
    # a third less LSTM work per review; 160 and below lose accuracy.
    scoring_length: int = setting(
        200, "tokens the LSTM reads per review when scoring, at most max_length (0: max_length)", low=0
    )
    truncation: Literal["head", "tail", "head_tail"] = setting("head_tail", "which tokens a long review keeps")
    short_texts: int = setting(
        0,
        "built short reviews (negation, contrast, scores: sentiment.data.short_texts) both families also train on",
        low=0,
        high=200_000,
    )
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "auto: CUDA (mixed precision) when present")

    # Each family's own settings (defaults and limits in its module).
    lstm: LSTMSettings = field(default_factory=LSTMSettings)
    linear: LinearSettings = field(default_factory=LinearSettings)
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)

    def flat(self) -> dict[str, Any]:
        """Every setting under its SageMaker name, in `SETTINGS` order (as the model card records them)."""
        return {name: getattr(self if group is None else getattr(self, group), name) for name, group, _ in SETTINGS}


assert set(FAMILIES) == set(get_args(ModelFamily)), "every family listed in sentiment.models can be asked for"

# Where each flat name lives: (name, the family group holding it or None for the run's own, its field).
_GROUPS: tuple[tuple[str | None, type], ...] = (
    (None, Hyperparameters),
    ("lstm", LSTMSettings),
    ("linear", LinearSettings),
    ("ensemble", EnsembleSettings),
)
SETTINGS: tuple[tuple[str, str | None, dataclasses.Field[Any]], ...] = tuple(
    (spec.name, group, spec) for group, holder in _GROUPS for spec in fields(holder) if "help" in spec.metadata
)
NAMES = tuple(name for name, _, _ in SETTINGS)
assert len(set(NAMES)) == len(NAMES), "hyperparameter names are one flat namespace"


# The tutorial's LSTM (Udacity's SageMaker deployment project), as its notebook trained it.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "reference": {
        "model": "lstm",
        "tokenizer": "seed",
        "vocab_size": 5000,
        "min_count": 1,
        "max_length": 500,
        "scoring_length": 0,
        "truncation": "head",
        "embedding_dim": 32,
        "hidden_dim": 200,
        "layers": 1,
        "bidirectional": False,
        "pooling": "last",
        "dropout": 0.0,
        "embedding_dropout": 0.0,
        "word_dropout": 0.0,
        "pretrained_vectors": False,
        "batch_size": 512,
        "epochs": 10,
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "schedule": "constant",
        "grad_clip": 0.0,
        "patience": 0,
        "shuffle_each_epoch": False,
    },
}


def parse_hyperparameters(args: Sequence[str] = (), strings: Mapping[str, Any] | None = None) -> Hyperparameters:
    """Hyperparameters from SageMaker's `hyperparameters.json` mapping and/or flags (flags win).

    A preset fills every setting it names; values given explicitly (in either form) override it.
    """
    given = {**_from_mapping(strings or {}), **_from_flags(args)}
    preset = given.get("preset", "default")
    return hyperparameters_of({**PRESETS[preset], **given})


def hyperparameters_of(values: Mapping[str, Any]) -> Hyperparameters:
    """Hyperparameters from flat names and already converted values; the rest keep their defaults."""
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise HyperparameterError(f"unknown hyperparameter {unknown[0]!r}; known: {', '.join(NAMES)}")
    groups: dict[str | None, dict[str, Any]] = {}
    for name, group, _ in SETTINGS:
        if name in values:
            groups.setdefault(group, {})[name] = values[name]
    families = {group: holder(**groups.get(group, {})) for group, holder in _GROUPS if group is not None}
    return Hyperparameters(**groups.get(None, {}), **families)


def describe() -> str:
    """One line per hyperparameter: name, default and help, for --help and the README."""
    return "\n".join(f"  {name:<20} {spec.default!s:<12} {spec.metadata['help']}" for name, _, spec in SETTINGS)


def _from_mapping(strings: Mapping[str, Any]) -> dict[str, Any]:
    # SageMaker's own keys (sagemaker_program, sagemaker_region, ...) are not ours to check.
    ours = {key: value for key, value in strings.items() if not str(key).startswith("sagemaker_")}
    return _from_flags([item for key, value in ours.items() for item in (f"--{key}", str(value))])


def _from_flags(args: Sequence[str]) -> dict[str, Any]:
    parser = _Parser(prog="train", add_help=False, allow_abbrev=False)
    for name, group, spec in SETTINGS:
        names = {f"--{name}", f"--{name.replace('_', '-')}"}
        parser.add_argument(*sorted(names), dest=name, type=_converter(spec, group), default=argparse.SUPPRESS)
    namespace, unknown = parser.parse_known_args(list(args))
    if unknown:
        flags = [item for item in unknown if item.startswith("-")] or unknown
        raise HyperparameterError(f"unknown hyperparameter {flags[0]!r}; known: {', '.join(NAMES)}")
    return vars(namespace)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise HyperparameterError(message.replace("argument ", "hyperparameter "))


def _converter(spec: dataclasses.Field[Any], group: str | None) -> Any:
    holder = dict(_GROUPS)[group]
    kind = typing.get_type_hints(holder)[spec.name]
    low, high = spec.metadata.get("low"), spec.metadata.get("high")

    def convert(text: str) -> Any:
        if get_origin(kind) is Literal:
            if text not in get_args(kind):
                raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(get_args(kind))}")
            return text
        if kind is bool:
            flag = parse_flag(text)
            if flag is None:
                raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
            return flag
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if not math.isfinite(value):  # float("nan") and float("inf") parse, and then fail every comparison
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is outside {low} to {high if high is not None else 'any'}")
        return value

    convert.__name__ = spec.name  # argparse names the converter in its messages
    return convert
