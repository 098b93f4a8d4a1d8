"""The infer stage: batched, length-sorted, resumable transcription, greedy CTC decoding or a
sequence-to-sequence model's ``generate`` (Whisper...).

The notebook moved the model to the GPU for every utterance and ran them one at
a time. Here clips are sorted by length and packed into batches of at most
``batch_seconds`` of padded audio, so little compute is spent on padding, and
every finished batch is appended to ``predictions.jsonl`` at once: a killed run
resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrfair.audio import TARGET_RATE, load_clip
from asrfair.console import progress_bar
from asrfair.errors import AsrfairError
from asrfair.files import is_out_of_space, out_of_space
from asrfair.runs import done_ids, drop_partial_line


@dataclass(frozen=True)
class Clip:
    id: str
    cache: str
    n_samples: int


def plan_batches(clips: Sequence[Clip], batch_seconds: float) -> list[list[Clip]]:
    """Longest first (an out-of-memory error shows up at once), each batch's padded size capped."""
    budget = batch_seconds * TARGET_RATE
    batches: list[list[Clip]] = []
    current: list[Clip] = []
    for clip in sorted(clips, key=lambda c: (-c.n_samples, c.id)):
        longest = current[0].n_samples if current else clip.n_samples
        if current and longest * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(clip)
    if current:
        batches.append(current)
    return batches


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AsrfairError(f"--device {device}: no CUDA device is visible; use --device cpu")
    return torch.device(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 (or fp16) autocast on CUDA; plain fp32 on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def precision_context(
    device: torch.device, mixed_precision: bool
) -> contextlib.AbstractContextManager[Any]:
    """Both kinds of model run under the same rule: autocast on CUDA unless told fp32."""
    return autocast(device) if mixed_precision else contextlib.nullcontext()


def pad_and_normalise(
    waves: Sequence[np.ndarray], *, normalise: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded batch and its mask, each clip scaled to zero mean and unit variance.

    The same arithmetic as ``Wav2Vec2FeatureExtractor`` (variance + 1e-7, padding left at 0),
    done once on the whole batch instead of clip by clip in Python.
    """
    lengths = torch.tensor([len(w) for w in waves])
    padded = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for row, wave in enumerate(waves):  # copies out of the read-only memory-mapped cache
        padded[row, : len(wave)] = wave
    batch = torch.from_numpy(padded)
    mask = torch.arange(batch.shape[1])[None, :] < lengths[:, None]
    if normalise:
        n = lengths[:, None].to(torch.float64)
        values = batch.to(torch.float64)
        mean = values.sum(dim=1, keepdim=True) / n
        var = (((values - mean) * mask) ** 2).sum(dim=1, keepdim=True) / n
        batch = (((values - mean) / torch.sqrt(var + 1e-7)) * mask).to(torch.float32)
    return batch, mask.to(torch.int32)


class GreedyDecoder:
    """Greedy CTC decoding of a whole batch: collapse repeats, drop blanks, map ids to text.

    Frames past each clip's own length are ignored, so padding never adds characters.
    """

    def __init__(self, tokenizer: Any) -> None:
        vocab: dict[str, int] = tokenizer.get_vocab()
        delimiter = tokenizer.word_delimiter_token
        self.table = [""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            self.table[index] = " " if token == delimiter else token
        self.blank = int(tokenizer.pad_token_id)

    def __call__(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        changed = torch.ones_like(ids, dtype=torch.bool)
        changed[:, 1:] = ids[:, 1:] != ids[:, :-1]
        inside = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        keep = changed & (ids != self.blank) & inside
        texts = []
        for row, row_keep in zip(ids.tolist(), keep.tolist(), strict=True):
            text = "".join(self.table[i] for i, k in zip(row, row_keep, strict=True) if k)
            texts.append(" ".join(text.split()))
        return texts


class Transcriber:
    """A model and its processor on one device, turning batches of cached clips into text."""

    def __init__(
        self, model: Any, processor: Any, device: torch.device, *, mixed_precision: bool = True
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.mixed_precision = mixed_precision
        self.attention_mask = bool(processor.feature_extractor.return_attention_mask)
        self.normalise = bool(processor.feature_extractor.do_normalize)
        self.decode = GreedyDecoder(processor.tokenizer)

    def __call__(self, waves: Sequence[np.ndarray]) -> list[str]:
        values, mask = pad_and_normalise(waves, normalise=self.normalise)
        inputs = {"input_values": values.to(self.device)}
        if self.attention_mask:  # layer-norm checkpoints; group-norm ones must not see a mask
            inputs["attention_mask"] = mask.to(self.device)
        with torch.inference_mode(), precision_context(self.device, self.mixed_precision):
            logits = self.model(**inputs).logits
        frames = self.model._get_feat_extract_output_lengths(mask.sum(dim=1))
        return self.decode(logits.argmax(dim=-1).cpu(), frames.cpu())


class Seq2SeqTranscriber:
    """An encoder-decoder model (Whisper...) and its processor on one device: the checkpoint's
    own feature extractor, then one batched ``generate`` per batch with the given keywords
    (``language``, ``task``, ``max_new_tokens``); special tokens are dropped from the text.

    Whisper pads every clip to its 30 s window, so a batch's result does not depend on which
    clips share it; the length sort still groups transcripts of similar length.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: torch.device,
        generate: dict[str, Any] | None = None,
        *,
        mixed_precision: bool = True,
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.generate = dict(generate or {})
        self.mixed_precision = mixed_precision

    def __call__(self, waves: Sequence[np.ndarray]) -> list[str]:
        features = self.processor.feature_extractor(
            [np.asarray(w) for w in waves],
            sampling_rate=TARGET_RATE,
            return_attention_mask=True,
            return_tensors="pt",
        )
        inputs = {name: value.to(self.device) for name, value in features.items()}
        with torch.inference_mode(), precision_context(self.device, self.mixed_precision):
            ids = self.model.generate(**inputs, **self.generate)
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


def _with_oom_halving(
    transcribe: Callable[[Sequence[np.ndarray]], list[str]], waves: list[np.ndarray]
) -> list[str]:
    """A CUDA out-of-memory error splits the batch in two and carries on."""
    try:
        return transcribe(waves)
    except torch.cuda.OutOfMemoryError:
        if len(waves) == 1:
            raise AsrfairError(
                "one clip alone does not fit in GPU memory; lower --max-seconds"
            ) from None
        torch.cuda.empty_cache()
        half = len(waves) // 2
        return _with_oom_halving(transcribe, waves[:half]) + _with_oom_halving(
            transcribe, waves[half:]
        )


def transcribe_to_file(
    transcribe: Callable[[Sequence[np.ndarray]], list[str]],
    clips: Sequence[Clip],
    out: Path,
    *,
    batch_seconds: float = 60.0,
    extra: Callable[[str, str], dict[str, Any]] | None = None,
    shard: tuple[int, int] = (0, 1),
    done: set[str] | None = None,
    progress: bool = True,
) -> int:
    """Append one JSON line per clip to ``out``, skipping clips already there (or in ``done``,
    the ids finished in any file of the run).

    ``shard=(rank, world)`` takes every world-th batch of one plan made over all of ``clips``,
    the same on every rank whatever each has finished, so that the ranks' shares stay
    disjoint and cover every clip across a resume with another world size; finished clips are
    then left out of each batch. ``extra(id, hyp)`` adds fields to each line (speaker, groups,
    reference, counts). Returns how many clips were transcribed now.
    """
    finished = done_ids(out) | (done or set())
    mine = plan_batches(list(clips), batch_seconds)[shard[0] :: shard[1]]
    batches = [b for b in ([c for c in batch if c.id not in finished] for batch in mine) if b]
    drop_partial_line(out)
    written = 0
    try:
        with (
            progress_bar("transcribing", enabled=progress) as bar,
            out.open("a", encoding="utf-8") as handle,
        ):
            task = bar.add_task("infer", total=sum(len(b) for b in batches))
            for batch in batches:
                texts = _with_oom_halving(transcribe, [load_clip(c.cache) for c in batch])
                lines = "".join(
                    json.dumps(
                        {"id": clip.id, "hyp": text, **(extra(clip.id, text) if extra else {})},
                        ensure_ascii=False,
                    )
                    + "\n"
                    for clip, text in zip(batch, texts, strict=True)
                )
                handle.write(lines)
                handle.flush()
                written += len(batch)
                bar.advance(task, len(batch))
    except OSError as exc:
        if not is_out_of_space(exc):
            raise
        drop_partial_line(out)
        raise out_of_space(
            out, f"the {len(done_ids(out)):,} finished predictions are kept; add --resume"
        ) from None
    return written
