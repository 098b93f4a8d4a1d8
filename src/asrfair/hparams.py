"""Training hyper-parameters: a light module, so the CLI can show defaults without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter the notebook varied; all of them land in the run's config.json."""

    epochs: float = 10.0
    max_steps: int = -1
    learning_rate: float = 5e-4
    weight_decay: float = 0.005
    warmup_steps: int = 20
    batch_size: int = 8
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    eval_steps: int = 0  # 0: no evaluation during training
    save_steps: int = 100
    logging_steps: int = 10
    mask_time_prob: float = 0.05
    layerdrop: float = 0.0
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.0
    final_dropout: float = 0.0
    seed: int = 0
    freeze_feature_encoder: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
