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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


def reduced_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision a device runs inference in: bf16 where the GPU has it, fp16 on
    other CUDA devices, none (fp32) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass(frozen=True)
class Precision:
    """How a model runs: the dtype of its weights (and inputs) and an autocast dtype, if any.

    bf16 weights halve the memory traffic of every layer and spare the cast ops autocast adds
    to each forward; fp16 keeps fp32 weights under autocast, because fp16 weights can overflow.
    """

    weights: torch.dtype = torch.float32
    autocast: torch.dtype | None = None

    def context(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast)


def precision_for(device: torch.device, mixed_precision: bool) -> Precision:
    """Both kinds of model run under the same rule: reduced precision on CUDA unless told fp32."""
    dtype = reduced_dtype(device) if mixed_precision else None
    if dtype == torch.bfloat16:
        return Precision(weights=torch.bfloat16)
    return Precision(autocast=dtype)


def place(model: Any, device: torch.device, precision: Precision) -> Any:
    """The model on ``device`` in inference mode, its weights cast to ``precision.weights``
    (in place: the caller's module is the one that runs)."""
    return model.to(device=device, dtype=precision.weights).eval()


@dataclass(frozen=True)
class PaddedBatch:
    """A batch as the loader's workers build it: raw samples zero-padded to the longest clip
    (float32, not normalised: that is done on the device) and each clip's length."""

    values: torch.Tensor  # [clips, samples]
    lengths: torch.Tensor  # [clips], int64

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def __getitem__(self, rows: slice) -> PaddedBatch:
        """Some rows, trimmed to their own longest clip (an out-of-memory split's halves)."""
        lengths = self.lengths[rows]
        longest = int(lengths.max()) if len(lengths) else 0
        return PaddedBatch(self.values[rows, :longest], lengths)

    def pin_memory(self) -> PaddedBatch:
        """Page-locked copies, so that the host-to-device copy can run asynchronously (the
        DataLoader calls this in its pinning thread)."""
        return PaddedBatch(self.values.pin_memory(), self.lengths.pin_memory())


def pad(waves: Sequence[np.ndarray]) -> PaddedBatch:
    """Zero-pad clips into one float32 batch; copies out of the read-only store."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.int64)
    padded = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for row, wave in enumerate(waves):
        padded[row, : len(wave)] = wave
    return PaddedBatch(torch.from_numpy(padded), lengths)


def as_list(waves: list[np.ndarray]) -> list[np.ndarray]:
    """The collate of models that take the waveforms themselves (Whisper's feature extractor)."""
    return waves


def mask_of(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """True over each clip's own samples, built on ``values``' device from the lengths."""
    return torch.arange(values.shape[1], device=values.device)[None, :] < lengths[:, None]


def normalise_batch(
    values: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip scaled to zero mean and unit variance over its own samples, padding left at 0,
    and the attention mask, both built where ``values`` lives (the GPU: no float64 pass over
    the batch on the CPU). The arithmetic of ``Wav2Vec2FeatureExtractor`` (variance + 1e-7),
    in the dtype of ``values`` (fp32)."""
    mask = mask_of(values, lengths)
    n = lengths[:, None].to(values.dtype)
    mean = values.sum(dim=1, keepdim=True) / n
    var = (((values - mean) * mask) ** 2).sum(dim=1, keepdim=True) / n
    return ((values - mean) / torch.sqrt(var + 1e-7)) * mask, mask


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
        kept = ids[keep].tolist()  # only the kept frames reach Python, row after row
        texts, start = [], 0
        for count in keep.sum(dim=1).tolist():
            text = "".join(self.table[i] for i in kept[start : start + count])
            texts.append(" ".join(text.split()))
            start += count
        return texts


@dataclass
class Pending:
    """A batch whose forward pass was queued: its token ids (on their way to the host) and
    frame counts; ``finish`` waits for the copy and decodes."""

    ids: torch.Tensor
    frames: torch.Tensor
    copied: torch.cuda.Event | None = None


class Transcriber:
    """A CTC model and its processor on one device, turning batches of cached clips into text.

    The work is split so that it can overlap: ``collate`` pads clips (in the loader's
    workers), ``start`` copies a batch to the device, normalises it and builds its mask there,
    runs the forward pass and the argmax and queues the copy of the ids alone to the host;
    ``finish`` waits for that copy and decodes. Calling the transcriber does all three.
    """

    collate = staticmethod(pad)

    def __init__(
        self, model: Any, processor: Any, device: torch.device, *, mixed_precision: bool = True
    ) -> None:
        self.precision = precision_for(device, mixed_precision)
        self.model = place(model, device, self.precision)
        self.processor = processor
        self.device = device
        self.attention_mask = bool(processor.feature_extractor.return_attention_mask)
        self.normalise = bool(processor.feature_extractor.do_normalize)
        self.decode = GreedyDecoder(processor.tokenizer)

    def __call__(self, waves: Sequence[np.ndarray]) -> list[str]:
        return self.finish(self.start(pad(waves)))

    def start(self, batch: PaddedBatch) -> Pending:
        cuda = self.device.type == "cuda"
        values = batch.values.to(self.device, non_blocking=cuda)
        lengths = batch.lengths.to(self.device, non_blocking=cuda)
        if self.normalise:
            values, mask = normalise_batch(values, lengths)
        else:
            mask = mask_of(values, lengths)
        inputs = {"input_values": values.to(self.precision.weights)}
        if self.attention_mask:  # layer-norm checkpoints; group-norm ones must not see a mask
            inputs["attention_mask"] = mask.to(torch.int32)
        with torch.inference_mode(), self.precision.context(self.device):
            ids = self.model(**inputs).logits.argmax(dim=-1).to(torch.int32)
        frames = self.model._get_feat_extract_output_lengths(batch.lengths)
        if not cuda:
            return Pending(ids, frames)
        host = torch.empty(ids.shape, dtype=ids.dtype, pin_memory=True)
        host.copy_(ids, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        return Pending(host, frames, copied)

    def finish(self, pending: Pending) -> list[str]:
        if pending.copied is not None:
            pending.copied.synchronize()
        return self.decode(pending.ids, pending.frames)


class Seq2SeqTranscriber:
    """An encoder-decoder model (Whisper...) and its processor on one device: the checkpoint's
    own feature extractor, then one batched ``generate`` per batch with the given keywords
    (``language``, ``task``, ``max_new_tokens``); special tokens are dropped from the text.

    Whisper pads every clip to its 30 s window, so a batch's result does not depend on which
    clips share it; the length sort still groups transcripts of similar length.
    """

    collate = staticmethod(as_list)

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: torch.device,
        generate: dict[str, Any] | None = None,
        *,
        mixed_precision: bool = True,
    ) -> None:
        self.precision = precision_for(device, mixed_precision)
        self.model = place(model, device, self.precision)
        self.processor = processor
        self.device = device
        self.generate = dict(generate or {})

    def __call__(self, waves: Sequence[np.ndarray]) -> list[str]:
        return self.finish(self.start(waves))

    def start(self, waves: Sequence[np.ndarray]) -> list[str]:
        features = self.processor.feature_extractor(
            [np.asarray(w) for w in waves],
            sampling_rate=TARGET_RATE,
            return_attention_mask=True,
            return_tensors="pt",
        )
        inputs = {
            name: value.to(self.device, self.precision.weights)
            if value.is_floating_point()
            else value.to(self.device)
            for name, value in features.items()
        }
        with torch.inference_mode(), self.precision.context(self.device):
            ids = self.model.generate(**inputs, **self.generate)
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]

    @staticmethod
    def finish(texts: list[str]) -> list[str]:
        return texts


@runtime_checkable
class BatchTranscriber(Protocol):
    """What ``transcribe_to_file`` drives: ``collate`` runs in the loader's workers (it must
    not touch the model), ``start`` queues a batch on the device, ``finish`` returns its text.
    A plain callable over a list of waveforms is wrapped as one (``Plain``)."""

    def collate(self, waves: list[np.ndarray]) -> Any: ...

    def start(self, batch: Any) -> Any: ...

    def finish(self, started: Any) -> list[str]: ...


class Plain:
    """A callable over waveforms as a ``BatchTranscriber`` (tests, simple models)."""

    collate = staticmethod(as_list)

    def __init__(self, transcribe: Callable[[Sequence[np.ndarray]], list[str]]) -> None:
        self.transcribe = transcribe

    def start(self, waves: list[np.ndarray]) -> list[str]:
        return self.transcribe(waves)

    @staticmethod
    def finish(texts: list[str]) -> list[str]:
        return texts


def start_with_oom_halving(transcriber: BatchTranscriber, batch: Any) -> list[Any]:
    """``transcriber.start(batch)``; a CUDA out-of-memory error splits the batch in two (each
    half trimmed to its own longest clip) and carries on. One started part per piece."""
    try:
        return [transcriber.start(batch)]
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise AsrfairError(
                "one clip alone does not fit in GPU memory; lower --max-seconds"
            ) from None
        torch.cuda.empty_cache()
        half = len(batch) // 2
        return start_with_oom_halving(transcriber, batch[:half]) + start_with_oom_halving(
            transcriber, batch[half:]
        )


@dataclass(frozen=True)
class _Failed:
    """A batch a loader worker could not load: the one-line reason, raised in the main process
    (a worker's own exception would reach the user wrapped in a traceback)."""

    reason: str


class _LoadBatches(torch.utils.data.Dataset[Any]):
    """Batch ``i`` of the plan, its clips read from the store and collated: the work a
    loader worker does while the device runs the batch before."""

    def __init__(self, batches: list[list[Clip]], collate: Callable[[list[np.ndarray]], Any]):
        self.batches = batches
        self.collate = collate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.collate([load_clip(c.cache) for c in self.batches[index]])
        except AsrfairError as exc:
            return _Failed(str(exc))


def default_workers(device: torch.device) -> int:
    """Loader workers when none are given: up to 4 on CUDA, where loading and padding the
    next batch on the host overlaps the forward pass; none on CPU, where the forward pass
    already uses every core and a worker only competes with it (benchmarks/RESULTS.md)."""
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


CPU_BATCH_SECONDS = 60.0
MAX_BATCH_SECONDS = 640.0  # the top of what the Open ASR leaderboard runs wav2vec2 with
MEMORY_SHARE = 0.5  # of the memory free once the model is loaded; the rest is headroom
ACTIVATION_COPIES = 4  # first conv's output, its norm, its activation, the next conv's input


def default_batch_seconds(transcriber: Any, device: torch.device) -> float:
    """Padded seconds per batch when none are given.

    On CPU, 60 (larger batches measured slower there: benchmarks/RESULTS.md). On CUDA, for a
    CTC model, half the free memory (``torch.cuda.mem_get_info``, read with the model already
    loaded) divided by the memory one padded second costs: 4 copies of the first
    convolution's output, ``conv_dim[0] x 16,000 / conv_stride[0]`` values a second, the
    largest activation of a forward pass; kept between 60 and 640 s. For wav2vec2-large in
    bf16 that is 13 MB a second, so any GPU with 9 GB free gets 320 s or more. Seq2seq
    models (a 30 s window a clip whatever its length) keep 60. An out-of-memory error still
    halves a batch, so the rule only has to be right in most cases.
    """
    config = getattr(getattr(transcriber, "model", None), "config", None)
    conv_dim, conv_stride = getattr(config, "conv_dim", None), getattr(config, "conv_stride", None)
    if device.type != "cuda" or not conv_dim or not conv_stride:
        return CPU_BATCH_SECONDS
    free, _total = torch.cuda.mem_get_info(device)
    weights = getattr(transcriber, "precision", Precision()).weights
    values_per_second = conv_dim[0] * TARGET_RATE / conv_stride[0]
    per_second = ACTIVATION_COPIES * values_per_second * torch.finfo(weights).bits / 8
    return float(min(MAX_BATCH_SECONDS, max(CPU_BATCH_SECONDS, MEMORY_SHARE * free / per_second)))


def batch_loader(
    batches: list[list[Clip]], collate: Callable[[list[np.ndarray]], Any], workers: int, pin: bool
) -> torch.utils.data.DataLoader[Any]:
    """The plan's batches in order (one loader item is one batch), loaded ahead by ``workers``
    processes, in page-locked memory when ``pin`` (CUDA) so their copies can be asynchronous."""
    return torch.utils.data.DataLoader(
        _LoadBatches(batches, collate),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=2 if workers else None,
    )


def transcribe_to_file(
    transcribe: BatchTranscriber | Callable[[Sequence[np.ndarray]], list[str]],
    clips: Sequence[Clip],
    out: Path,
    *,
    batch_seconds: float = 60.0,
    extra: Callable[[str, str], dict[str, Any]] | None = None,
    shard: tuple[int, int] = (0, 1),
    done: set[str] | None = None,
    progress: bool = True,
    workers: int = 0,
    postprocess: Callable[[str], str] | None = None,
) -> int:
    """Append one JSON line per clip to ``out``, skipping clips already there (or in ``done``,
    the ids finished in any file of the run).

    ``shard=(rank, world)`` takes every world-th batch of one plan made over all of ``clips``,
    the same on every rank whatever each has finished, so that the ranks' shares stay
    disjoint and cover every clip across a resume with another world size; finished clips are
    then left out of each batch. ``extra(id, hyp)`` adds fields to each line (speaker, groups,
    reference, counts); ``postprocess`` rewrites each transcript first (the text normaliser).

    ``workers`` loader processes read and pad the next batches while the device runs one, and
    a batch is decoded and written only after the next one is queued on the device, so that
    on a GPU neither the host's loading nor its decoding and JSON writing stalls it; a batch
    that fails (or is interrupted) still lets the one before it be written. Returns how many
    clips were transcribed now.
    """
    stages: BatchTranscriber = (
        transcribe if isinstance(transcribe, BatchTranscriber) else Plain(transcribe)
    )
    finished = done_ids(out) | (done or set())
    mine = plan_batches(list(clips), batch_seconds)[shard[0] :: shard[1]]
    batches = [b for b in ([c for c in batch if c.id not in finished] for batch in mine) if b]
    device = getattr(stages, "device", None)
    pin = isinstance(device, torch.device) and device.type == "cuda"
    drop_partial_line(out)
    written = 0
    try:
        with (
            progress_bar("transcribing", enabled=progress) as bar,
            out.open("a", encoding="utf-8") as handle,
        ):
            task = bar.add_task("infer", total=sum(len(b) for b in batches))

            def write(batch: list[Clip], started: list[Any]) -> None:
                nonlocal written
                texts = [text for part in started for text in stages.finish(part)]
                if postprocess is not None:
                    texts = [postprocess(text) for text in texts]
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

            queued: tuple[list[Clip], list[Any]] | None = None
            loader = batch_loader(batches, stages.collate, workers, pin)
            for batch, loaded in zip(batches, loader, strict=True):
                if isinstance(loaded, _Failed):
                    raise AsrfairError(loaded.reason)
                try:
                    started = start_with_oom_halving(stages, loaded)
                finally:  # the previous batch, while this one runs (or after it failed)
                    if queued is not None:
                        write(*queued)
                queued = (batch, started)
            if queued is not None:
                write(*queued)
    except OSError as exc:
        if not is_out_of_space(exc):
            raise
        drop_partial_line(out)
        raise out_of_space(
            out, f"the {len(done_ids(out)):,} finished predictions are kept; add --resume"
        ) from None
    return written
