"""Fine-tune the teacher on the training channel's reviews (about 14 minutes on 2 CPU cores).

    python -m teacher.finetune --train data/channels/train --output build/teacher [--steps 700]

Each step draws `--batch-size` reviews and shows each as a run of one to three of its sentences (or,
a quarter of the time, whole), labelled as its review: the teacher learns to judge short texts from
the same 22,500 labels the LSTM has, with the pretraining of a sentence encoder behind it. It never
sees validation or test. A checkpoint every 50 steps lets an interrupted run go on where it stopped.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sentiment.checkpoints import CheckpointStore, optimizer_from_checkpoint, optimizer_to_checkpoint
from sentiment.data.channels import read_channel
from sentiment.errors import SentimentError
from sentiment.models.lstm import native_bfloat16  # bfloat16 autocast where the CPU has it: about 2x faster
from sentiment.text import sentences
from teacher.model import Teacher, TeacherCard, encode, save_teacher, tokenizer

WARMUP_STEPS = 50
WHOLE_SHARE = 0.25  # of examples shown as the whole review: the teacher still reads long texts right
CHECKPOINT_EVERY = 50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teacher.finetune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="the train channel folder")
    parser.add_argument("--output", type=Path, required=True, help="where the teacher goes")
    parser.add_argument("--steps", type=int, default=700, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="reviews per step (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=3e-5, help="peak AdamW rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed draws the same examples")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or not args.learning_rate > 0:
        parser.error("--steps and --batch-size must be at least 1 and --learning-rate above 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        finetune(args)
    except SentimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def finetune(args: argparse.Namespace) -> TeacherCard:
    train = read_channel(args.train, "train")
    texts, labels = list(train.text), train.label.tolist()
    store = CheckpointStore(args.output.with_name(args.output.name + ".checkpoints"), job=_job(args, train.digest()))
    torch.manual_seed(args.seed)  # the head's first weights: the same seed gives the same teacher
    model, tokenize = Teacher(), tokenizer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    first, spent = _resume(store, model, optimizer)
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    started = time.perf_counter()
    model.train()
    for step in range(first, args.steps):
        rate = args.learning_rate * min(1.0, (step + 1) / WARMUP_STEPS) * max(0.0, 1 - step / args.steps)
        for group in optimizer.param_groups:
            group["lr"] = rate
        # Each step's draws depend on the seed and the step alone, so a resumed run draws what it would have.
        rng = random.Random(args.seed * 1_000_003 + step)
        rows = [order[index % len(order)] for index in range(step * args.batch_size, (step + 1) * args.batch_size)]
        torch.manual_seed(args.seed * 1_000_003 + step)
        ids, mask = encode(tokenize, [example(texts[row], rng) for row in rows])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bfloat16()):
            logits = model(ids, mask)
        loss = F.binary_cross_entropy_with_logits(logits.float(), torch.tensor([float(labels[row]) for row in rows]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == args.steps:
            seconds = spent + time.perf_counter() - started
            print(f"step {step + 1}/{args.steps} loss={loss.item():.4f} {seconds:.0f}s", flush=True)
            tensors, document = optimizer_to_checkpoint(optimizer)
            store.save(
                "teacher",
                {**model.state_dict(), **tensors},
                {"step": step + 1, "seconds": seconds, "optimizer": document},
            )
    card = TeacherCard(
        args.steps,
        args.batch_size,
        args.learning_rate,
        args.seed,
        len(texts),
        round(spent + time.perf_counter() - started, 1),
    )
    save_teacher(model, card, args.output)
    print(f"teacher: {args.output} ({card.seconds:.0f}s, {args.steps} steps of {args.batch_size} reviews)")
    return card


def example(text: str, rng: random.Random) -> str:
    """The review whole, or a run of one to three of its sentences."""
    parts = sentences(text)
    if len(parts) < 2 or rng.random() < WHOLE_SHARE:
        return text
    size = min(len(parts), rng.randint(1, 3))
    start = rng.randint(0, len(parts) - size)
    return " ".join(parts[start : start + size])


def _resume(store: CheckpointStore, model: Teacher, optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    checkpoint = store.load("teacher")
    if checkpoint is None:
        return 0, 0.0
    weights = {name: tensor for name, tensor in checkpoint.tensors.items() if not name.startswith("optimizer.")}
    model.load_state_dict(weights)
    optimizer_from_checkpoint(optimizer, checkpoint)
    print(f"resumed: the teacher continues after step {checkpoint.document['step']} (checkpoint)", flush=True)
    return int(checkpoint.document["step"]), float(checkpoint.document["seconds"])


def _job(args: argparse.Namespace, data: str) -> str:
    return f"{data}:{args.steps}:{args.batch_size}:{args.learning_rate}:{args.seed}"


if __name__ == "__main__":
    raise SystemExit(main())
