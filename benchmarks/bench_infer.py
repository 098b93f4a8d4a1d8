"""Inference speed: the notebook's one-utterance-at-a-time loop against asrfair's batches.

    .venv/bin/python benchmarks/bench_infer.py [--clips 200] [--size demo|tiny|large]
    .venv/bin/python benchmarks/bench_infer.py --model-type whisper [--size tiny|large]

All paths run the same model on the same cached 16 kHz clips (made by the benchmark; 1-4 s by
default, the lengths the notebook kept, ``--shortest``/``--longest`` to change):
- notebook loop: for each clip, move the model to the device, run the processor on one
  waveform, forward it under ``no_grad``, decode;
- notebook recipe: the Hugging Face fine-tuning recipe's ``map_to_result`` over a
  ``datasets.Dataset`` of prepared input values, one example per call (what the notebook ran);
- asrfair: ``infer.transcribe_to_file``: sorted by length, batches capped by padded seconds,
  loaded by ``--infer-workers`` processes, ``inference_mode``, a bf16 model on CUDA (fp16
  autocast where bf16 is missing), one JSON line per clip.
Sizes: ``tiny`` is the unit tests' model, ``demo`` the bundled checkpoint's architecture, and
``large`` the wav2vec2-large architecture (315 M parameters) with random weights, for GPUs.

``--model-type whisper`` times a ``WhisperForConditionalGeneration`` instead: ``tiny`` is the
unit tests' model, ``large`` the whisper-large-v3 encoder and decoder (1.5 B parameters; the
tests' small tokenizer, so a small output layer) with random weights, for GPUs. Two paths: one
``generate`` per clip, and asrfair's ``Seq2SeqTranscriber`` through ``transcribe_to_file``
(sorted, batched, autocast on CUDA); both decode greedily to exactly ``--max-new-tokens``
tokens (random weights never write the end token), so the two do the same work.
Run by hand; results go in benchmarks/RESULTS.md with the device.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from asrfair.audio import write_clip
from asrfair.infer import (
    Clip,
    Seq2SeqTranscriber,
    Transcriber,
    default_batch_seconds,
    pick_device,
    transcribe_to_file,
)
from asrfair.train import build_vocab, make_processor

LETTERS = "abcdefghijklmnopqrstuvwxyzàâäçèéêëîïôœùûüÿ'"


def make_model(size: str, folder: Path) -> tuple[Any, Any]:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    vocab = build_vocab([LETTERS])
    processor = make_processor(vocab, folder, "layer")
    if size == "tiny":
        from conftest import make_tiny_model

        make_tiny_model(folder)
        return Wav2Vec2ForCTC.from_pretrained(str(folder)), processor
    if size == "demo":
        from train_demo_model import tiny_config

        config = tiny_config(vocab, 160, 4, 64)
    else:  # wav2vec2-large / XLS-R 300M architecture
        config = Wav2Vec2Config(
            vocab_size=len(vocab),
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    return Wav2Vec2ForCTC(config), processor  # type: ignore[arg-type]


def make_whisper(size: str, folder: Path) -> tuple[Any, Any]:
    """The unit tests' tiny Whisper, or the whisper-large-v3 shape around its tokenizer."""
    from transformers import (
        AutoModelForSpeechSeq2Seq,
        AutoProcessor,
        WhisperConfig,
        WhisperFeatureExtractor,
    )

    from conftest import make_tiny_whisper

    make_tiny_whisper(folder)
    processor = AutoProcessor.from_pretrained(folder)
    if size == "tiny":
        return AutoModelForSpeechSeq2Seq.from_pretrained(folder), processor
    large = {"d_model": 1280, "encoder_attention_heads": 20, "decoder_attention_heads": 20}
    large |= {"encoder_layers": 32, "decoder_layers": 32, "num_mel_bins": 128}
    large |= {"encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120, "max_target_positions": 448}
    config = WhisperConfig.from_pretrained(folder, **large, init_std=0.02)
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=128)
    model = AutoModelForSpeechSeq2Seq.from_config(config)
    model.generation_config = AutoModelForSpeechSeq2Seq.from_pretrained(folder).generation_config
    return model, processor


def whisper_loop(
    model: Any, processor: Any, waves: list[np.ndarray], device: torch.device, tokens: int
) -> float:
    """The usual first Whisper script: features, ``generate`` and decode, one clip at a time."""
    model = model.to(device).eval()
    start = time.perf_counter()
    for wave in waves:
        features = processor.feature_extractor(wave, sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(
                features.input_features.to(device), max_new_tokens=tokens, min_new_tokens=tokens
            )
        processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def notebook_loop(
    model: Any, processor: Any, waves: list[np.ndarray], device: torch.device
) -> float:
    """The notebook's inference: one utterance at a time, the model moved for each one."""
    start = time.perf_counter()
    for wave in waves:
        model = model.to(device)
        inputs = processor(wave, sampling_rate=16_000, return_tensors="pt").input_values
        with torch.no_grad():
            logits = model(inputs.to(device)).logits
        processor.batch_decode(torch.argmax(logits, dim=-1))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def notebook_map(
    model: Any, processor: Any, waves: list[np.ndarray], device: torch.device
) -> float:
    """The HF recipe the notebook followed: ``Dataset.map`` over prepared input values, one
    example per call, each tensor built from the Arrow row and moved to the device."""
    import datasets

    datasets.disable_progress_bars()
    normalised = processor(waves, sampling_rate=16_000).input_values  # prepared beforehand
    table = datasets.Dataset.from_dict({"input_values": [list(map(float, w)) for w in normalised]})

    def map_to_result(batch: dict[str, Any]) -> dict[str, Any]:
        with torch.no_grad():
            values = torch.tensor(batch["input_values"], device=device).unsqueeze(0)
            logits = model.to(device)(values).logits
        batch["pred_str"] = processor.batch_decode(torch.argmax(logits, dim=-1))[0]
        return batch

    start = time.perf_counter()
    table.map(map_to_result, remove_columns=["input_values"], load_from_cache_file=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def make_clips(
    root: Path, n: int, shortest: float = 1.0, longest: float = 4.0
) -> tuple[list[Clip], list[np.ndarray]]:
    """Random 16 kHz clips; by default 1-4 s, the range the notebook kept (it dropped > 4 s)."""
    rng = np.random.default_rng(0)
    clips, waves = [], []
    for i, seconds in enumerate(rng.uniform(shortest, longest, n)):
        wave = (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
        clips.append(Clip(str(i), write_clip(root / f"{i}.i16", wave), len(wave)))
        waves.append(wave)
    return clips, waves


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def timed_asrfair(
    transcriber: Any, clips: list[Clip], out: Path, args: argparse.Namespace, device: torch.device
) -> float:
    """asrfair's path: sorted batches appended to a predictions file, as an audit runs it."""
    start = time.perf_counter()
    transcribe_to_file(
        transcriber,
        clips,
        out,
        batch_seconds=args.batch_seconds,
        progress=False,
        workers=args.infer_workers,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def print_table(header: str, rows: list[tuple[str, float]], audio_s: float, n: int) -> None:
    """Seconds, audio-seconds per second and clips per second of each path, then the speed-ups
    of the last path (asrfair's) over each of the others."""
    print(header)
    print()
    print("| path | seconds | audio-s/s | clips/s |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {audio_s / seconds:,.0f} | {n / seconds:,.1f} |")
    ours = rows[-1][1]
    for name, seconds in rows[:-1]:
        print(f"| speed-up over the {name.split(' (')[0]} | {seconds / ours:.1f}x | | |")


def report(
    args: argparse.Namespace,
    model: Any,
    waves: list[np.ndarray],
    baselines: list[tuple[str, float]],
    ours_s: float,
    what: str,
    detail: str = "",
) -> None:
    """The table of one run: the device, model and clips, each baseline, then asrfair's path."""
    device = pick_device(args.device)
    audio_s = sum(len(w) for w in waves) / 16_000
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"
    precision = "fp32" if device.type != "cuda" or args.fp32 else mixed
    header = (
        f"device: {describe(device)}; model: {what} {args.size} ({n_params:.2f} M parameters"
        f"{detail}); "
        f"{args.clips} clips, {audio_s:.0f} s of audio"
    )
    ours = (
        f"asrfair batched, sorted ({precision}, {args.batch_seconds:g} s batches, "
        f"{args.infer_workers} loader workers)"
    )
    print_table(header, [*baselines, (ours, ours_s)], audio_s, args.clips)


def run_ctc(args: argparse.Namespace, root: Path, device: torch.device) -> None:
    model, processor = make_model(args.size, root / "model")
    clips, waves = make_clips(root, args.clips, args.shortest, args.longest)
    transcriber = Transcriber(model, processor, device, mixed_precision=not args.fp32)
    args.batch_seconds = args.batch_seconds or default_batch_seconds(transcriber, device)
    transcriber(waves[:2])  # warm-up, both paths
    notebook_loop(model, processor, waves[:2], device)
    loop_s = notebook_loop(model, processor, waves, device)
    map_s = notebook_map(model, processor, waves, device)
    ours_s = timed_asrfair(transcriber, clips, root / "p.jsonl", args, device)
    baselines = [
        ("notebook loop (fp32, one clip at a time)", loop_s),
        ("notebook recipe (fp32, Dataset.map, one clip at a time)", map_s),
    ]
    report(args, model, waves, baselines, ours_s, "CTC")


def run_whisper(args: argparse.Namespace, root: Path, device: torch.device) -> None:
    if args.size not in ("tiny", "large"):
        raise SystemExit(f"--size {args.size}: Whisper comes in tiny or large")
    model, processor = make_whisper(args.size, root / "model")
    clips, waves = make_clips(root, args.clips, args.shortest, args.longest)
    tokens = args.max_new_tokens
    fixed = {"max_new_tokens": tokens, "min_new_tokens": tokens}
    transcriber = Seq2SeqTranscriber(model, processor, device, fixed, mixed_precision=not args.fp32)
    args.batch_seconds = args.batch_seconds or default_batch_seconds(transcriber, device)
    transcriber(waves[:2])  # warm-up, both paths
    whisper_loop(model, processor, waves[:2], device, tokens)
    loop_s = whisper_loop(model, processor, waves, device, tokens)
    ours_s = timed_asrfair(transcriber, clips, root / "p.jsonl", args, device)
    baselines = [("generate loop (fp32, one clip at a time)", loop_s)]
    report(args, model, waves, baselines, ours_s, "Whisper", f", {tokens} tokens a clip")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-type", choices=["ctc", "whisper"], default="ctc")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--size", choices=["tiny", "demo", "large"], default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--batch-seconds", type=float, default=60.0, help="0: the device's default (audit's)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=24, help="Whisper: per clip")
    parser.add_argument("--fp32", action="store_true", help="fp32 on CUDA (no bf16 model)")
    parser.add_argument("--infer-workers", type=int, default=0, help="loader processes")
    parser.add_argument("--shortest", type=float, default=1.0, help="clip length range, seconds")
    parser.add_argument("--longest", type=float, default=4.0)
    args = parser.parse_args()
    args.size = args.size or ("demo" if args.model_type == "ctc" else "tiny")
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        run = run_ctc if args.model_type == "ctc" else run_whisper
        run(args, Path(tmp), device)


if __name__ == "__main__":
    main()
