"""Entry points' log lines follow the process's stdout/stderr as they are when a line is written."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from sentiment.cli.logs import log_lines_to


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back as they were (log_lines_to replaces them)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_log_lines_go_to_the_stream_of_the_moment_not_one_closed_since(
    name: str, root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, name, first)
    log_lines_to(name)  # type: ignore[arg-type]
    logging.getLogger("sentiment.test").info("one")
    monkeypatch.setattr(sys, name, second)  # what a test runner does after capturing one test's output
    first_text = first.getvalue()
    first.close()
    logging.getLogger("sentiment.test").info("two")
    logging.getLogger("sentiment.test").debug("not at INFO")
    assert first_text == "one\n"
    assert second.getvalue() == "two\n"


def test_log_lines_replace_the_root_handlers_so_lines_are_not_doubled(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    log_lines_to("stdout")
    log_lines_to("stdout")
    logging.getLogger("sentiment.test").warning("once")
    assert stream.getvalue() == "once\n"
