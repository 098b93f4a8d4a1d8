"""Training throughput of asrfair's train stage, in audio-seconds per second.

    .venv/bin/python benchmarks/bench_train.py [--size demo|tiny|large] [--steps 30]

Runs ``train.fine_tune`` (transformers.Trainer, group_by_length, feature encoder frozen,
precision chosen for the device) for a fixed number of steps on synthetic cached clips of 1-6 s
and reports the audio seconds processed per second of wall time (after one warm-up step).
Run by hand; results go in benchmarks/RESULTS.md with the device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_infer import describe, make_model

from asrfair.audio import write_clip
from asrfair.hparams import TrainConfig
from asrfair.train import fine_tune, precision, training_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, processor = make_model(args.size, root / "model")
        lengths, paths = [], []
        for i, seconds in enumerate(rng.uniform(1, 6, 256)):
            wave = (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
            paths.append(write_clip(root / f"{i}.i16", wave))
            lengths.append(len(wave))
        texts = ["le chat dort sur le canapé"] * len(paths)
        table = training_table(paths, lengths, texts, processor)
        cfg = TrainConfig(
            max_steps=args.steps,
            batch_size=args.batch_size,
            save_steps=10_000,
            logging_steps=10_000,
            warmup_steps=0,
        )
        start = time.perf_counter()
        result = fine_tune(
            model,
            processor,
            table,
            cfg,
            work_dir=root / "w",
            model_dir=root / "m",
            device=args.device,
        )
        elapsed = time.perf_counter() - start
    audio_s = args.steps * args.batch_size * float(np.mean(lengths)) / 16_000
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    mean_s = np.mean(lengths) / 16_000
    print(
        f"device: {describe(device)}; model: {args.size}; precision: {precision(args.device)}; "
        f"{result.steps} steps of {args.batch_size} clips (mean {mean_s:.1f} s)"
    )
    rate = audio_s / elapsed
    print(f"training: {rate:,.0f} audio-s/s ({elapsed:.1f} s wall, with Trainer start-up)")


if __name__ == "__main__":
    main()
