"""How a setting is declared: its default, what it does and its limits, written once beside the code it tunes.

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
