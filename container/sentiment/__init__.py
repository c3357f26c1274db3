"""IMDb movie-review sentiment: data, text pipeline, models, training and serving for SageMaker.

    >>> import sentiment
    >>> model = sentiment.load_model()          # the bundled default model
    >>> model.predict(["A wonderful, moving film."])
    [Prediction(label='positive', score=0.98...)]

Importing the package is cheap (torch loads on first use), so `deploy/` scripts can use
`sentiment.data` without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from sentiment.predictor import Predictor


def load_model(path: Path | str | None = None) -> Predictor:
    """A trained model from a folder or model.tar.gz; with no path, the bundled default model."""
    from sentiment.artifacts import load_model as load

    return load(path)
