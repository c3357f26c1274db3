"""Language-model pretraining of the LSTM: before it sees a label, each direction learns to predict the
next word it reads, on every review there is (train and unlabeled), so that how "not" and "but" change
what follows is learned from raw text, which 22,500 labels cannot teach (Dai & Le, 2015; ULMFiT).

The language model is the classifier's own embedding and LSTM layers with one adaptive softmax per
direction (Grave et al., 2017: frequent words cost a full softmax, rare ones a small one), so what it
learns is the classifier's starting point and nothing has to be copied. Pretraining is a stage of its
own: checkpointed every `CHECKPOINT_STEPS` steps (a pass over 72,500 reviews, 1,133 steps of 64, took
23.5 minutes on two AVX-512 cores), resumed where it stopped, and its result is kept in the checkpoint
folder under a key of what it reads (`training.PRETRAINING_INPUTS` and the texts), so a second job with
the same data and pretraining settings starts from it whatever else it changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sentiment.checkpoints import CheckpointStore, optimizer_from_checkpoint, optimizer_to_checkpoint
from sentiment.models.lstm import LSTMClassifier, gather_steps
from sentiment.vocabulary import EncodedBatch, length_batches

CUTOFFS = (2_000, 10_000)  # the adaptive softmax's clusters: the 2,000 commonest ids, the next 8,000, the rest
CHECKPOINT_STEPS = 200  # steps between checkpoints (about 4 minutes on two cores)
STAGE = "pretrain"
Report = Callable[[str], None]


@dataclass(frozen=True)
class PretrainingPlan:
    """How long and how fast to pretrain."""

    epochs: float  # passes over the texts; fractions stop part way through the last pass
    batch_size: int
    learning_rate: float
    seed: int


class LanguageModel(nn.Module):
    """Next-word prediction in each direction the classifier reads, through its embedding and first layer."""

    def __init__(self, classifier: LSTMClassifier) -> None:
        super().__init__()
        if classifier.config.layers != 1:
            raise ValueError("language-model pretraining reads one LSTM layer (layers=1)")
        self.classifier = classifier
        hidden, vocabulary = classifier.config.hidden_dim, classifier.config.vocab_size
        # A small vocabulary (tests, toy data) still needs a cluster: the torch class insists on one.
        cutoffs = [cut for cut in CUTOFFS if cut < vocabulary - 1] or [max(1, vocabulary // 2)]
        directions = 2 if classifier.config.bidirectional else 1
        self.heads = nn.ModuleList(
            nn.AdaptiveLogSoftmaxWithLoss(hidden, vocabulary, cutoffs, div_value=4.0) for _ in range(directions)
        )
        self.dropout = nn.Dropout(0.1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The mean negative log-likelihood of each real next word, over both directions."""
        network = self.classifier
        lengths = lengths.to(ids.device)
        steps = torch.arange(ids.shape[1], device=ids.device)[None, :]
        real = steps < lengths[:, None]
        embedded = network.embedding_dropout(network.embedding(ids).transpose(1, 2)).transpose(1, 2)
        readings = [(embedded, ids, network.forward_layers[0])]
        if network.config.bidirectional:
            mirror = torch.where(real, lengths[:, None] - 1 - steps, steps)  # each review reversed within its length
            reversed_ids = torch.gather(ids, 1, mirror)
            readings.append((gather_steps(embedded, mirror), reversed_ids, network.backward_layers[0]))
        losses = []
        for head, (inputs, order, layer) in zip(self.heads, readings, strict=True):
            states = layer(inputs)[0][:, :-1]
            known = real[:, 1:]  # a state predicts the word after it, where there is one
            losses.append(head(self.dropout(states[known]), order[:, 1:][known]).loss)
        return torch.stack(losses).mean()


def pretrain(
    classifier: LSTMClassifier,
    texts: EncodedBatch,
    plan: PretrainingPlan,
    store: CheckpointStore,
    report: Report,
    device: torch.device | None = None,
) -> LSTMClassifier:
    """`classifier`'s embedding and LSTM layers pretrained on `texts` (labels unused), resumed from `store`."""
    device = device or torch.device("cpu")
    model = LanguageModel(classifier).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng([plan.seed, 11])  # its own stream: training's randomness stays as it was
    per_epoch = math.ceil(len(texts.lengths) / plan.batch_size)
    total = max(1, round(plan.epochs * per_epoch))
    order = _batches(texts.lengths, plan.batch_size, rng, total)
    step = _resume(model, optimizer, store)
    if step >= total:
        report(f"pretrained: {total:,} steps finished earlier, reused from the checkpoint folder")
    elif step:
        report(f"resumed: pretraining continues after step {step:,} of {total:,} (checkpoint)")
    model.train()
    started, running = time.perf_counter(), 0.0
    while step < total:
        rows = order[step]
        longest = int(texts.lengths[rows].max())
        ids = torch.from_numpy(texts.ids[rows, :longest].astype(np.int64)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, total, plan.learning_rate)
        loss = model(ids, torch.from_numpy(texts.lengths[rows]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += loss.item()
        step += 1
        if step % CHECKPOINT_STEPS == 0 or step == total:
            _save(model, optimizer, store, step, total)  # first: a step reported is a step kept
            since = step % CHECKPOINT_STEPS or CHECKPOINT_STEPS
            report(
                f"pretrain step={step} of {total} lm_loss={running / since:.4f} "
                f"seconds={time.perf_counter() - started:.1f}"
            )
            running = 0.0
    return classifier.eval()


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, total: int) -> list[np.ndarray]:
    """`total` batches of similar lengths, epoch after epoch, each epoch in its own random order."""
    batches: list[np.ndarray] = []
    while len(batches) < total:
        batches.extend(length_batches(lengths, batch_size, rng))
    return batches[:total]


def _learning_rate(step: int, total: int, peak: float) -> float:
    """A tenth of warm-up, then cosine decay to zero: the same shape as the classifier's."""
    warmup = max(1, total // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _save(
    model: LanguageModel, optimizer: torch.optim.Optimizer, store: CheckpointStore, step: int, total: int
) -> None:
    optimizer_tensors, optimizer_document = optimizer_to_checkpoint(optimizer)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **optimizer_tensors}
    tensors["rng.torch"] = torch.random.get_rng_state()
    store.save(STAGE, tensors, {"step": step, "total": total, "optimizer": optimizer_document})


def _resume(model: LanguageModel, optimizer: torch.optim.Optimizer, store: CheckpointStore) -> int:
    checkpoint = store.load(STAGE)
    if checkpoint is None:
        return 0
    prefix = "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in checkpoint.tensors.items() if k.startswith(prefix)})
    optimizer_from_checkpoint(optimizer, checkpoint)
    torch.random.set_rng_state(checkpoint.tensors["rng.torch"])
    return int(checkpoint.document["step"])
