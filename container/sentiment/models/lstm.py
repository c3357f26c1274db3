"""The LSTM family: its settings, the network, scoring in length-sorted chunks, each token's share of
a verdict (integrated gradients), and what it saves and loads. Torch only: no training loop, no I/O.

The network maps a batch of token ids to one logit per review (the log-odds of "positive"). Its
shape is saved as JSON beside the weights (`LSTMConfig`), so loading needs nothing but this module.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from sentiment.errors import SentimentError
from sentiment.models.lstm_tables import TABLED_FROM_REVIEWS, TabledLSTM
from sentiment.models.member import Encoding, LoadContext, Precision
from sentiment.settings import setting
from sentiment.text import tokenize
from sentiment.vocabulary import UNKNOWN_ID, EncodedBatch, Truncation, Vocabulary, kept_positions

INFERENCE_TOKENS_PER_BATCH = 32_768  # batches are cut by tokens, not reviews: long reviews come in fewer
INTEGRATION_STEPS = 16  # Riemann steps of integrated gradients, run as one batch
TENSOR_PREFIX = "lstm."  # its tensors' names in the model's weights file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LSTMSettings:
    """What the LSTM family is told: its shape (saved with the model) and how it is trained.

    Defaults are the README's best configuration, chosen on the validation split.
    """

    embedding_dim: int = setting(128, "word vector size", low=4, high=1024)
    hidden_dim: int = setting(128, "LSTM state size per direction", low=4, high=2048)
    layers: int = setting(1, "stacked LSTM layers", low=1, high=4)
    bidirectional: bool = setting(True, "read reviews in both directions")
    pooling: Literal["max_mean", "last"] = setting(
        "max_mean", "max_mean: pool over every real step; last: the last real step (tutorial)"
    )
    dropout: float = setting(0.4, "dropout before the classifier", low=0.0, high=0.9)
    embedding_dropout: float = setting(0.2, "dropout of whole word-vector dimensions", low=0.0, high=0.9)
    word_dropout: float = setting(0.0, "share of words replaced by the unknown word while training", low=0.0, high=0.5)
    pretrained_vectors: bool = setting(True, "start word vectors from PPMI-SVD vectors of train + unlabeled reviews")
    pretrain_epochs: float = setting(
        0.0,
        "passes of language-model pretraining over train + unlabeled reviews before the labels (0: none; "
        "about 24 min a pass on 2 cores; sentiment.pretraining)",
        low=0.0,
        high=50.0,
    )
    pretrain_learning_rate: float = setting(1e-3, "peak learning rate of the pretraining", low=1e-6, high=1.0)
    sentence_crops: int = setting(
        0,
        "windows of one or two sentences cut from each training review, labelled as their review, that the "
        "LSTM also trains on: short texts like those typed into the page (0: whole reviews only)",
        low=0,
        high=16,
    )
    sentence_sharpness: float = setting(
        1.0,
        "how far the sentences channel's soft scores are pushed from 0.5 before the LSTM learns them: each "
        "score's logit times this (1: as labelled)",
        low=0.25,
        high=8.0,
    )
    batch_size: int = setting(64, "reviews per step", low=1, high=8192)
    epochs: int = setting(6, "passes over train at most", low=1, high=200)
    learning_rate: float = setting(2e-3, "peak learning rate", low=1e-6, high=1.0)
    weight_decay: float = setting(0.0, "AdamW weight decay", low=0.0, high=1.0)
    schedule: Literal["one_cycle", "constant"] = setting("one_cycle", "learning-rate schedule")
    grad_clip: float = setting(1.0, "clip the gradient norm to this (0: no clipping)", low=0.0)
    patience: int = setting(2, "stop after this many epochs without a better validation accuracy (0: never)", low=0)
    shuffle_each_epoch: bool = setting(True, "reshuffle every epoch (false: one shuffle, as the tutorial)")


@dataclass(frozen=True)
class LSTMConfig:
    """The network's shape, as saved with its weights."""

    vocab_size: int
    embedding_dim: int
    hidden_dim: int
    layers: int
    bidirectional: bool
    pooling: Literal["max_mean", "last"]
    dropout: float
    embedding_dropout: float
    word_dropout: float

    @classmethod
    def of(cls, settings: LSTMSettings, vocab_size: int) -> LSTMConfig:
        """The shape `settings` ask for, over `vocab_size` word ids."""
        shape = {spec.name: getattr(settings, spec.name) for spec in fields(cls) if spec.name != "vocab_size"}
        return cls(vocab_size=vocab_size, **shape)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LSTMClassifier(nn.Module):
    """Embedding -> (Bi)LSTM -> pooled features -> one logit, where padding never reaches a real step.

    Batches are right-padded, so a forward LSTM reaches the padding only after a review's last
    token. The backward direction reads each review reversed *within its length* (padding stays
    at the end), so it too sees real tokens only; outputs at padded steps are masked out of the
    pooling. This keeps CPU training on oneDNN's fast LSTM kernels, which packed sequences leave
    (their backward pass costs time quadratic in review length there).

    `pooling="last"` reads each review's last real step (the tutorial's model); `"max_mean"`
    concatenates the max and the mean over all real steps, so a verdict can come from anywhere.
    """

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        # Dropout1d on (batch, dims, time) drops whole vector dimensions for a review ("spatial").
        self.embedding_dropout = nn.Dropout1d(config.embedding_dropout)
        directions = 2 if config.bidirectional else 1
        inputs = [config.embedding_dim] + [config.hidden_dim * directions] * (config.layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, config.hidden_dim, batch_first=True) for size in inputs)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(size, config.hidden_dim, batch_first=True) for size in (inputs if config.bidirectional else [])
        )
        pooled = config.hidden_dim * directions * (2 if config.pooling == "max_mean" else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(pooled, 1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch,) for `ids` (batch, time) padded with 0 after `lengths` real steps."""
        if self.training and self.config.word_dropout > 0:
            # Hide random words (as unknown) so no single word carries a review.
            real = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
            hidden_words = torch.rand(ids.shape, device=ids.device) < self.config.word_dropout
            ids = ids.masked_fill(hidden_words & real, UNKNOWN_ID)
        return self.from_embeddings(self.embedding(ids), lengths)

    def from_embeddings(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits for already embedded reviews (batch, time, embedding_dim); explanations start here."""
        lengths = lengths.to(embedded.device)
        steps = torch.arange(embedded.shape[1], device=embedded.device)[None, :]
        real = steps < lengths[:, None]
        # For each review, the step that mirrors each step within the review (padding maps to itself).
        mirror = torch.where(real, lengths[:, None] - 1 - steps, steps)
        hidden = self.embedding_dropout(embedded.transpose(1, 2)).transpose(1, 2)
        for layer, forward_lstm in enumerate(self.forward_layers):
            outputs = [forward_lstm(hidden)[0]]
            if self.config.bidirectional:
                reversed_input = gather_steps(hidden, mirror)
                outputs.append(gather_steps(self.backward_layers[layer](reversed_input)[0], mirror))
            hidden = torch.cat(outputs, dim=2)
        if self.config.pooling == "last":
            size = self.config.hidden_dim
            last = gather_steps(hidden[..., :size], (lengths - 1)[:, None].expand(-1, 1))[:, 0]
            # The backward direction ends at the first step.
            features = torch.cat([last, hidden[:, 0, size:]], dim=1) if self.config.bidirectional else last
        else:
            largest = hidden.masked_fill(~real[..., None], float("-inf")).amax(dim=1)
            mean = hidden.masked_fill(~real[..., None], 0.0).sum(dim=1) / lengths[:, None].to(hidden.dtype)
            features = torch.cat([largest, mean], dim=1)
        return self.classifier(self.dropout(features)).squeeze(-1)


def gather_steps(values: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """values[b, steps[b, t], :] for every b, t.

    Picks whole rows of the flattened (batch * time, dims) values: `gather` would need an index
    per element (an int64 tensor as large as the values) and is about 15x slower on CPU.
    """
    batch, count = steps.shape
    rows = steps + torch.arange(batch, device=steps.device)[:, None] * values.shape[1]
    return values.reshape(-1, values.shape[2]).index_select(0, rows.reshape(-1)).view(batch, count, values.shape[2])


# -- scoring and contributions ----------------------------------------------------------------------


def lstm_logits(
    model: LSTMClassifier,
    encoded: EncodedBatch,
    device: torch.device | None = None,
    bfloat16: bool = False,
    tables: TabledLSTM | None = None,
) -> np.ndarray:
    """The LSTM's logits for an encoded batch, run in length-sorted chunks (little padding).

    With `tables` (float32 on CPU only), chunks of at least TABLED_FROM_REVIEWS reviews are scored from
    looked-up gates. On CPU, chunks are spread over the calling thread's torch threads, one thread each:
    chunks side by side scale better than one chunk's kernel split over cores (1.15x on 2 cores).
    """
    device = device or next(model.parameters()).device
    logits = np.zeros(len(encoded.lengths), dtype=np.float64)
    chunks = length_sorted_chunks(encoded.lengths)
    threads = min(torch.get_num_threads(), len(chunks)) if device.type == "cpu" else 1

    def score(rows: np.ndarray) -> None:
        longest = int(encoded.lengths[rows[0]])
        ids = torch.from_numpy(encoded.ids[rows, :longest].astype(np.int64))
        lengths = torch.from_numpy(encoded.lengths[rows])
        # Both are per thread: each chunk's thread enters them.
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            if tables is not None and not bfloat16 and len(rows) >= TABLED_FROM_REVIEWS:
                logits[rows] = tables.logits(ids, lengths).numpy()
            else:
                logits[rows] = model(ids.to(device), lengths).float().cpu().numpy()

    was_training = model.training
    if was_training:  # eval() walks every submodule: about 0.1 ms, a fifth of scoring one short review
        model.eval()
    try:
        if threads > 1:
            with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                list(pool.map(score, chunks))
        else:
            for rows in chunks:
                score(rows)
    finally:
        if was_training:
            model.train()
    return logits


def length_sorted_chunks(lengths: np.ndarray) -> list[np.ndarray]:
    """The rows of each chunk, longest reviews first: each chunk's reviews padded to its longest hold at
    most INFERENCE_TOKENS_PER_BATCH tokens."""
    order = np.argsort(-lengths, kind="stable")
    chunks = []
    start = 0
    while start < len(order):
        size = max(1, INFERENCE_TOKENS_PER_BATCH // int(lengths[order[start]]))
        chunks.append(order[start : start + size])
        start += size
    return chunks


def lstm_contributions(
    model: LSTMClassifier,
    vocabulary: Vocabulary,
    tokens: Sequence[str],
    max_length: int,
    truncation: Truncation,
    steps: int = INTEGRATION_STEPS,
) -> np.ndarray:
    """Each token's integrated gradient on the LSTM's logit; tokens the encoding cuts off get 0.

    The LSTM is not additive; these are integrated gradients (Sundararajan et al., 2017) from a
    baseline where every word is the unknown word, so they add up, up to a small integration error,
    to how far the review's logit is from that of a review of unknown words.
    """
    shares = np.zeros(len(tokens), dtype=np.float64)
    kept = kept_positions(len(tokens), max_length, truncation)
    positions = np.concatenate([np.arange(part.start, part.stop) for part in kept]).astype(np.int64)
    if len(positions) == 0:
        return shares
    ids = torch.tensor([vocabulary.ids([tokens[p] for p in positions])], dtype=torch.int64)
    lengths = torch.tensor([len(positions)])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        embedded = model.embedding(ids)
        baseline = model.embedding(torch.full_like(ids, UNKNOWN_ID))
    # All steps of the path from baseline to review in one batch; the midpoint rule.
    alphas = (torch.arange(steps, dtype=embedded.dtype) + 0.5) / steps
    path = (baseline + alphas[:, None, None] * (embedded - baseline)).requires_grad_(True)
    logits = model.from_embeddings(path, lengths.expand(steps))
    (gradients,) = torch.autograd.grad(logits.sum(), path)
    model.train(was_training)
    attributions = (gradients.mean(dim=0) * (embedded - baseline)[0]).sum(dim=-1)
    shares[positions] = attributions.detach().double().numpy()
    return shares


# -- saving and loading -----------------------------------------------------------------------------


def lstm_tensors(model: LSTMClassifier) -> dict[str, torch.Tensor]:
    """The network's weights as the model's weights file holds them."""
    return {f"{TENSOR_PREFIX}{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}


def load_lstm(config: dict[str, Any], tensors: dict[str, torch.Tensor], vocabulary_size: int) -> LSTMClassifier:
    """The network saved as `config` (`LSTMConfig.to_json`) and its tensors, for `vocabulary_size` words."""
    shape = LSTMConfig(**config)
    if shape.vocab_size != vocabulary_size:
        raise ValueError(f"the LSTM has {shape.vocab_size} embeddings for {vocabulary_size} vocabulary entries")
    model = LSTMClassifier(shape)
    weights = {
        name.removeprefix(TENSOR_PREFIX): value for name, value in tensors.items() if name.startswith(TENSOR_PREFIX)
    }
    model.load_state_dict(weights, strict=True)
    return model.eval()


# -- as a member of the predictor -------------------------------------------------------------------

ENCODED_REVIEWS_AT_ONCE = 4_096  # reviews encoded together (4,096 x 400 ids: 6.5 MB)
PRECISION_PROBE = "A moving film, though not without its flaws: well acted, and I would watch it again."
PRECISION_PROBE_TOLERANCE = 0.25  # logits; bfloat16 keeps ~3 significant digits, a broken kernel is far off


class PrecisionError(SentimentError):
    """A scoring precision asked for that this CPU cannot compute."""


@dataclass
class LSTMMember:
    """The LSTM as the predictor composes it: the network, the vocabulary and encoding it reads, and the
    arithmetic it scores in (bfloat16 where `use_precision` proved it)."""

    network: LSTMClassifier
    vocabulary: Vocabulary
    encoding: Encoding
    precision: Precision = "float32"
    _tables: TabledLSTM | None = field(default=None, init=False, repr=False)
    _bfloat16_network: LSTMClassifier | None = field(default=None, init=False, repr=False)
    _building: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.network.eval()

    def build_tables(self) -> None:
        """Build the looked-up gates now: a server chooses its precision while it loads, so its first batch
        under load does not wait the 0.5 s (all its request threads would)."""
        _ = self.tables

    @property
    def tables(self) -> TabledLSTM | None:
        """Looked-up gates for float32 scoring on CPU (164 MB for the bundled model), built by
        `use_precision` or else by the first call that scores enough reviews at once to use them. The
        network is not trained further once it is a member."""
        if self.precision != "float32" or next(self.network.parameters()).device.type != "cpu":
            return None
        with self._building:  # one build per member, however many request threads ask at once
            if self._tables is None:
                self._tables = TabledLSTM.of(self.network)
        return self._tables

    @property
    def bfloat16_network(self) -> LSTMClassifier:
        """The network with its weights cast to bfloat16 once. Under autocast alone every call casts them
        again: 0.06 ms of a one-word review's 0.5, 2-3 % of a batch of 9 long ones. Its logits are the
        same to the last bit, since autocast scores in bfloat16 weights either way."""
        with self._building:
            if self._bfloat16_network is None:
                self._bfloat16_network = copy.deepcopy(self.network).to(torch.bfloat16).eval()
        return self._bfloat16_network

    def logits(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        logits = np.zeros(len(token_lists), dtype=np.float64)
        # Encoded a group at a time: every review takes max_length ids, so 100,000 one-word reviews
        # encoded at once would hold 160 MB of padding.
        for start in range(0, len(token_lists), ENCODED_REVIEWS_AT_ONCE):
            group = token_lists[start : start + ENCODED_REVIEWS_AT_ONCE]
            encoded = self.encoding.encode(self.vocabulary, group)
            if self.precision == "bfloat16":
                logits[start : start + len(group)] = lstm_logits(self.bfloat16_network, encoded, bfloat16=True)
            else:
                tables = self.tables if len(group) >= TABLED_FROM_REVIEWS else None
                logits[start : start + len(group)] = lstm_logits(self.network, encoded, tables=tables)
        return logits

    def contributions(self, tokens: Sequence[str]) -> np.ndarray:
        return lstm_contributions(
            self.network, self.vocabulary, tokens, self.encoding.max_length, self.encoding.truncation
        )

    def use_precision(self, precision: Precision | Literal["auto"]) -> Precision:
        """float32 or bfloat16, proven by scoring a probe review; "auto" takes bfloat16 where the CPU computes
        it natively and the probe agrees with float32. An explicit bfloat16 on a CPU without it (oneDNN
        builds no bfloat16 LSTM on CPUs with only AVX2), or whose probe fails or disagrees, raises
        PrecisionError, so a server never reports ready with a model it cannot run well."""
        if precision == "float32" or (precision == "auto" and not native_bfloat16()):
            self.precision = "float32"
        elif (failure := self._bfloat16_failure()) is None:
            self.precision = "bfloat16"
        elif precision == "auto":
            log.warning("bfloat16 scoring is not usable here (%s); scoring in float32", failure)
            self.precision = "float32"
        else:
            raise PrecisionError(
                f"bfloat16 scoring is not possible on this CPU ({cpu_description()}): {failure}; use float32 or auto"
            )
        if self.precision == "float32":
            self._bfloat16_network = None  # only bfloat16 scoring reads it (or a failed probe made it)
            self.build_tables()
        return self.precision

    def _bfloat16_failure(self) -> str | None:
        """Why the LSTM cannot score in bfloat16 here (None when it can): no native bfloat16, or the probe
        fails or disagrees."""
        if not native_bfloat16():
            # Weights already cast would run here (emulated, where autocast fails in oneDNN), slower than float32.
            return "oneDNN has no native bfloat16 LSTM for it"
        # Any tokens prove the kernel (unknown words are ids too), so the default tokenizer serves every model.
        encoded = self.encoding.encode(self.vocabulary, [tokenize(PRECISION_PROBE)])
        exact = lstm_logits(self.network, encoded)
        try:
            approximate = lstm_logits(self.bfloat16_network, encoded, bfloat16=True)
        except RuntimeError as error:  # oneDNN: "could not create a primitive descriptor for the LSTM ..."
            return f"the LSTM fails in bfloat16 ({str(error).split('.')[0]})"
        if not np.all(np.abs(approximate - exact) <= PRECISION_PROBE_TOLERANCE):
            return f"its logit {approximate[0]:.4f} differs from float32's {exact[0]:.4f}"
        return None

    def saved(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return lstm_tensors(self.network), self.network.config.to_json()


def load_member(document: dict[str, Any], tensors: dict[str, torch.Tensor], context: LoadContext) -> LSTMMember:
    """The LSTM member saved as `document` (its `LSTMConfig`) and its tensors."""
    network = load_lstm(document, tensors, len(context.vocabulary))
    return LSTMMember(network, context.vocabulary, context.encoding)


def native_bfloat16() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_description() -> str:
    """What torch sees of this CPU, for messages: its vector capability and native bfloat16."""
    return f"{torch.backends.cpu.get_cpu_capability()}, {'with' if native_bfloat16() else 'without'} native bfloat16"
