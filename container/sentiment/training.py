"""Training: texts to a fitted `Predictor` (LSTM loop, linear fit, ensemble weights), resumable.

Read top to bottom: `fit` prepares tokens and the vocabulary once, then trains what the model family
needs, each stage checkpointed so a restarted job continues where it stopped. Progress goes to a
`report` callback as stable `key=value` lines that SageMaker metric definitions can match.
Imports no serving code.

On several ranks (`sentiment.distributed`), each holds its part of train and unlabeled (the parts in
rank order are the channel) and all of validation; what a single host would compute from all the
reviews is computed from the parts and summed: the vocabulary's word counts, the vectors'
co-occurrences, the linear model's n-gram counts and its loss and gradient, and the LSTM's gradients
(DistributedDataParallel) over the very batches a single host would draw. The ensemble's weights are
fitted on the master and sent to the others. The result equals a single-host fit on the same data
within float rounding (the LSTM's dropout masks are drawn per rank, so with dropout it is an equally
good model, not the same one).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import math
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sentiment.checkpoints import (
    Checkpoint,
    CheckpointStore,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
)
from sentiment.data.channels import SoftLabeled
from sentiment.data.short_texts import short_texts
from sentiment.data.table import ReviewTable
from sentiment.distributed import SOLO, Group
from sentiment.hyperparameters import Hyperparameters
from sentiment.models.ensemble import EnsembleWeights
from sentiment.models.linear import (
    FeatureCounts,
    FeatureSpace,
    LinearConfig,
    LinearMember,
    LinearScorer,
    LinearSettings,
    NgramLinear,
    distinct_per_review,
    feature_counts,
    ngram_keys,
    token_ids,
)
from sentiment.models.lstm import LSTMClassifier, LSTMConfig, LSTMMember, LSTMSettings, lstm_logits
from sentiment.models.member import Encoding, Member
from sentiment.predictor import Predictor
from sentiment.pretraining import PretrainingPlan, pretrain
from sentiment.text import get_tokenizer, sentences, tokenizer_settings
from sentiment.vectors import cooccurrence_counts, cooccurrences, vectors_from_counts, weighted_cooccurrences
from sentiment.vocabulary import EncodedBatch, Vocabulary, length_batches

Report = Callable[[str], None]
Texts = TypeVar("Texts")

WARMUP_SHARE = 0.1  # of all steps, for the one-cycle schedule: Adam's early steps are noisy
CROP_WORDS = (3, 40)  # a sentence crop reads like a review typed into the page: a few words to a long sentence
CROPS_PER_REVIEW = 4  # sentence crops cut from each validation review to fit the short-text weights


@dataclass
class TrainingResult:
    predictor: Predictor
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per LSTM epoch
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    validation: dict[str, float] = field(default_factory=dict)  # accuracy of each part on validation


def fit(
    hp: Hyperparameters,
    train: ReviewTable,
    validation: ReviewTable,
    unlabeled: ReviewTable | None = None,
    checkpoints: CheckpointStore | None = None,
    report: Report = print,
    group: Group = SOLO,
    sentences: SoftLabeled | None = None,
) -> TrainingResult:
    """Train `hp.model` on `train` (this rank's part of it), selecting and weighting on `validation`;
    the LSTM also learns from `sentences` (soft labels from an offline teacher: the `sentences` channel)."""
    store = checkpoints or CheckpointStore(None, job="")
    timings: dict[str, float] = {}
    with _timed(timings, "tokenize"):
        tokenize = get_tokenizer(hp.tokenizer)
        train_tokens = [tokenize(text) for text in train.text]
        validation_tokens = [tokenize(text) for text in validation.text]
        vocabulary = build_vocabulary(hp, train_tokens, group)
    reviews = int(group.total(len(train)))
    report(f"vocabulary: {len(vocabulary):,} words from {reviews:,} training reviews")
    encoding = Encoding(hp.max_length, hp.truncation)  # what the LSTM trains on
    scoring = Encoding(min(hp.scoring_length or hp.max_length, hp.max_length), hp.truncation)  # what it serves with
    built = built_short_texts(hp.short_texts, hp.seed, tokenize, group)
    if hp.short_texts:
        report(f"built short texts: {int(group.total(len(built.labels))):,} short reviews added to training")
    short = Labeled([], np.zeros(0, dtype=np.int8))
    if hp.model == "ensemble" and hp.ensemble.short_text_weights:
        crops, crop_labels = sentence_crops(validation.text, validation.label, CROPS_PER_REVIEW, hp.seed)
        short = Labeled([tokenize(text) for text in crops], crop_labels)

    unlabeled_texts = unlabeled.text if unlabeled is not None else []

    @functools.cache
    def unlabeled_tokens() -> list[list[str]]:  # tokenized once, when first needed
        return [tokenize(text) for text in unlabeled_texts]

    members: dict[str, Member] = {}  # in the order the ensemble adds them (sentiment.models.MEMBERS)
    history: list[dict[str, float]] = []
    if hp.model in ("lstm", "ensemble"):
        vectors = None
        if hp.lstm.pretrained_vectors:
            with _timed(timings, "vectors"):
                vectors_store = store.keyed(stage_fingerprint("vectors", VECTOR_INPUTS, hp, train, unlabeled))
                vectors = word_vectors(
                    hp.lstm.embedding_dim,
                    hp.seed,
                    vocabulary,
                    train_tokens,
                    unlabeled_tokens,
                    vectors_store,
                    report,
                    group,
                )
        start = None
        if hp.lstm.pretrain_epochs > 0:
            with _timed(timings, "pretrain"):
                torch.manual_seed(hp.seed)
                start = new_lstm(hp.lstm, len(vocabulary), vectors)
                texts = encoding.encode(vocabulary, [*train_tokens, *unlabeled_tokens()])
                plan = PretrainingPlan(
                    hp.lstm.pretrain_epochs, hp.lstm.batch_size, hp.lstm.pretrain_learning_rate, hp.seed
                )
                pretraining_store = store.keyed(stage_fingerprint("pretrain", PRETRAINING_INPUTS, hp, train, unlabeled))
                start = pretrain(start, texts, plan, pretraining_store, report, choose_device(hp.device))
        with _timed(timings, "lstm"):
            rows = with_sentence_crops(train.text, train_tokens, train.label, hp.lstm.sentence_crops, tokenize, hp.seed)
            if hp.lstm.sentence_crops:
                report(f"sentence crops: the LSTM trains on {len(rows.labels):,} rows ({len(train):,} reviews)")
            rows = Labeled([*rows.tokens, *built.tokens], _joined(rows.labels, built.labels))
            if sentences is not None:
                soft = Labeled(
                    [tokenize(text) for text in sentences.texts],
                    sharpened(sentences.scores, hp.lstm.sentence_sharpness),
                )
                # Soft targets, for the LSTM alone: in the linear model's fit they pull its n-gram weights
                # off what whole reviews need (validation reviews 91.0 % against 91.8 %; README).
                rows = Labeled(
                    [*rows.tokens, *soft.tokens], np.concatenate([rows.labels, soft.labels]).astype(np.float32)
                )
                count, total = group.sum(np.array([len(soft.labels), float(soft.labels.sum())]))
                report(
                    f"sentences: the LSTM also learns from {int(count):,} soft-labelled texts, mean {total / count:.3f}"
                )
            validation_ids = encoding.encode(vocabulary, validation_tokens)
            network, history = train_lstm(
                hp.lstm,
                hp.seed,
                choose_device(hp.device),
                Labeled(encoding.encode(vocabulary, rows.tokens), rows.labels),
                Labeled(validation_ids, validation.label),
                vectors,
                store,
                report,
                start,
                group,
            )
            members["lstm"] = LSTMMember(network, vocabulary, scoring)
    if hp.model in ("linear", "ensemble"):
        with _timed(timings, "linear"):
            tokens, labels = [*train_tokens, *built.tokens], _joined(train.label, built.labels)
            scorer = train_linear(hp.linear, hp.seed, vocabulary, tokens, labels, store, report, group=group)
            members["linear"] = LinearMember(scorer, vocabulary)

    labeled_validation = Labeled(validation_tokens, validation.label)
    predictor, scores = assemble(hp, vocabulary, scoring, members, labeled_validation, short, report, group)
    if hp.model == "ensemble" and hp.ensemble.pseudo_labels and unlabeled_texts:
        # Second round: the first ensemble labels the unlabeled reviews and the linear model learns
        # from them as well as from train; the LSTM's judgement reaches the n-gram weights.
        with _timed(timings, "pseudo_labels"):
            pseudo = teacher_labels(predictor, unlabeled_tokens(), store, group)
            counted, positive = group.sum(np.array([len(pseudo), int(pseudo.sum())], dtype=np.int64))
            report(
                f"pseudo-labels: {counted:,} unlabeled reviews, {positive / counted:.1%} positive by the first ensemble"
            )
            tokens = [*train_tokens, *built.tokens, *unlabeled_tokens()]
            labels = np.concatenate([train.label, built.labels, pseudo]).astype(np.int8)
            scorer = train_linear(
                hp.linear,
                hp.seed,
                vocabulary,
                tokens,
                labels,
                store,
                report,
                "linear_student",
                len(train_tokens) + len(built.tokens),
                group,
            )
            members["linear"] = LinearMember(scorer, vocabulary)
        predictor, scores = assemble(hp, vocabulary, scoring, members, labeled_validation, short, report, group)
    return TrainingResult(predictor=predictor, history=history, timings=timings, validation=scores)


@dataclass(frozen=True)
class Labeled(Generic[Texts]):
    """Texts (tokenized, or encoded for the LSTM) and their 1/0 labels (or probabilities: soft labels)."""

    tokens: Texts
    labels: np.ndarray


def assemble(
    hp: Hyperparameters,
    vocabulary: Vocabulary,
    encoding: Encoding,
    members: dict[str, Member],
    validation: Labeled[list[list[str]]],
    short: Labeled[list[list[str]]],
    report: Report,
    group: Group = SOLO,
) -> tuple[Predictor, dict[str, float]]:
    """The predictor of `hp.model` (ensemble weights fitted here: on the validation reviews, and on
    `short`, sentences cut from them, for short texts) and each part's validation accuracy. On several
    ranks the master fits the weights and the others receive them."""
    if not group.is_master:
        ensemble, scores = group.broadcast(None)
        return Predictor(hp.model, vocabulary.tokenizer, vocabulary, encoding, members, ensemble), scores
    predictor, scores = _assemble(hp, vocabulary, encoding, members, validation, short, report)
    group.broadcast((predictor.ensemble, scores))
    return predictor, scores


def _assemble(
    hp: Hyperparameters,
    vocabulary: Vocabulary,
    encoding: Encoding,
    members: dict[str, Member],
    validation: Labeled[list[list[str]]],
    short: Labeled[list[list[str]]],
    report: Report,
) -> tuple[Predictor, dict[str, float]]:
    parts = {name: member.logits(validation.tokens) for name, member in members.items()}
    ensemble = None
    if hp.model == "ensemble":
        ensemble = fit_ensemble(parts, validation.labels)
        terms = " + ".join(f"{weight:.3f} {name}" for name, weight in ensemble.weights.items())
        report(f"ensemble: logit = {terms} + {ensemble.bias:.3f}")
        if short.tokens:
            ensemble = fit_short_weights(ensemble, members, short, report)
        lengths = np.array([len(tokens) for tokens in validation.tokens])
        parts["ensemble"] = ensemble.combine(parts, lengths)
    predictor = Predictor(hp.model, vocabulary.tokenizer, vocabulary, encoding, members, ensemble)
    scores = {name: accuracy(logits, validation.labels) for name, logits in parts.items()}
    report(" ".join(f"val_acc_{name}={value:.4f}" for name, value in scores.items()))
    return predictor, scores


def built_short_texts(
    count: int, seed: int, tokenize: Callable[[str], list[str]], group: Group = SOLO
) -> Labeled[list[list[str]]]:
    """This rank's share of `count` built short reviews (`sentiment.data.short_texts`), tokenized: every
    rank builds the same texts and keeps every world_size-th, so the ranks together train on each once."""
    texts, labels = short_texts(count, seed)
    share = slice(group.rank, None, group.world_size)
    return Labeled([tokenize(text) for text in texts[share]], labels[share])


def sharpened(scores: np.ndarray, sharpness: float) -> np.ndarray:
    """`scores` with their logits times `sharpness` (p^a / (p^a + (1-p)^a)): above 1 further from 0.5, so
    the LSTM learns the labels' verdicts more firmly (fewer uncertain short texts, README); 0 and 1 kept."""
    if sharpness == 1.0:
        return scores
    wide = scores.astype(np.float64)
    high, low = np.power(wide, sharpness), np.power(1.0 - wide, sharpness)
    return (high / (high + low)).astype(np.float32)


def _joined(labels: np.ndarray, more: np.ndarray) -> np.ndarray:
    return np.concatenate([labels, more.astype(labels.dtype)]) if len(more) else labels


def sentence_crops(
    texts: Sequence[str], labels: np.ndarray, per_review: int, seed: int
) -> tuple[list[str], np.ndarray]:
    """Up to `per_review` windows of one or two consecutive sentences from each review of two or more
    sentences, labelled as their review: stand-ins for the one-sentence reviews people type."""
    rng = np.random.default_rng([seed, 7])  # its own stream: crops never shift training's randomness
    crops: list[str] = []
    crop_labels: list[int] = []
    for text, label in zip(texts, labels, strict=True):
        for crop in crops_of(text, per_review, rng):
            crops.append(crop)
            crop_labels.append(int(label))
    return crops, np.asarray(crop_labels, dtype=labels.dtype)


def crops_of(text: str, count: int, rng: np.random.Generator) -> list[str]:
    """Up to `count` windows of one or two consecutive whole sentences of `text` (none from a text of
    one sentence), each of `CROP_WORDS` words."""
    parts = sentences(text)
    if len(parts) < 2:
        return []
    crops = []
    for _ in range(count):
        size = min(len(parts), 1 + int(rng.integers(0, 2)))
        start = int(rng.integers(0, len(parts) - size + 1))
        crop = " ".join(parts[start : start + size])
        if CROP_WORDS[0] <= len(crop.split()) <= CROP_WORDS[1]:
            crops.append(crop)
    return crops


def with_sentence_crops(
    texts: Sequence[str],
    tokens: Sequence[list[str]],
    labels: np.ndarray,
    per_review: int,
    tokenize: Callable[[str], list[str]],
    seed: int,
) -> Labeled[list[list[str]]]:
    """Each review's tokens followed by those of up to `per_review` of its sentence crops, labelled as it.

    A review's crops depend only on the seed and its own text, and follow it: so the parts of several
    ranks, in rank order, give the rows a single host builds from the whole channel."""
    if per_review == 0:  # the default: no sentence splitting, no generator per review
        return Labeled(list(tokens), labels)
    rows: list[list[str]] = []
    row_labels: list[int] = []
    for text, review_tokens, label in zip(texts, tokens, labels, strict=True):
        rows.append(review_tokens)
        row_labels.append(int(label))
        rng = np.random.default_rng([seed, 11, zlib.crc32(text.encode("utf-8", "surrogatepass"))])
        for crop in crops_of(text, per_review, rng):
            rows.append(tokenize(crop))
            row_labels.append(int(label))
    return Labeled(rows, np.asarray(row_labels, dtype=labels.dtype))


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - started


def job_fingerprint(hp: Hyperparameters, *tables: ReviewTable | SoftLabeled | None) -> str:
    """Identifies a job's settings and data, so checkpoints are resumed only by the same job."""
    return _sha256_of_json([hp.flat(), _digests(tables)])


# What the word vectors depend on: the vocabulary (built from train) and the texts they are counted in.
VECTOR_INPUTS = ("seed", "tokenizer", "vocab_size", "min_count", "embedding_dim")


# What the pretrained LSTM depends on: a job that changes only how the labels are learned (learning rate,
# epochs, dropout, the linear model, ...) reuses the pretraining another job left in the checkpoint folder.
PRETRAINING_INPUTS = (
    "seed",
    "tokenizer",
    "vocab_size",
    "min_count",
    "max_length",
    "truncation",
    "embedding_dim",
    "hidden_dim",
    "layers",
    "bidirectional",
    "pooling",  # the classifier head's shape: the checkpoint holds the whole network
    "embedding_dropout",
    "pretrained_vectors",
    "batch_size",
    "pretrain_epochs",
    "pretrain_learning_rate",
)


def stage_fingerprint(
    stage: str, inputs: Sequence[str], hp: Hyperparameters, train: ReviewTable, unlabeled: ReviewTable | None
) -> str:
    """Identifies what a stage that reads train and unlabeled reviews depends on: the settings named in
    `inputs` (`VECTOR_INPUTS`, `PRETRAINING_INPUTS`) and those texts, so jobs that agree on them share it."""
    flat = hp.flat()
    return _sha256_of_json([stage, {name: flat[name] for name in inputs}, _digests([train, unlabeled])])


def _digests(tables: Sequence[ReviewTable | SoftLabeled | None]) -> list[str]:
    return [table.digest() if table is not None else "none" for table in tables]


def _sha256_of_json(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((logits >= 0) == (labels == 1)))


def build_vocabulary(hp: Hyperparameters, train_tokens: Sequence[Sequence[str]], group: Group = SOLO) -> Vocabulary:
    """The vocabulary of train (all ranks' parts: their word counts are summed)."""
    settings = tokenizer_settings(hp.tokenizer)
    if not group.distributed:
        return Vocabulary.build(train_tokens, settings, hp.vocab_size, hp.min_count)
    counts: Counter[str] = Counter()
    for tokens in train_tokens:
        counts.update(tokens)
    total: Counter[str] = Counter()
    for part in group.gather(counts):
        total.update(part)
    return Vocabulary.from_counts(total, settings, hp.vocab_size, hp.min_count)


def load_agreed(
    store: CheckpointStore,
    stage: str,
    group: Group,
    report: Report,
    mark: Callable[[Checkpoint], object] = lambda checkpoint: True,
) -> Checkpoint | None:
    """The stage's checkpoint when every rank resumes from one with the same `mark` (an LSTM epoch),
    else none anywhere: a stage's collectives need every rank in it, so they redo it together."""
    checkpoint = store.load(stage)
    if group.same(None if checkpoint is None else mark(checkpoint)):
        return checkpoint
    report(f"checkpoint {stage}: the ranks hold different ones, so every rank starts this stage afresh")
    return None


# -- word vectors -----------------------------------------------------------------------------------


def word_vectors(
    dimensions: int,
    seed: int,
    vocabulary: Vocabulary,
    train_tokens: Sequence[Sequence[str]],
    unlabeled_tokens: Callable[[], Sequence[Sequence[str]]],
    store: CheckpointStore,
    report: Report,
    group: Group = SOLO,
) -> np.ndarray:
    """PPMI-SVD vectors of the vocabulary's words from train and unlabeled reviews (checkpointed; on
    several ranks from the sum of their co-occurrence counts)."""
    checkpoint = load_agreed(store, "vectors", group, report)
    if checkpoint is not None:
        report("resumed: word vectors (checkpoint)")
        return checkpoint.tensors["vectors"].numpy()
    token_lists = [*train_tokens, *unlabeled_tokens()]
    ids, review_of = token_ids(token_lists, vocabulary.index)
    if group.distributed:  # whole-number counts summed over the ranks: the floats a single host would make
        parts = group.gather(cooccurrence_counts(ids, review_of, len(vocabulary)))
        counts = weighted_cooccurrences([_sum_sparse(list(distance)) for distance in zip(*parts, strict=True)])
    else:
        counts = cooccurrences(ids, review_of, len(vocabulary))
    vectors = vectors_from_counts(counts, dimensions, seed=seed)
    store.save("vectors", {"vectors": torch.from_numpy(vectors)}, {})
    report(f"vectors: {vectors.shape[1]}-dimensional from {int(group.total(len(token_lists))):,} reviews")
    return vectors


def _sum_sparse(parts: list[torch.Tensor]) -> torch.Tensor:
    """The sum of sparse matrices, in rank order."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total.coalesce()


# -- the LSTM ---------------------------------------------------------------------------------------


def choose_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for, but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def new_lstm(settings: LSTMSettings, vocab_size: int, vectors: np.ndarray | None) -> LSTMClassifier:
    """A fresh network of `settings`' shape, its word vectors from `vectors` where given."""
    model = LSTMClassifier(LSTMConfig.of(settings, vocab_size))
    if vectors is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(vectors))
    return model


def learning_rate_at(step: int, total_steps: int, settings: LSTMSettings) -> float:
    """Constant, or one cycle: linear warm-up over the first tenth, then cosine decay to zero."""
    if settings.schedule == "constant":
        return settings.learning_rate
    warmup = max(1, int(total_steps * WARMUP_SHARE))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return settings.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_lstm(
    settings: LSTMSettings,
    seed: int,
    device: torch.device,
    train: Labeled[EncodedBatch],
    validation: Labeled[EncodedBatch],
    vectors: np.ndarray | None,
    store: CheckpointStore,
    report: Report,
    start: LSTMClassifier | None = None,
    group: Group = SOLO,
) -> tuple[LSTMClassifier, list[dict[str, float]]]:
    """Train the LSTM for up to `settings.epochs`, keeping the epoch with the best validation accuracy
    (or the last epoch when `settings.patience` is 0). Checkpoints after every epoch. `start` is a
    network to begin from (pretrained: `sentiment.pretraining`) instead of `vectors` and a fresh one.

    On several ranks `train` is this rank's part: every rank draws the batches of all ranks' reviews
    (the same generator, so the same batches a single host draws) and runs the rows of each it holds."""
    torch.manual_seed(seed)
    if start is not None:
        model = start
    else:
        vocab_size = group.max(int(train.tokens.ids.max(initial=1)) + 1) if vectors is None else len(vectors)
        model = new_lstm(settings, vocab_size, vectors)
    model.to(device)
    network = _data_parallel(model, device) if group.distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    rng = np.random.default_rng(seed)
    rows = _RankRows.of(train.tokens.lengths, group)
    lengths_of = rows.all_lengths
    fixed_batches = None if settings.shuffle_each_epoch else length_batches(lengths_of, settings.batch_size, rng)
    steps_per_epoch = math.ceil(len(lengths_of) / settings.batch_size)
    state = _LSTMState(best_weights=copy.deepcopy(model.state_dict()))

    checkpoint = _resumable_lstm(store, group, report)
    if checkpoint is not None:
        state = _resume_lstm(checkpoint, model, optimizer, rng)
        report(f"resumed: the LSTM continues after epoch {state.epoch} (checkpoint)")

    labels = torch.from_numpy(train.labels.astype(np.float32))
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        started = time.perf_counter()
        batches = fixed_batches if fixed_batches is not None else length_batches(lengths_of, settings.batch_size, rng)
        model.train()
        total_loss = 0.0
        for number, batch in enumerate(
            tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=not sys.stderr.isatty())
        ):
            step = (epoch - 1) * steps_per_epoch + number
            rate = learning_rate_at(step, settings.epochs * steps_per_epoch, settings)
            for param_group in optimizer.param_groups:
                param_group["lr"] = rate * param_group.get("lr_scale", 1.0)
            mine = rows.mine(batch)
            # A rank holding none of a batch's rows still takes part (DistributedDataParallel needs every
            # rank in each step's gradient sum): one row of its own, counted zero times.
            used = mine if len(mine) else np.zeros(1, dtype=np.int64)
            longest = int(train.tokens.lengths[used].max())
            ids = torch.from_numpy(train.tokens.ids[used, :longest].astype(np.int64)).to(device)
            lengths = torch.from_numpy(train.tokens.lengths[used])
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                logits = network(ids, lengths)
                if group.distributed:
                    # Summed here and over the ranks (DistributedDataParallel averages: hence x world size),
                    # divided by the whole batch: the mean loss of the batch a single host would run.
                    summed = F.binary_cross_entropy_with_logits(logits, labels[used].to(device), reduction="sum")
                    loss = summed * (len(mine) > 0) * group.world_size / len(batch)
                else:
                    loss = F.binary_cross_entropy_with_logits(logits, labels[used].to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if settings.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(batch) / group.world_size
        total_loss = group.total(total_loss)
        logits = _validation_logits(model, validation.tokens, device, group)
        val_loss = float(
            F.binary_cross_entropy_with_logits(
                torch.from_numpy(logits), torch.from_numpy(validation.labels.astype(np.float64))
            )
        )
        record = {
            "epoch": epoch,
            "train_loss": total_loss / len(lengths_of),
            "val_loss": val_loss,
            "val_acc": accuracy(logits, validation.labels),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        state.history.append(record)
        report(
            f"epoch={epoch} train_loss={record['train_loss']:.4f} val_loss={val_loss:.4f} "
            f"val_acc={record['val_acc']:.4f} seconds={record['seconds']:.1f}"
        )
        state.epoch = epoch
        if record["val_acc"] > state.best_accuracy:
            state.best_accuracy, state.stale = record["val_acc"], 0
            state.best_weights = copy.deepcopy(model.state_dict())
        else:
            state.stale += 1
        _save_lstm(store, state, model, optimizer, rng, group)
        if settings.patience and state.stale >= settings.patience:
            report(f"early stop: no better validation accuracy for {state.stale} epochs")
            break
    if settings.patience:
        model.load_state_dict(state.best_weights)
    return model.cpu().eval(), state.history


@dataclass(frozen=True)
class _RankRows:
    """Where this rank's reviews sit among all ranks' (the parts in rank order): rows offset..offset+count."""

    all_lengths: np.ndarray  # every rank's review lengths, in rank order
    offset: int
    count: int

    @classmethod
    def of(cls, lengths: np.ndarray, group: Group) -> _RankRows:
        if not group.distributed:
            return cls(lengths, 0, len(lengths))
        parts = group.gather(lengths)
        return cls(np.concatenate(parts), sum(len(part) for part in parts[: group.rank]), len(lengths))

    def mine(self, batch: np.ndarray) -> np.ndarray:
        """This rank's rows of a batch of all ranks' rows, as indices into its own part."""
        if self.offset == 0 and self.count == len(self.all_lengths):
            return batch
        held = batch[(batch >= self.offset) & (batch < self.offset + self.count)]
        return held - self.offset


def _data_parallel(model: LSTMClassifier, device: torch.device) -> torch.nn.Module:
    """The network under DistributedDataParallel: gradients summed over the ranks during backward."""
    device_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    )
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _validation_logits(model: LSTMClassifier, encoded: EncodedBatch, device: torch.device, group: Group) -> np.ndarray:
    """The LSTM's logits for every validation review, each rank scoring a block of them."""
    if not group.distributed:
        return lstm_logits(model, encoded, device)
    start, stop = (
        len(encoded.lengths) * group.rank // group.world_size,
        len(encoded.lengths) * (group.rank + 1) // group.world_size,
    )
    block = EncodedBatch(encoded.ids[start:stop], encoded.lengths[start:stop])
    mine = lstm_logits(model, block, device) if stop > start else np.zeros(0, dtype=np.float64)
    return np.concatenate(group.gather(mine))


@dataclass
class _LSTMState:
    """What an LSTM checkpoint restores besides weights and optimizer."""

    epoch: int = 0
    best_accuracy: float = -1.0
    stale: int = 0
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def _save_lstm(
    store: CheckpointStore,
    state: _LSTMState,
    model: LSTMClassifier,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    group: Group = SOLO,
) -> None:
    optimizer_tensors, optimizer_document = optimizer_to_checkpoint(optimizer)
    tensors = {
        **{f"model.{name}": value for name, value in model.state_dict().items()},
        **{f"best.{name}": value for name, value in state.best_weights.items()},
        **optimizer_tensors,
        "rng.torch": torch.random.get_rng_state(),
    }
    document = {
        "epoch": state.epoch,
        "best_accuracy": state.best_accuracy,
        "stale": state.stale,
        "history": state.history,
        "optimizer": optimizer_document,
        "rng_numpy": rng.bit_generator.state,
    }
    store.save(_lstm_slot(state.epoch, group), tensors, document)


def _lstm_slot(epoch: int, group: Group) -> str:
    """Where an epoch's LSTM checkpoint goes. On several ranks two slots, the last two epochs: a job stopped
    between one rank's save and another's leaves the ranks one epoch apart, and they resume the older."""
    return f"lstm-{epoch % 2}" if group.distributed else "lstm"


def _resumable_lstm(store: CheckpointStore, group: Group, report: Report) -> Checkpoint | None:
    """The latest LSTM checkpoint of an epoch every rank holds (a single rank: its latest), else none."""
    if not group.distributed:
        return store.load("lstm")
    held = {checkpoint.document["epoch"]: checkpoint for slot in (0, 1) if (checkpoint := store.load(f"lstm-{slot}"))}
    common = set.intersection(*(set(epochs) for epochs in group.gather(sorted(held))))
    if held and not common:
        report("checkpoint lstm: the ranks hold no epoch in common, so every rank starts the LSTM afresh")
    return held[max(common)] if common else None


def _resume_lstm(
    checkpoint: Checkpoint, model: LSTMClassifier, optimizer: torch.optim.Optimizer, rng: np.random.Generator
) -> _LSTMState:
    def prefixed(prefix: str) -> dict[str, torch.Tensor]:
        return {name[len(prefix) :]: value for name, value in checkpoint.tensors.items() if name.startswith(prefix)}

    model.load_state_dict(prefixed("model."))
    optimizer_from_checkpoint(optimizer, checkpoint)
    torch.random.set_rng_state(checkpoint.tensors["rng.torch"])
    rng.bit_generator.state = checkpoint.document["rng_numpy"]
    return _LSTMState(
        epoch=checkpoint.document["epoch"],
        best_accuracy=checkpoint.document["best_accuracy"],
        stale=checkpoint.document["stale"],
        best_weights=prefixed("best."),
        history=checkpoint.document["history"],
    )


# -- the linear model -------------------------------------------------------------------------------


def train_linear(
    settings: LinearSettings,
    seed: int,
    vocabulary: Vocabulary,
    token_lists: Sequence[Sequence[str]],
    labels: np.ndarray,
    store: CheckpointStore,
    report: Report,
    stage: str = "linear",
    labeled_reviews: int | None = None,
    group: Group = SOLO,
) -> LinearScorer:
    """NB-weighted logistic regression on binary 1..ngram_max-grams (`sentiment.models.linear`), fitted by L-BFGS.

    The n-gram features and their naive-Bayes ratios come from the first `labeled_reviews` reviews
    (default: all); the weights are fitted on every review, so pseudo-labeled ones can follow. On
    several ranks these are this rank's reviews: the n-gram counts are merged, and each step's loss
    and gradient summed over the ranks, so every rank takes the steps of one fit on all reviews.
    """
    checkpoint = load_agreed(store, stage, group, report)
    if checkpoint is not None:
        report(f"resumed: {stage} (checkpoint)")
        return LinearScorer(
            keys=checkpoint.tensors["keys"].numpy(),
            coefficients=checkpoint.tensors["coefficients"].numpy(),
            bias=float(checkpoint.document["bias"]),
            max_n=settings.ngram_max,
            negation_window=settings.negation_window,
        )
    labeled = len(token_lists) if labeled_reviews is None else labeled_reviews
    ids, review_of = token_ids(token_lists, vocabulary.index, settings.negation_window)
    keys, reviews = distinct_per_review(*ngram_keys(ids, review_of, settings.ngram_max))
    own = reviews < labeled
    counts = feature_counts(keys[own], reviews[own], labels[:labeled])
    if group.distributed:
        counts = FeatureCounts.merge(group.gather(counts))
    space = FeatureSpace.from_counts(counts, settings.ngram_min_count)
    features, offsets = space.lookup(keys, reviews, len(token_lists))
    torch.manual_seed(seed)
    model = NgramLinear(LinearConfig(features=max(1, len(space))))
    model.ratio.copy_(torch.from_numpy(space.ratios) if len(space) else torch.zeros(1))
    features_t, offsets_t = torch.from_numpy(features), torch.from_numpy(offsets)
    targets = torch.from_numpy(labels.astype(np.float32))
    optimizer = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=200, history_size=20, line_search_fn="strong_wolfe"
    )

    reviews_in_all = int(group.total(len(token_lists)))

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        if not group.distributed:
            loss = F.binary_cross_entropy_with_logits(model(features_t, offsets_t), targets)
            loss = loss + settings.l2 * model.weight.weight.square().sum()
            loss.backward()
            return loss
        # This rank's share of the loss of all reviews (and of the penalty, once in all): summed over the
        # ranks, loss and gradient are those of one fit on every review.
        data = F.binary_cross_entropy_with_logits(model(features_t, offsets_t), targets, reduction="sum")
        loss = data / reviews_in_all + settings.l2 * model.weight.weight.square().sum() / group.world_size
        loss.backward()
        for parameter in model.parameters():
            if parameter.grad is not None:
                group.sum_tensor(parameter.grad)
        total = loss.detach().clone()
        group.sum_tensor(total)
        return total

    optimizer.step(objective)
    with torch.no_grad():
        train_logits = model(features_t, offsets_t)
        loss = F.binary_cross_entropy_with_logits(train_logits, targets).item()
        coefficients = (model.weight.weight[:, 0] * model.ratio).numpy().astype(np.float32)
    train_accuracy = accuracy(train_logits.numpy(), labels)
    if group.distributed:
        loss_sum, correct = group.sum(np.array([loss * len(token_lists), train_accuracy * len(token_lists)]))
        loss, train_accuracy = loss_sum / reviews_in_all, correct / reviews_in_all
    report(
        f"{stage}: {len(space):,} n-gram features, {reviews_in_all:,} reviews, "
        f"train_loss={loss:.4f} train_acc={train_accuracy:.4f}"
    )
    scorer = LinearScorer(
        keys=space.keys,
        coefficients=coefficients,
        bias=model.bias.item(),
        max_n=settings.ngram_max,
        negation_window=settings.negation_window,
    )
    store.save(
        stage,
        {"keys": torch.from_numpy(scorer.keys), "coefficients": torch.from_numpy(scorer.coefficients)},
        {"bias": scorer.bias},
    )
    return scorer


def teacher_labels(
    predictor: Predictor, token_lists: Sequence[Sequence[str]], store: CheckpointStore, group: Group = SOLO
) -> np.ndarray:
    """The first ensemble's verdicts (1/0) on the unlabeled reviews (checkpointed: LSTM inference is slow)."""
    checkpoint = load_agreed(store, "teacher", group, lambda line: None)
    if checkpoint is not None:
        return checkpoint.tensors["labels"].numpy()
    labels = (predictor.logits_of_tokens(token_lists) >= 0).astype(np.int8)
    store.save("teacher", {"labels": torch.from_numpy(labels)}, {})
    return labels


# -- the ensemble -----------------------------------------------------------------------------------


def fit_ensemble(parts: dict[str, np.ndarray], labels: np.ndarray) -> EnsembleWeights:
    """Logistic regression of the label on the members' logits (validation split), one weight each."""
    names = list(parts)
    inputs = torch.from_numpy(np.stack([parts[name] for name in names], axis=1)).float()
    targets = torch.from_numpy(labels.astype(np.float32))
    weights = torch.full((len(names),), 0.5, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(inputs @ weights + bias, targets) + 1e-3 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return EnsembleWeights(weights=dict(zip(names, weights.tolist(), strict=True)), bias=bias.item())


def fit_short_weights(
    review: EnsembleWeights, members: dict[str, Member], short: Labeled[list[list[str]]], report: Report
) -> EnsembleWeights:
    """`review` plus weights for short texts, fitted on `short` with the review weights held fixed (so
    review-length texts score exactly as before) and the two blended by length as `EnsembleWeights` does."""
    names = list(review.members)
    parts = {name: members[name].logits(short.tokens) for name in names}
    lengths = np.array([len(tokens) for tokens in short.tokens])
    shortness = torch.from_numpy(review.shortness(lengths)).float()
    before = review.combine(parts, lengths)
    inputs = torch.from_numpy(np.stack([parts[name] for name in names], axis=1)).float()
    targets = torch.from_numpy(short.labels.astype(np.float32))
    review_weights = [review.weights[name] for name in names]
    fixed = inputs @ torch.tensor(review_weights) + review.bias
    weights = torch.tensor(review_weights, requires_grad=True)
    bias = torch.tensor([review.bias], requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = (1 - shortness) * fixed + shortness * (inputs @ weights + bias)
        loss = F.binary_cross_entropy_with_logits(logits, targets) + 1e-3 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    fitted = dataclasses.replace(
        review, short_weights=dict(zip(names, weights.tolist(), strict=True)), short_bias=bias.item()
    )
    after = fitted.combine(parts, lengths)
    terms = " + ".join(f"{weight:.3f} {name}" for name, weight in (fitted.short_weights or {}).items())
    report(
        f"short texts: logit = {terms} + {fitted.short_bias:.3f} below {review.short_below[0]} tokens; "
        f"on {len(lengths):,} validation sentences val_acc_short={accuracy(after, short.labels):.4f} "
        f"(review weights alone {accuracy(before, short.labels):.4f})"
    )
    return fitted
