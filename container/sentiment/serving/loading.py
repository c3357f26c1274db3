"""The served model: where it comes from (`model_source`), loading it (`model_fn`), and the one
accessor a worker reads it through (`ModelHolder`), which loads in the background so `/ping` can
answer 503 until the model is ready."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sentiment.artifacts import BUNDLED_MODEL, MANIFEST, load_model
from sentiment.contract import ServingSettings, SettingsError
from sentiment.predictor import Predictor
from sentiment.serving.errors import ModelNotReady

log = logging.getLogger(__name__)

TARBALL = "model.tar.gz"


def model_source(settings: ServingSettings) -> Path:
    """The model folder or tarball to serve; a clear error when there is none."""
    if settings.use_bundled_model:
        return BUNDLED_MODEL
    directory = settings.model_dir
    if (directory / MANIFEST).is_file():
        return directory
    if (directory / TARBALL).is_file():
        return directory / TARBALL
    if directory.is_file():
        return directory
    raise SettingsError(
        f"no model in {directory} (neither {MANIFEST} nor {TARBALL}): mount a trained model there, "
        "point SM_MODEL_DIR at one, or set USE_BUNDLED_MODEL=1 to serve the bundled default model"
    )


def model_fn(source: Path, precision: str = "auto") -> Predictor:
    """SageMaker's model_fn: the model at `source` (checked against its manifest, never unpickled)."""
    predictor = load_model(source)
    chosen = predictor.use_precision(precision)  # type: ignore[arg-type]
    log.info("model %s (%s) loaded from %s, scoring in %s", predictor.version, predictor.family, source, chosen)
    return predictor


class ModelHolder:
    """The worker's model, loaded by `load` in a background thread."""

    def __init__(self, load: Callable[[], Predictor]) -> None:
        self._predictor: Predictor | None = None
        self._error: str | None = None
        self._loaded = threading.Event()
        self._thread = threading.Thread(target=self._load, args=(load,), name="model-loader", daemon=True)
        self._thread.start()

    def _load(self, load: Callable[[], Predictor]) -> None:
        try:
            self._predictor = load()
        except Exception as error:  # reported by /ping and every request, not lost in a thread
            log.exception("loading the model failed")
            self._error = f"{type(error).__name__}: {error}"
        finally:
            self._loaded.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading has finished (or failed); True when it has."""
        return self._loaded.wait(timeout)

    def get(self, wait: float = 0.0) -> Predictor:
        """The model, waiting up to `wait` seconds for it to load; ModelNotReady saying why there is none."""
        if self._predictor is None and wait > 0:
            self._loaded.wait(wait)
        if self._predictor is not None:
            return self._predictor
        if self._error is not None:
            raise ModelNotReady("the model could not be loaded; the server log says why")
        raise ModelNotReady("the model is still loading; retry shortly")
