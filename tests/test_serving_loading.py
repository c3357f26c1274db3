"""sentiment.serving.loading: where the served model comes from, and the holder that loads it in the
background so /ping can answer 503 until it is ready."""

from __future__ import annotations

import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from sentiment.artifacts import BUNDLED_MODEL, MANIFEST, save_model
from sentiment.contract import ServingSettings, SettingsError
from sentiment.predictor import Predictor
from sentiment.serving.errors import ModelNotReady
from sentiment.serving.loading import ModelHolder, model_fn, model_source


def settings(model_dir: Path, bundled: bool = False) -> ServingSettings:
    return replace(ServingSettings.from_environment({}), model_dir=model_dir, use_bundled_model=bundled)


def test_the_model_source_is_a_folder_a_tarball_or_the_bundled_model(tmp_path: Path, small_ensemble: Predictor) -> None:
    folder = tmp_path / "model"
    save_model(small_ensemble, folder)
    assert model_source(settings(folder)) == folder
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as archive:
        for path in folder.iterdir():
            archive.add(path, arcname=path.name)
    assert model_source(settings(packed)) == packed / "model.tar.gz"
    assert model_source(settings(tmp_path / "nowhere", bundled=True)) == BUNDLED_MODEL
    with pytest.raises(SettingsError, match=f"neither {MANIFEST} nor model.tar.gz.*USE_BUNDLED_MODEL=1"):
        model_source(settings(tmp_path / "empty"))


def test_model_fn_loads_and_sets_the_precision(tmp_path: Path, small_ensemble: Predictor) -> None:
    save_model(small_ensemble, tmp_path / "model")
    predictor = model_fn(tmp_path / "model", "float32")
    assert predictor.precision == "float32" and predictor.version == model_fn(tmp_path / "model").version


def test_the_holder_waits_for_the_model_and_reports_a_failed_load(small_ensemble: Predictor) -> None:
    release = threading.Event()
    holder = ModelHolder(lambda: release.wait(10) and small_ensemble)  # type: ignore[arg-type, return-value]
    with pytest.raises(ModelNotReady, match="still loading"):
        holder.get()
    threading.Timer(0.2, release.set).start()
    assert holder.get(wait=10) is small_ensemble and holder.wait(1)

    def broken() -> Predictor:
        raise OSError("disk gone at /secret/path")

    failed = ModelHolder(broken)
    assert failed.wait(10)
    with pytest.raises(ModelNotReady, match="could not be loaded; the server log says why") as error:
        failed.get()
    assert "/secret/path" not in str(error.value)
