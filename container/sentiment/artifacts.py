"""Model artifacts: a `Predictor` to files and back, never unpickling, refusing anything altered.

A model folder (SageMaker's /opt/ml/model, packed by SageMaker as model.tar.gz) holds:

    model.json          format + version, model family, text pipeline, network configs, and the
                        sha256 of every other file below (checked on load)
    weights.safetensors LSTM parameters ("lstm.*") and the linear model's n-gram keys and coefficients
    vocabulary.json     tokens in id order with the tokenizer settings

`model.json` is written last, so a folder without it is an unfinished save. `load_model` accepts the
folder or the tarball (read in memory, nothing extracted) and with no path loads the bundled model.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from sentiment.errors import SentimentError
from sentiment.files import atomic_writer, write_json_atomic
from sentiment.model import LSTMClassifier, LSTMConfig
from sentiment.predictor import Encoding, EnsembleWeights, LinearScorer, Predictor
from sentiment.vocabulary import Vocabulary, VocabularyError

MODEL_FORMAT = "sentiment-model"
MODEL_FORMAT_VERSION = 3  # 2: the ensemble may carry short-text weights; 3: negation scopes in the linear model
READABLE_FORMAT_VERSIONS = (1, 2, 3)
MANIFEST = "model.json"
WEIGHTS = "weights.safetensors"
VOCABULARY = "vocabulary.json"
BUNDLED_MODEL = Path(__file__).resolve().parent / "bundled_model"
MAX_ARTIFACT_BYTES = 2 * 1024**3  # a tarball member larger than this is not ours


class ArtifactError(SentimentError):
    """A model folder or tarball that is missing, damaged, altered, or of another format."""


def save_model(predictor: Predictor, directory: Path, half: bool = False, extra: dict[str, Any] | None = None) -> None:
    """Write `predictor` into `directory` (created if needed); `half` stores weights as float16."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    if predictor.lstm is not None:
        for name, value in predictor.lstm.state_dict().items():
            tensors[f"lstm.{name}"] = value.detach().cpu().contiguous()
    if predictor.linear is not None:
        tensors["linear.keys"] = torch.from_numpy(predictor.linear.keys)
        tensors["linear.coefficients"] = torch.from_numpy(predictor.linear.coefficients)
    if half:
        tensors = {name: t.half() if t.is_floating_point() else t for name, t in tensors.items()}
    files = {
        WEIGHTS: save_tensors(tensors),
        VOCABULARY: _json_bytes(predictor.vocabulary.to_json()),
    }
    for name, data in files.items():
        with atomic_writer(directory / name) as handle:
            handle.write(data)
    manifest = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "family": predictor.family,
        "tokenizer": predictor.tokenizer_settings,
        "encoding": {"max_length": predictor.encoding.max_length, "truncation": predictor.encoding.truncation},
        "lstm": predictor.lstm.config.to_json() if predictor.lstm is not None else None,
        "linear": (
            {
                "bias": predictor.linear.bias,
                "max_n": predictor.linear.max_n,
                "negation_window": predictor.linear.negation_window,
            }
            if predictor.linear is not None
            else None
        ),
        "ensemble": vars(predictor.ensemble) if predictor.ensemble is not None else None,
        "weights_dtype": "float16" if half else "float32",
        "files": {name: _sha256(data) for name, data in files.items()},
        **(extra or {}),
    }
    write_json_atomic(directory / MANIFEST, manifest)


def load_model(path: Path | str | None = None) -> Predictor:
    """The model in a folder or `model.tar.gz`; with no path, the bundled default model."""
    path = Path(path) if path is not None else BUNDLED_MODEL
    return predictor_from_files(read_model_files(path), str(path))


def read_model_files(path: Path) -> dict[str, bytes]:
    """The bytes of the model's files, from a folder or a tarball (members read, never extracted)."""
    if path.is_dir():
        missing = [name for name in (MANIFEST, WEIGHTS, VOCABULARY) if not (path / name).is_file()]
        if missing:
            raise ArtifactError(f"{path}: not a model folder ({', '.join(missing)} missing)")
        return {name: (path / name).read_bytes() for name in (MANIFEST, WEIGHTS, VOCABULARY)}
    if path.is_file():
        return _read_tarball(path)
    raise ArtifactError(f"{path}: no such model folder or model.tar.gz")


def verify_model(path: Path) -> dict[str, Any]:
    """The manifest of the model at `path` once every file matches its checksum (no torch work)."""
    return checked_manifest(read_model_files(Path(path)), str(path))


def checked_manifest(files: dict[str, bytes], source: str) -> dict[str, Any]:
    manifest = _manifest(files, source)
    for name, expected in manifest["files"].items():
        if _sha256(files.get(name, b"")) != expected:
            raise ArtifactError(f"{source}: {name} does not match the checksum in {MANIFEST} (altered or damaged)")
    return manifest


def predictor_from_files(files: dict[str, bytes], source: str) -> Predictor:
    """Check every file against the manifest's checksums, then rebuild the predictor."""
    manifest = checked_manifest(files, source)
    try:
        tensors = {
            name: tensor.float() if tensor.is_floating_point() else tensor
            for name, tensor in load_tensors(files[WEIGHTS]).items()
        }
    except SafetensorError as error:
        raise ArtifactError(f"{source}: {WEIGHTS} is not a readable safetensors file ({error})") from None
    try:
        vocabulary = Vocabulary.from_json(
            _json(files[VOCABULARY], f"{source}: {VOCABULARY}"), f"{source}: {VOCABULARY}"
        )
        return Predictor(
            manifest["family"],
            manifest["tokenizer"],
            vocabulary,
            Encoding(**manifest["encoding"]),
            lstm=_lstm(manifest, tensors, len(vocabulary)),
            linear=_linear(manifest, tensors),
            ensemble=_ensemble(manifest["ensemble"]) if manifest.get("ensemble") else None,
            version=_sha256(files[MANIFEST])[:12],
        )
    except (KeyError, TypeError, ValueError, RuntimeError, VocabularyError) as error:
        raise ArtifactError(
            f"{source}: the model files do not fit together ({type(error).__name__}: {error})"
        ) from None


def _manifest(files: dict[str, bytes], source: str) -> dict[str, Any]:
    if MANIFEST not in files:
        raise ArtifactError(f"{source}: {MANIFEST} is missing: not a model (or an unfinished save)")
    manifest = _json(files[MANIFEST], f"{source}: {MANIFEST}")
    if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
        raise ArtifactError(f"{source}: {MANIFEST} does not describe a {MODEL_FORMAT}")
    if manifest.get("version") not in READABLE_FORMAT_VERSIONS:
        raise ArtifactError(
            f"{source}: model format version {manifest.get('version')!r}; "
            f"this code reads {', '.join(map(str, READABLE_FORMAT_VERSIONS))}"
        )
    if not isinstance(manifest.get("files"), dict) or set(manifest["files"]) != {WEIGHTS, VOCABULARY}:
        raise ArtifactError(f"{source}: {MANIFEST} must list the checksums of {WEIGHTS} and {VOCABULARY}")
    return manifest


def _ensemble(document: dict[str, Any]) -> EnsembleWeights:
    if "short_below" in document:  # JSON has no tuples
        bounds = document["short_below"]
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(bound, int) for bound in bounds)
            and 0 <= bounds[0] < bounds[1]
        ):
            raise ValueError(f"ensemble short_below must be two token counts, low < high, not {bounds!r}")
        document = {**document, "short_below": tuple(bounds)}
    return EnsembleWeights(**document)


def _lstm(manifest: dict[str, Any], tensors: dict[str, torch.Tensor], vocabulary_size: int) -> LSTMClassifier | None:
    if manifest.get("lstm") is None:
        return None
    config = LSTMConfig(**manifest["lstm"])
    if config.vocab_size != vocabulary_size:
        raise ValueError(f"the LSTM has {config.vocab_size} embeddings for {vocabulary_size} vocabulary entries")
    model = LSTMClassifier(config)
    weights = {name.removeprefix("lstm."): value for name, value in tensors.items() if name.startswith("lstm.")}
    model.load_state_dict(weights, strict=True)
    return model.eval()


def _linear(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> LinearScorer | None:
    if manifest.get("linear") is None:
        return None
    keys = tensors["linear.keys"].numpy()
    coefficients = tensors["linear.coefficients"].numpy().astype(np.float32)
    if keys.dtype != np.int64 or keys.shape != coefficients.shape or np.any(np.diff(keys) <= 0):
        raise ValueError("the linear model's keys must be sorted int64, one per coefficient")
    return LinearScorer(
        keys=keys,
        coefficients=coefficients,
        bias=float(manifest["linear"]["bias"]),
        max_n=int(manifest["linear"]["max_n"]),
        negation_window=_negation_window(manifest),
    )


def _negation_window(manifest: dict[str, Any]) -> int:
    """The linear model's negation window: 0 in models before format 3, which had none."""
    window = manifest["linear"].get("negation_window", 0) if manifest["version"] >= 3 else 0
    if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 50:
        raise ValueError(f"the linear model's negation_window must be a whole number from 0 to 50, not {window!r}")
    return window


def _read_tarball(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if name in (MANIFEST, WEIGHTS, VOCABULARY) and member.isfile():
                    if member.size > MAX_ARTIFACT_BYTES:
                        raise ArtifactError(f"{path}: {name} is {member.size:,} bytes, too large for a model file")
                    handle = archive.extractfile(member)
                    assert handle is not None
                    files[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArtifactError(f"{path}: not a readable model.tar.gz ({error})") from None
    return files


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{where}: not valid UTF-8 JSON ({error})") from None


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
