"""The bundled default model: it loads with no path, is small, and its card holds its test results."""

from __future__ import annotations

import json

from sentiment import load_model
from sentiment.artifacts import BUNDLED_MODEL

SIZE_LIMIT_MB = 25


def test_the_bundled_model_loads_and_judges_plain_reviews() -> None:
    model = load_model()
    predictions = model.predict(
        [
            "A wonderful film: moving, funny and beautifully acted. I loved every minute.",
            "Dreadful. Boring plot, wooden acting, a complete waste of two hours.",
            "I didn't like it at all.",
            "Great fun, I would happily watch it again.",
        ]
    )
    assert [p.label for p in predictions] == ["positive", "negative", "negative", "positive"]


def test_the_bundled_model_is_small_and_carries_its_card() -> None:
    size = sum(path.stat().st_size for path in BUNDLED_MODEL.iterdir()) / 1e6
    assert size <= SIZE_LIMIT_MB
    card = json.loads((BUNDLED_MODEL / "card.json").read_text())
    assert card["model"] == "ensemble" and card["test"]["reviews"] == 25_000
    assert card["data"]["train"]["reviews"] + card["data"]["validation"]["reviews"] == 25_000
    assert (BUNDLED_MODEL / "card.md").read_text().startswith("# Model card")
    assert json.loads((BUNDLED_MODEL / "model.json").read_text())["weights_dtype"] == "float16"
