"""sentiment.report: one self-contained HTML page with its plots, every piece of text escaped."""

from __future__ import annotations

import re
import xml.dom.minidom

import numpy as np

from sentiment.evaluation import evaluate
from sentiment.report import render_report


def page() -> str:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, 300), 0, 1)
    history = [
        {"epoch": 1, "train_loss": 0.6, "val_loss": 0.5, "val_acc": 0.8},
        {"epoch": 2, "train_loss": 0.4, "val_loss": 0.45, "val_acc": 0.85},
    ]
    return render_report("Test <evaluation>", evaluate(labels, scores), history, {"model": "<script>x</script>"})


def test_the_page_holds_the_metrics_and_its_plots() -> None:
    html = page()
    assert html.lower().startswith("<!doctype html>")
    assert "Accuracy" in html and "ROC-AUC" in html and "Expected calibration error" in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.DOTALL)
    assert len(svgs) >= 3  # training curves, ROC, calibration
    for svg in svgs:
        xml.dom.minidom.parseString(svg)  # each plot is well-formed SVG


def test_the_page_runs_and_fetches_nothing_and_escapes_text() -> None:
    html = page()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "Test &lt;evaluation&gt;" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
