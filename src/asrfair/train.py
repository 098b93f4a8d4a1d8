"""The train stage: fine-tune a CTC checkpoint (any ``AutoModelForCTC`` that reads waveforms:
wav2vec2, XLS-R, MMS with a language adapter, HuBERT, WavLM, Data2Vec-audio) with
``transformers.Trainer``.

Waveforms stay in the memory-mapped audio cache; the training set is a small
Arrow table of (cache path, length, labels) and the collator loads, normalises
and pads each batch. That keeps memory bounded and lets ``group_by_length`` use
the stored length column instead of reading every clip at start-up.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from asrfair import files
from asrfair.audio import TARGET_RATE, load_clip
from asrfair.console import progress_bar, stderr
from asrfair.errors import AsrfairError
from asrfair.hparams import TrainConfig
from asrfair.models import apply_adapter, model_load_error, read_vocab_file
from asrfair.split import speaker_split

PAD, UNK, DELIMITER = "[PAD]", "[UNK]", "|"
EVAL_FRACTION = 0.1  # of the subset's utterances, in whole speakers, at least one per group


# --- vocabulary and processor ------------------------------------------------------------------
def build_vocab(sentences: Sequence[str]) -> dict[str, int]:
    """Characters of the normalised text, ``|`` for spaces, then ``[UNK]`` and ``[PAD]`` (blank)."""
    chars = sorted({ch for text in sentences for ch in text} - {" "})
    vocab = {ch: i for i, ch in enumerate([DELIMITER, *chars])}
    vocab[UNK] = len(vocab)
    vocab[PAD] = len(vocab)
    return vocab


def checkpoint_vocab(model: str, adapter: str = "") -> dict[str, int] | None:
    """The vocabulary saved beside a local checkpoint, if there is one; an MMS checkpoint keeps
    one per language, and ``adapter`` picks it."""
    vocab = read_vocab_file(model)
    if vocab is not None and adapter in vocab and isinstance(vocab[adapter], dict):
        vocab = vocab[adapter]
    if vocab is None or not all(isinstance(v, int) for v in vocab.values()):
        return None
    return vocab


def choose_vocab(
    model: str, sentences: Sequence[str], adapter: str = ""
) -> tuple[dict[str, int], bool]:
    """The checkpoint's vocabulary when it covers the corpus (its CTC head stays); else a new one.

    Returns the vocabulary and whether the CTC head must be re-initialised.
    """
    needed = build_vocab(sentences)
    existing = checkpoint_vocab(model, adapter)
    if existing is not None and set(needed) <= set(existing):
        return existing, False
    return needed, True


def make_processor(
    vocab: dict[str, int], folder: Path, feat_extract_norm: str, extractor: Any = None
) -> Any:
    """Tokenizer for ``vocab`` + the checkpoint's own feature extractor when it has one (its
    normalisation and mask are what it was trained with); otherwise one whose attention mask
    follows ``feat_extract_norm``.

    Checkpoints with group norm in the feature encoder (wav2vec2-base) must not see an
    attention mask; those with layer norm (large, XLS-R) need one.
    """
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    files.write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token=UNK, pad_token=PAD, word_delimiter_token=DELIMITER
    )
    if extractor is None:
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=TARGET_RATE,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=feat_extract_norm == "layer",
        )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def training_processor(model: str, vocab: dict[str, int], folder: Path, config: Any) -> Any:
    """The processor a fine-tuning run trains and saves: ``vocab``'s tokenizer and the
    checkpoint's feature extractor, or, for a checkpoint saved without one, a waveform
    extractor chosen by ``feat_extract_norm`` (Data2Vec-audio has none: layer norm)."""
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(model)
    except Exception:  # no preprocessor_config.json: the config's norm decides
        extractor = None
    if extractor is not None and not hasattr(extractor, "do_normalize"):
        extractor = None  # not a waveform extractor; the CTC collator pads raw audio
    norm = str(getattr(config, "feat_extract_norm", "layer"))
    return make_processor(vocab, folder, norm, extractor)


def unknown_characters(processor: Any, sentences: Sequence[str]) -> dict[str, int]:
    """Characters the vocabulary lacks, with counts; they are read as ``[UNK]``."""
    vocab = set(processor.tokenizer.get_vocab())
    counts: dict[str, int] = {}
    for text in sentences:
        for ch in text:
            if ch != " " and ch not in vocab:
                counts[ch] = counts.get(ch, 0) + 1
    return counts


# --- model -------------------------------------------------------------------------------------
def load_model(
    model: str, vocab: dict[str, int], cfg: TrainConfig, *, reinit_head: bool, adapter: str = ""
) -> Any:
    """Any waveform CTC checkpoint (``AutoModelForCTC``), with our regularisation, its MMS
    language adapter if one is named, and, if needed, a new CTC head."""
    from transformers import AutoConfig, AutoModelForCTC

    overrides: dict[str, Any] = {
        **cfg.model_config(),
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
        "pad_token_id": vocab[PAD],
        "vocab_size": len(vocab),
    }
    try:
        config = AutoConfig.from_pretrained(model, **overrides)
        net = AutoModelForCTC.from_pretrained(model, config=config, ignore_mismatched_sizes=True)
    except Exception as exc:
        raise model_load_error(model, exc) from None
    apply_adapter(net, adapter, model)  # its head is the language's, sized by its vocabulary
    if reinit_head or net.lm_head.out_features != len(vocab):
        fresh_head(net, len(vocab), cfg.seed)  # different output units
    return net


def fresh_head(net: Any, size: int, seed: int) -> None:
    """A newly initialised CTC head of ``size`` outputs, drawn from ``seed``."""
    torch.manual_seed(seed)
    if net.lm_head.out_features == size:
        net.lm_head.reset_parameters()
        return
    old = net.lm_head
    net.lm_head = torch.nn.Linear(old.in_features, size, device=old.weight.device)
    net.config.vocab_size = size


# --- data --------------------------------------------------------------------------------------
@dataclass
class CTCCollator:
    """Loads each clip from the cache, normalises and pads it; label padding becomes -100."""

    processor: Any
    attention_mask: bool

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        waves = [load_clip(f["cache"]) for f in features]
        batch = self.processor.feature_extractor(
            [np.asarray(w) for w in waves],
            sampling_rate=TARGET_RATE,
            padding=True,
            return_attention_mask=self.attention_mask,
            return_tensors="pt",
        )
        labels = self.processor.tokenizer.pad(
            {"input_ids": [f["labels"] for f in features]}, padding=True, return_tensors="pt"
        )
        ids = labels["input_ids"].masked_fill(labels["attention_mask"].ne(1), -100)
        out: dict[str, torch.Tensor] = {"input_values": batch["input_values"], "labels": ids}
        if self.attention_mask:
            out["attention_mask"] = batch["attention_mask"]
        return out


def training_table(
    cache: Iterable[str], lengths: Iterable[int], sentences: Iterable[str], processor: Any
) -> Any:
    """An Arrow table of cache paths, stored lengths (for group_by_length) and label ids."""
    import datasets

    labels = [processor.tokenizer(text).input_ids for text in sentences]
    return datasets.Dataset.from_dict(
        {"cache": list(cache), "length": [int(n) for n in lengths], "labels": labels}
    )


def hold_out(
    subset: pd.DataFrame, groupings: Sequence[str], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the training subset into (train, eval) by whole speakers, per group.

    Only for ``--eval-steps``: the log then shows per-group WER on speakers the model does not
    train on. It never touches the test split, so the audit's results stay comparable.
    """
    side = speaker_split(
        subset, test_fraction=EVAL_FRACTION, seed=seed, stratify=list(groupings)
    ).side
    held = subset["id"].map(side).eq("test").to_numpy()
    if not held.any():
        raise AsrfairError(
            "--eval-steps: the training subset has too few speakers per group to hold out an "
            "eval set; use --eval-steps 0 or a larger subset"
        )
    return subset[~held], subset[held]


# --- training ----------------------------------------------------------------------------------
def precision(device: str) -> str:
    """``bf16`` where the GPU has it, ``fp16`` on other CUDA devices, ``fp32`` on CPU."""
    if device == "cpu" or not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def training_arguments(cfg: TrainConfig, output_dir: Path, device: str) -> Any:
    """The Trainer's arguments from ``cfg``, in one place so a test can check each choice."""
    from transformers import TrainingArguments

    dtype = precision(device)
    per_device, accumulation = cfg.device_split()
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        activation_checkpointing=cfg.gradient_checkpointing,
        eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must reach our guard, not be averaged away
        seed=cfg.seed,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=cfg.dataloader_workers,
        # a dropped layer leaves its parameters without gradients; otherwise DDP need not search
        ddp_find_unused_parameters=cfg.layerdrop > 0,
        bf16=dtype == "bf16",
        fp16=dtype == "fp16",
        use_cpu=dtype == "fp32",
    )


def _callbacks() -> list[Any]:
    from transformers import TrainerCallback

    class GuardAndShow(TrainerCallback):
        """A rich progress bar with the loss, and a stop when the loss turns NaN."""

        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task: Any = None
            self.nan_step: int | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                self.progress = progress_bar("training", extra="{task.fields[loss]}")
                self.progress.start()
                self.task = self.progress.add_task("train", total=state.max_steps, loss="")
                self.progress.update(self.task, completed=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            line = eval_line(logs, state.global_step)
            if line and state.is_world_process_zero:
                console = self.progress.console if self.progress else stderr()
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            loss = logs.get("loss")
            if loss is None:
                return
            if not math.isfinite(float(loss)) or not math.isfinite(float(logs.get("grad_norm", 0))):
                self.nan_step = state.global_step
                control.should_training_stop = True
                control.should_save = False
            elif self.progress is not None:
                self.progress.update(self.task, loss=f"loss {float(loss):.3f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                self.progress.stop()

    return [GuardAndShow()]


def timed_saves(minutes: float, clock: Callable[[], float] = time.monotonic) -> list[Any]:
    """A callback that asks for a checkpoint once ``minutes`` have passed since the last one
    (none when 0): at scale a step count says little about how much work a crash would lose."""
    from transformers import TrainerCallback

    if minutes <= 0:
        return []

    class SaveEveryMinutes(TrainerCallback):
        def __init__(self) -> None:
            self.last = clock()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = clock()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if clock() - self.last >= 60 * minutes:
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.last = clock()

    return [SaveEveryMinutes()]


def eval_line(logs: dict[str, Any], step: int) -> str | None:
    """One line per evaluation from GroupWER's logged keys: the per-group WERs and each gap,
    so a run's console shows whether fine-tuning closes or widens the gap as it goes."""
    if "eval_wer" not in logs:
        return None
    parts = [f"step {step}: eval WER {100 * logs['eval_wer']:.1f}%"]
    for key, value in logs.items():
        if key.startswith("eval_wer_"):
            parts.append(f"{key.removeprefix('eval_wer_')} {100 * value:.1f}%")
        elif key.startswith("eval_gap_"):
            parts.append(f"gap {key.removeprefix('eval_gap_')} {100 * value:.1f} pts")
    return " · ".join(parts)


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    seconds: float
    log: list[dict[str, Any]] = field(default_factory=list)


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    found: str | None = get_last_checkpoint(str(output_dir))
    return found


def fine_tune(
    net: Any,
    processor: Any,
    train_set: Any,
    cfg: TrainConfig,
    *,
    work_dir: Path,
    model_dir: Path,
    device: str = "auto",
    is_main: bool = True,
    eval_set: Any = None,
    compute_metrics: Any = None,
    extra_callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train, resuming from the last checkpoint in ``work_dir``; save the model to ``model_dir``.

    With ``cfg.eval_steps``, ``eval_set`` is scored every that many steps by
    ``compute_metrics`` (asrfair.hf.GroupWER in an audit), and each result is printed.
    ``extra_callbacks`` watch the Trainer too (the training benchmark times steps with one).
    """
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    if len(train_set) < cfg.batch_size:
        raise AsrfairError(
            f"the training subset has {len(train_set)} utterance(s), fewer than one batch "
            f"(--batch-size {cfg.batch_size}); choose a larger subset or a smaller batch"
        )
    if cfg.eval_steps and eval_set is None:
        raise AsrfairError(f"--eval-steps {cfg.eval_steps}: no eval set was given to evaluate")
    if cfg.freeze_feature_encoder:  # the conv front end keeps its pre-trained filters
        net.freeze_feature_encoder()
    attention_mask = bool(processor.feature_extractor.return_attention_mask)
    callbacks = [*_callbacks(), *timed_saves(cfg.save_minutes), *extra_callbacks]
    trainer = Trainer(
        model=net,
        args=training_arguments(cfg, work_dir, device),
        train_dataset=train_set,
        eval_dataset=eval_set if cfg.eval_steps else None,
        compute_metrics=compute_metrics if cfg.eval_steps else None,
        data_collator=CTCCollator(processor, attention_mask),
        processing_class=processor.feature_extractor,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the rich bar shows progress and loss instead
    start = time.perf_counter()
    resume_from = last_checkpoint(work_dir)
    if resume_from and is_main:  # a resumed run says where it took up, not only that it ran
        stderr().print(
            f"resuming training from {resume_from}", markup=False, highlight=False, soft_wrap=True
        )
    trainer.train(resume_from_checkpoint=resume_from)
    guard = callbacks[0]
    if guard.nan_step is not None:
        kept = last_checkpoint(work_dir)
        raise AsrfairError(
            f"training loss became NaN at step {guard.nan_step}; stopped. Last good checkpoint: "
            f"{kept or 'none yet'}. Lower --learning-rate or raise --warmup-steps"
        )
    if is_main:
        trainer.save_model(str(model_dir))
        processor.save_pretrained(str(model_dir))
        for checkpoint in work_dir.glob("checkpoint-*"):  # finished: only model_dir is needed
            shutil.rmtree(checkpoint, ignore_errors=True)
        if work_dir.is_dir() and not any(work_dir.iterdir()):
            work_dir.rmdir()
    return TrainResult(
        model_dir, trainer.state.global_step, time.perf_counter() - start, trainer.state.log_history
    )
