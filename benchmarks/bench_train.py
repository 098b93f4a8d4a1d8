"""Training throughput of asrfair's train stage, in audio-seconds per second.

    .venv/bin/python benchmarks/bench_train.py [--size demo|tiny|large] [--steps 30]

Runs ``train.fine_tune`` (transformers.Trainer, group_by_length, feature encoder frozen,
precision chosen for the device) for a fixed number of steps on synthetic cached clips of 1-6 s
and reports the audio seconds per second of the steady-state steps only: the Trainer's start-up,
the first ``--warmup`` steps and the saves are left out. The one checkpoint, written after the
last step, is timed and sized on its own line. Run by hand; results go in
benchmarks/RESULTS.md with the device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_infer import describe, make_model

from asrfair.audio import write_clip
from asrfair.hparams import TrainConfig
from asrfair.train import fine_tune, precision, training_table


def step_clock() -> Any:
    """A Trainer callback that notes when each step ends and how long the checkpoint took, so
    start-up, warm-up and saving can be told apart from training itself."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_ends: list[float] = []
            self.save_seconds: float | None = None
            self.save_bytes = 0

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_ends.append(time.perf_counter())

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.save_seconds = time.perf_counter() - self.step_ends[-1]
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.save_bytes = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    return StepClock()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "demo", "large"], default="demo")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must be more than --warmup")
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
            save_steps=args.steps,  # one checkpoint, after the last step: timed apart
            logging_steps=10_000,
            warmup_steps=0,
        )
        clock = step_clock()
        result = fine_tune(
            model,
            processor,
            table,
            cfg,
            work_dir=root / "w",
            model_dir=root / "m",
            device=args.device,
            extra_callbacks=[clock],
        )
    timed = args.steps - args.warmup
    elapsed = clock.step_ends[-1] - clock.step_ends[args.warmup - 1]
    audio_s = timed * args.batch_size * float(np.mean(lengths)) / 16_000
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    mean_s = np.mean(lengths) / 16_000
    print(
        f"device: {describe(device)}; model: {args.size}; precision: {precision(args.device)}; "
        f"{result.steps} steps of {args.batch_size} clips (mean {mean_s:.1f} s)"
    )
    print(
        f"training: {audio_s / elapsed:,.0f} audio-s/s (steps {args.warmup + 1}-{args.steps}: "
        f"{elapsed:.1f} s, {1000 * elapsed / timed:.0f} ms per step)"
    )
    print(f"checkpoint: {clock.save_seconds:.2f} s for {clock.save_bytes / 1e6:,.1f} MB")


if __name__ == "__main__":
    main()
