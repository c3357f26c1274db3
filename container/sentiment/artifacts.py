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

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from sentiment.errors import SentimentError
from sentiment.files import atomic_writer, write_json_atomic
from sentiment.models import MEMBERS
from sentiment.models.ensemble import ensemble_document, load_ensemble
from sentiment.models.member import Encoding, LoadContext
from sentiment.predictor import Predictor
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
    documents: dict[str, dict[str, Any] | None] = dict.fromkeys(MEMBERS)  # every member: its part, or null
    for name, member in predictor.members.items():
        member_tensors, documents[name] = member.saved()
        tensors.update(member_tensors)
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
        **documents,
        "ensemble": ensemble_document(predictor.ensemble) if predictor.ensemble is not None else None,
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
        context = LoadContext(vocabulary, Encoding(**manifest["encoding"]), manifest["version"])
        members = {name: load(manifest[name], tensors, context) for name, load in MEMBERS.items() if manifest.get(name)}
        return Predictor(
            manifest["family"],
            manifest["tokenizer"],
            vocabulary,
            context.encoding,
            members,
            ensemble=load_ensemble(manifest["ensemble"]) if manifest.get("ensemble") else None,
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
