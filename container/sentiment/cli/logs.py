"""Where the entry points' log lines go: the process's stdout or stderr as it is when a line is written.

`logging.basicConfig(stream=sys.stdout)` binds the stream object current at the call. An entry point
called in-process (tests, `sentiment-bundle` running `sentiment-train`'s `main`) would then keep
writing to a stream that its caller has since replaced or closed, and every later log line fails."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO


class CurrentStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that looks up `sys.stdout` or `sys.stderr` each time it writes."""

    def __init__(self, name: Literal["stdout", "stderr"]) -> None:
        self._stream_name = name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value: TextIO) -> None:  # StreamHandler sets it; the lookup above always wins
        pass


def log_lines_to(name: Literal["stdout", "stderr"]) -> None:
    """INFO and up, as bare messages, to the current stdout or stderr; replaces the root's handlers."""
    handler = CurrentStreamHandler(name)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
