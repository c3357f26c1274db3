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


def test_the_bundled_card_holds_the_traffic_figures_of_its_validation_split() -> None:
    card = json.loads((BUNDLED_MODEL / "card.json").read_text())
    traffic = card["traffic"]  # added by `sentiment-card` from the channels it was trained on, not retrained
    assert traffic["source"] == "validation" and traffic["sha256"] == card["data"]["validation"]["sha256"]
    assert traffic["reviews"] == 2_500 and traffic["uncertain_band"] == [0.4, 0.6]
    assert 150 < traffic["words_per_review"]["quantiles"]["0.5"] < 250  # IMDb reviews: about 230 words on average
    assert 0.45 < traffic["positive_share"] < 0.55 and traffic["uncertain_share"] < 0.1
