"""Training hyper-parameters: a light module, so the CLI can show defaults without torch.

Each field states its default and its help once; the ``asrfair audit`` options, the
``[train]`` table of ``--config`` and the study file's ``[hparams.NAME]`` tables are all
derived from these fields, so none of them can drift from the dataclass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from asrfair.errors import AsrfairError

POSITIVE = ("epochs", "learning_rate", "batch_size", "grad_accum", "save_total_limit")
NOT_NEGATIVE = (
    "weight_decay",
    "warmup_steps",
    "eval_steps",
    "save_steps",
    "save_minutes",
    "logging_steps",
    "dataloader_workers",
    "device_batch",
)


def hparam(default: Any, help: str, *, model_config: bool = False, setting: bool = False) -> Any:
    """A field with its option help; ``model_config`` marks the ones passed to
    ``Wav2Vec2Config`` under the same name (the dropouts and masking); ``setting`` the ones
    that say how training runs, not what it learns: they are left out of a run's identity, so
    ``--resume`` with another value is not refused."""
    meta = {"help": help, "model_config": model_config, "setting": setting}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter the notebook varied; all of them land in the run's config.json."""

    epochs: float = hparam(10.0, "Training epochs.")
    max_steps: int = hparam(-1, "Stop after N steps; -1: the epochs decide.")
    learning_rate: float = hparam(5e-4, "Peak learning rate.")
    weight_decay: float = hparam(0.005, "AdamW weight decay.")
    warmup_steps: int = hparam(20, "Linear warm-up steps.")
    batch_size: int = hparam(8, "Per-device batch (times --grad-accum: the effective batch).")
    grad_accum: int = hparam(1, "Gradient accumulation steps.")
    device_batch: int = hparam(
        0,
        "Clips a device runs at once; accumulation makes up --batch-size x --grad-accum, so "
        "the effective batch and the learning rate stay; 0: --batch-size.",
        setting=True,
    )
    gradient_checkpointing: bool = hparam(False, "Recompute activations to save memory.")
    eval_steps: int = hparam(0, "Evaluate every N steps; 0: no evaluation.")
    save_steps: int = hparam(100, "Checkpoint every N steps (what --resume continues from).")
    save_total_limit: int = hparam(
        2,
        "Keep the N newest checkpoints (each holds the model and its AdamW state).",
        setting=True,
    )
    save_minutes: float = hparam(
        0.0, "Also checkpoint every N minutes of training; 0: off.", setting=True
    )
    dataloader_workers: int = hparam(
        0,
        "Processes that load and pad training batches; 0: the main process does it.",
        setting=True,
    )
    logging_steps: int = hparam(10, "Log the loss every N steps.")
    mask_time_prob: float = hparam(0.05, "SpecAugment time-mask probability.", model_config=True)
    layerdrop: float = hparam(0.0, "Transformer layer drop probability.", model_config=True)
    hidden_dropout: float = hparam(0.0, "Hidden-layer dropout.", model_config=True)
    attention_dropout: float = hparam(0.0, "Attention dropout.", model_config=True)
    activation_dropout: float = hparam(0.0, "Feed-forward activation dropout.", model_config=True)
    feat_proj_dropout: float = hparam(0.0, "Feature projection dropout.", model_config=True)
    final_dropout: float = hparam(0.0, "Dropout before the CTC head.", model_config=True)
    seed: int = hparam(0, "Seed of training and of the training subset's draw.")
    freeze_feature_encoder: bool = hparam(True, "Keep the convolutional front end frozen.")

    def __post_init__(self) -> None:
        """The same limits wherever a configuration comes from (the command line, --config, a
        study file, the API), so none of them can start a run that the others refuse."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise AsrfairError(f"{f.name} must be a finite number, not {value!r}")
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise AsrfairError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in NOT_NEGATIVE:
            if getattr(self, name) < 0:
                raise AsrfairError(f"{name} must be 0 or more, not {getattr(self, name)!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise AsrfairError(f"max_steps must be positive, or -1, not {self.max_steps!r}")
        for name in self.model_config():
            if not 0.0 <= getattr(self, name) < 1.0:
                raise AsrfairError(f"{name} must be in [0, 1), not {getattr(self, name)!r}")
        self.device_split()  # a device batch that does not divide the effective batch

    def device_split(self) -> tuple[int, int]:
        """(clips a device runs at once, accumulation steps): ``device_batch`` clips at a time,
        accumulated up to the effective batch ``batch_size x grad_accum``.

        The learning-rate rule: the effective batch (per process) is kept exactly, so the
        learning rate needs no change; the sampler groups lengths by the effective batch, so
        the clips of each optimiser step are the same. Only SpecAugment's random masks are
        drawn per device batch, so the numbers differ as they do between two devices.
        """
        effective = self.batch_size * self.grad_accum
        device = self.device_batch or self.batch_size
        if effective % device:
            raise AsrfairError(
                f"device_batch {device} must divide the effective batch, batch_size x "
                f"grad_accum = {effective}; use one of {_divisors(effective)}"
            )
        return device, effective // device

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """What decides the trained model: every field but the run settings."""
        return without_settings(asdict(self))

    def settings(self) -> dict[str, Any]:
        """How training runs (``setting=True`` fields): recorded, never compared."""
        return {k: v for k, v in asdict(self).items() if k in SETTINGS}

    def model_config(self) -> dict[str, Any]:
        """The fields that override the checkpoint's ``Wav2Vec2Config``, by their own names."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["model_config"]}


SETTINGS = tuple(f.name for f in fields(TrainConfig) if f.metadata["setting"])


def without_settings(train: dict[str, Any]) -> dict[str, Any]:
    """A ``train`` table without its run settings: the part of a run's identity it holds (a
    config.json written before they were settings stored them there too)."""
    return {k: v for k, v in train.items() if k not in SETTINGS}


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)
