"""How a setting is declared (its default, what it does and its limits, written once beside the code it
tunes) and how a yes/no setting is read wherever it comes from.

Each model family declares its settings as a frozen dataclass of `setting(...)` fields (see
`sentiment.models`); `sentiment.hyperparameters` gathers them for SageMaker's flat namespace and
checks every value against the limits declared here.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field with its default, a line of help, and the range its value must lie in."""
    metadata: dict[str, Any] = {"help": help}
    if low is not None:
        metadata["low"] = low
    if high is not None:
        metadata["high"] = high
    return field(default=default, metadata=metadata)


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_flag(text: str) -> bool | None:
    """True or False for the words people use for them (any case, spaces around), None for anything else.

    The one reading of yes/no for hyperparameters, environment variables and request options alike.
    """
    word = text.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
