"""SageMaker's container contract: paths under /opt/ml and the environment variables that move them.

Training (`train`):

| variable                | default                          | meaning                                  |
| ----------------------- | -------------------------------- | ---------------------------------------- |
| SAGEMAKER_BASE_DIR      | /opt/ml                          | root of every path below (local runs)    |
| SM_INPUT_CONFIG_DIR     | <base>/input/config              | hyperparameters.json and friends         |
| SM_CHANNEL_<NAME>       | <base>/input/data/<name>         | one folder per training channel          |
| SM_MODEL_DIR            | <base>/model                     | the model; SageMaker packs model.tar.gz  |
| SM_OUTPUT_DIR           | <base>/output                    | `failure` (the reason a job failed)      |
| SM_OUTPUT_DATA_DIR      | <base>/output/data               | other outputs (the evaluation report)    |
| SM_CHECKPOINT_DIR       | <base>/checkpoints               | checkpoints (SageMaker syncs them to S3) |
| SENTIMENT_CACHE_DIR     | /tmp/sentiment-cache             | columnar copies of aclImdb channels      |
| MASTER_ADDR             | the first host                   | where ranks meet (torch's name; local    |
|                         |                                  | runs of several hosts on one machine)    |
| MASTER_PORT             | 29500                            | the master's port for torch.distributed  |

Several instances (InstanceCount > 1): `resourceconfig.json` names the hosts (`algo-1`, `algo-2`, ...,
sorted; the first is the master), the current host and the network interface, and
`inputdataconfig.json` each channel's S3DistributionType (`FullyReplicated`, the default, or
`ShardedByS3Key`); `Cluster` and `channel_distributions` read them.

Serving (`serve`):

| variable                  | default          | meaning                                               |
| ------------------------- | ---------------- | ----------------------------------------------------- |
| SM_MODEL_DIR              | <base>/model     | the model: a model folder or one holding model.tar.gz |
| USE_BUNDLED_MODEL         | 0                | 1: serve the bundled default model instead            |
| SAGEMAKER_BIND_TO_PORT    | 8080             | the port                                              |
| SENTIMENT_BIND_HOST       | 0.0.0.0          | the address (127.0.0.1 keeps a local run private)     |
| MODEL_SERVER_WORKERS      | one per CPU core | gunicorn worker processes, each with its own model    |
| MODEL_SERVER_THREADS      | 8                | request threads per worker (their reviews are batched) |
| MODEL_SERVER_TIMEOUT      | 60               | seconds before a stuck request's worker is restarted  |
| SENTIMENT_MAX_BATCH       | 64               | most reviews in one model call; 1 turns batching off  |
| SENTIMENT_MAX_WAIT_MS     | 5                | how long a lone request waits for others to join it   |
| SENTIMENT_PRECISION       | auto             | the LSTM's arithmetic: float32, bfloat16, or auto     |
|                           |                  | (bfloat16 where the CPU has it natively, else         |
|                           |                  | float32); proven on a probe review at load, and an    |
|                           |                  | impossible bfloat16 stops `serve` with the reason     |
| SENTIMENT_LOG_REVIEWS     | 0                | 1: log review text (never by default)                 |
| SENTIMENT_FRONT           | auto             | nginx in front of gunicorn (reads requests whole, with |
|                           |                  | deadlines): auto (where installed, as in the image),  |
|                           |                  | nginx (required), none (gunicorn alone on the port)   |
| SENTIMENT_MAX_RECORDS     | 100000           | most reviews in one request (413 beyond)              |
| SENTIMENT_MAX_TOKENS      | 2000000          | most words (tokens) in one request (413 beyond)       |
| SENTIMENT_MAX_EXPLAINED_TOKENS | 20000       | most words one request may have explained (413)       |
| SAGEMAKER_BATCH           | (unset)          | true: Batch Transform runs the container (SageMaker   |
|                           |                  | sets it): records split by line are answered line by  |
|                           |                  | line, text/plain too (see serving/codecs.py)          |
| SAGEMAKER_BATCH_STRATEGY  | MULTI_RECORD     | set by Batch Transform; SINGLE_RECORD: a text/plain   |
|                           |                  | body is one review, line breaks and all               |
| SAGEMAKER_MAX_PAYLOAD_IN_MB | 6              | set by Batch Transform: the largest body, 1-20 MB     |

The names follow the sagemaker-training toolkit's and SageMaker hosting's. Only the entry points
read this module; everything below them takes paths and settings as arguments.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sentiment.errors import SentimentError
from sentiment.files import read_json, write_bytes_atomic
from sentiment.settings import parse_flag

FAILURE_REASON_LIMIT = 1024  # SageMaker shows the first 1,024 characters as FailureReason


@dataclass(frozen=True)
class TrainingPaths:
    hyperparameters: Path
    channels: Path  # the folder holding one folder per channel
    channel_overrides: Mapping[str, Path]
    model: Path
    output: Path
    output_data: Path
    checkpoints: Path
    cache: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> TrainingPaths:
        base = Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        output = Path(environ.get("SM_OUTPUT_DIR", base / "output"))
        return cls(
            hyperparameters=Path(environ.get("SM_INPUT_CONFIG_DIR", base / "input" / "config"))
            / "hyperparameters.json",
            channels=base / "input" / "data",
            channel_overrides={
                name.removeprefix("SM_CHANNEL_").lower(): Path(value)
                for name, value in environ.items()
                if name.startswith("SM_CHANNEL_")
            },
            model=Path(environ.get("SM_MODEL_DIR", base / "model")),
            output=output,
            output_data=Path(environ.get("SM_OUTPUT_DATA_DIR", output / "data")),
            checkpoints=Path(environ.get("SM_CHECKPOINT_DIR", base / "checkpoints")),
            cache=Path(environ.get("SENTIMENT_CACHE_DIR", "/tmp/sentiment-cache")),
        )

    def channel(self, name: str) -> Path | None:
        """The folder of channel `name`, or None when the job has no such channel."""
        path = self.channel_overrides.get(name, self.channels / name)
        return path if path.is_dir() else None

    @property
    def resource_config(self) -> Path:
        return self.hyperparameters.parent / "resourceconfig.json"

    @property
    def input_data_config(self) -> Path:
        return self.hyperparameters.parent / "inputdataconfig.json"

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    def write_failure(self, reason: str) -> None:
        """Record why training failed, for DescribeTrainingJob's FailureReason."""
        write_bytes_atomic(self.failure, reason[:FAILURE_REASON_LIMIT].encode("utf-8", "replace"))


class ClusterError(SentimentError):
    """A resourceconfig.json or inputdataconfig.json that does not describe a usable job."""


DEFAULT_MASTER_PORT = 29500  # torchrun's default
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")  # S3DistributionType; SageMaker's default first


@dataclass(frozen=True)
class Cluster:
    """The training job's hosts as resourceconfig.json names them: sorted, the first one the master."""

    hosts: tuple[str, ...]
    current_host: str
    network_interface: str | None = None  # what the ranks talk over (SageMaker: eth0)
    master_address: str = ""  # where rank 0 listens: the first host unless MASTER_ADDR says otherwise
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def host_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @classmethod
    def from_files(cls, paths: TrainingPaths, environ: Mapping[str, str] = os.environ) -> Cluster:
        """The cluster of `paths.resource_config`, or this machine alone when there is none (a local run)."""
        path = paths.resource_config
        if not path.is_file():
            return cls(hosts=(socket.gethostname(),), current_host=socket.gethostname(), master_address="127.0.0.1")
        try:
            document = read_json(path)
        except ValueError as error:
            raise ClusterError(str(error)) from None
        hosts = document.get("hosts") if isinstance(document, dict) else None
        current = document.get("current_host") if isinstance(document, dict) else None
        if not isinstance(hosts, list) or not hosts or not all(isinstance(host, str) and host for host in hosts):
            raise ClusterError(f"{path}: 'hosts' must be a non-empty list of host names, got {hosts!r}")
        if len(set(hosts)) != len(hosts):
            raise ClusterError(f"{path}: 'hosts' names a host twice: {hosts}")
        if current not in hosts:
            raise ClusterError(f"{path}: 'current_host' {current!r} is not one of the hosts {hosts}")
        interface = document.get("network_interface_name")
        if interface is not None and not (isinstance(interface, str) and interface):
            raise ClusterError(f"{path}: 'network_interface_name' must be an interface name, got {interface!r}")
        ordered = tuple(sorted(hosts))  # SageMaker's toolkit sorts them too: every host agrees on the master
        return cls(
            hosts=ordered,
            current_host=current,
            network_interface=interface,
            master_address=environ.get("MASTER_ADDR", "").strip() or ordered[0],
            master_port=_integer(environ, "MASTER_PORT", DEFAULT_MASTER_PORT, 1, 65535),
        )


def channel_distributions(path: Path) -> dict[str, str]:
    """Each channel's S3DistributionType in inputdataconfig.json (FullyReplicated where unsaid); {} without it."""
    if not path.is_file():
        return {}
    try:
        document = read_json(path)
    except ValueError as error:
        raise ClusterError(str(error)) from None
    if not isinstance(document, dict):
        raise ClusterError(f"{path}: expected a JSON object of channel: settings")
    distributions = {}
    for name, settings in document.items():
        value = settings.get("S3DistributionType", DISTRIBUTIONS[0]) if isinstance(settings, dict) else None
        if value not in DISTRIBUTIONS:
            raise ClusterError(
                f"{path}: channel {name!r}: S3DistributionType must be one of {', '.join(DISTRIBUTIONS)}, got {value!r}"
            )
        distributions[str(name)] = value
    return distributions


# What the training job prints (`epoch=3 train_loss=0.2345 val_loss=0.2601 val_acc=0.9061 ...`), as
# the regular expressions a SageMaker training job's MetricDefinitions use to chart it.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"epoch=\d+ train_loss=([0-9.]+)"},
    {"Name": "validation:loss", "Regex": r"epoch=\d+ .*val_loss=([0-9.]+)"},
    {"Name": "validation:accuracy", "Regex": r"epoch=\d+ .*val_acc=([0-9.]+)"},
    {"Name": "validation:ensemble_accuracy", "Regex": r"val_acc_ensemble=([0-9.]+)"},
    {"Name": "test:accuracy", "Regex": r"test_acc=([0-9.]+)"},
    {"Name": "test:roc_auc", "Regex": r"test_auc=([0-9.]+)"},
]


MAX_PAYLOAD_MB = 6  # SageMaker real-time endpoints refuse larger bodies; batch transform's default too
# Request threads per worker. A request passes from gunicorn's main thread to a pool thread, to the batcher
# and back, each taking the GIL in turn, and the more threads wait for it the dearer each hand-off: under 64
# clients 8 threads served 1.12x the reviews of 16 on bfloat16 and the same on float32, with fewer slow
# stretches, though in smaller batches (README, Serving).
REQUEST_THREADS = 8
RUN_FOLDER_VARIABLE = "SENTIMENT_RUN_FOLDER"  # `serve` sets it for its workers: the run's own temporary folder
MAX_BATCH_PAYLOAD_MB = 20  # the largest MaxPayloadInMB served (Batch Transform allows 100; the work limits bind first)


class SettingsError(SentimentError):
    """An environment variable of the serving contract with a value that cannot be used."""


@dataclass(frozen=True)
class ServingSettings:
    model_dir: Path
    use_bundled_model: bool
    host: str
    port: int
    workers: int
    threads: int
    timeout: int
    max_batch: int
    max_wait_ms: float
    log_reviews: bool
    precision: str = "auto"
    max_payload_bytes: int = MAX_PAYLOAD_MB * 1024 * 1024
    batch_transform: bool = False
    batch_strategy: str = "MULTI_RECORD"
    # The work one request may ask for, bounded by what it costs: at most a few seconds of one core and a few
    # hundred MB (benchmarks/hostile.py measures both), well inside SageMaker's 60 s per request.
    max_records: int = 100_000
    max_tokens: int = 2_000_000
    max_explained_tokens: int = 20_000
    front: str = "auto"

    @property
    def plain_text_lines(self) -> bool:
        """Whether a text/plain body holds one review per line: Batch Transform's multi-record requests."""
        return self.batch_transform and self.batch_strategy == "MULTI_RECORD"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServingSettings:
        base = Path(environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        return cls(
            model_dir=Path(environ.get("SM_MODEL_DIR", base / "model")),
            use_bundled_model=_flag(environ, "USE_BUNDLED_MODEL"),
            host=environ.get("SENTIMENT_BIND_HOST", "0.0.0.0"),
            port=_integer(environ, "SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535),
            workers=_integer(environ, "MODEL_SERVER_WORKERS", os.cpu_count() or 1, 1, 64),
            threads=_integer(environ, "MODEL_SERVER_THREADS", REQUEST_THREADS, 1, 256),
            timeout=_integer(environ, "MODEL_SERVER_TIMEOUT", 60, 1, 3600),
            max_batch=_integer(environ, "SENTIMENT_MAX_BATCH", 64, 1, 4096),
            max_wait_ms=_integer(environ, "SENTIMENT_MAX_WAIT_MS", 5, 0, 1000),
            log_reviews=_flag(environ, "SENTIMENT_LOG_REVIEWS"),
            precision=_choice(environ, "SENTIMENT_PRECISION", ("auto", "float32", "bfloat16")),
            max_payload_bytes=_integer(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", MAX_PAYLOAD_MB, 1, MAX_BATCH_PAYLOAD_MB)
            * 1024
            * 1024,
            batch_transform=_flag(environ, "SAGEMAKER_BATCH"),
            batch_strategy=_batch_strategy(environ),
            max_records=_integer(environ, "SENTIMENT_MAX_RECORDS", 100_000, 1, 1_000_000),
            max_tokens=_integer(environ, "SENTIMENT_MAX_TOKENS", 2_000_000, 1, 20_000_000),
            max_explained_tokens=_integer(environ, "SENTIMENT_MAX_EXPLAINED_TOKENS", 20_000, 1, 1_000_000),
            front=_choice(environ, "SENTIMENT_FRONT", ("auto", "nginx", "none")),
        )


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _batch_strategy(environ: Mapping[str, str]) -> str:
    """SAGEMAKER_BATCH_STRATEGY as SageMaker spells it (MULTI_RECORD), also in the API's spelling (MultiRecord)."""
    raw = environ.get("SAGEMAKER_BATCH_STRATEGY", "").strip()
    strategy = {"": "MULTI_RECORD", "multirecord": "MULTI_RECORD", "singlerecord": "SINGLE_RECORD"}.get(
        raw.lower().replace("_", "")
    )
    if strategy is None:
        raise SettingsError(f"SAGEMAKER_BATCH_STRATEGY={raw!r} must be MULTI_RECORD or SINGLE_RECORD")
    return strategy


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip()
    flag = parse_flag(raw) if raw else False  # set but empty: off, as unset
    if flag is None:
        raise SettingsError(f"{name}={raw!r} must be 1/true or 0/false")
    return flag
