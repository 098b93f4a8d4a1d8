"""Audio preparation speed: the notebook's decode + scipy.signal.resample against asrfair's stage.

    .venv/bin/python benchmarks/bench_audio.py [--clips 200]

The benchmark writes its own 48 kHz MP3 clips (mixed lengths 1-12 s, and a set of 5 s clips),
then times, on the same files:
- the notebook's path: soundfile decode, then ``scipy.signal.resample`` to 16 kHz (one core);
- asrfair's ``prepare_audio``: soundfile decode, downmix, soxr to 16 kHz, write to the cache
  (one worker, then every core), each with an empty cache.
Run by hand; results go in benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.signal
import soundfile as sf

from asrfair.audio import AudioSettings, prepare_audio

RATE = 48_000


def make_clips(folder: Path, lengths: np.ndarray, seed: int) -> pd.DataFrame:
    """Speech-like test signals: a wobbling harmonic tone with noise, as 48 kHz MP3."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, seconds in enumerate(lengths):
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        f0 = 120 + 40 * np.sin(2 * np.pi * 3 * t)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
        wave += 0.01 * rng.standard_normal(n)
        path = folder / f"clip{i:04d}.mp3"
        sf.write(path, wave.astype(np.float32), RATE, format="MP3")
        paths.append(str(path))
    return pd.DataFrame({"id": [f"c{i}" for i in range(len(paths))], "audio": paths})


def notebook_path(frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    for path in frame["audio"]:
        data, rate = sf.read(path, dtype="float32")
        scipy.signal.resample(data, int(len(data) * 16_000 / rate))
    return time.perf_counter() - start


def resampling_only(frame: pd.DataFrame) -> tuple[float, float]:
    """Seconds of scipy and of soxr on the same decoded arrays: the resampler alone."""
    import soxr

    decoded = [sf.read(path, dtype="float32")[0] for path in frame["audio"]]
    start = time.perf_counter()
    for data in decoded:
        scipy.signal.resample(data, int(len(data) * 16_000 / RATE))
    scipy_s = time.perf_counter() - start
    start = time.perf_counter()
    for data in decoded:
        soxr.resample(data, RATE, 16_000, quality="HQ")
    return scipy_s, time.perf_counter() - start


def decode_only(frame: pd.DataFrame) -> float:
    start = time.perf_counter()
    for path in frame["audio"]:
        sf.read(path, dtype="float32")
    return time.perf_counter() - start


def ours(frame: pd.DataFrame, workers: int) -> float:
    cache = Path(tempfile.mkdtemp(prefix="asrfair-bench-"))
    try:
        start = time.perf_counter()
        prepared = prepare_audio(frame, AudioSettings(workers=workers), cache, progress=False)
        elapsed = time.perf_counter() - start
        assert prepared.decoded == len(frame) and not prepared.failed
        return elapsed
    finally:
        shutil.rmtree(cache)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="asrfair-clips-"))
    try:
        sets = {
            "mixed 1-12 s": make_clips(root / "mixed", rng.uniform(1, 12, args.clips), 1),
            "5 s": make_clips(root / "five", np.full(args.clips, 5.0), 2),
        }
        cores = os.cpu_count() or 1
        print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
        print()
        print(
            "| clips | notebook, 1 core | asrfair, 1 core | ratio | asrfair, all cores "
            "| decode alone, 1 core | resampler alone: scipy vs soxr |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, frame in sets.items():
            n = len(frame)
            nb = notebook_path(frame)
            one = ours(frame, 1)
            many = ours(frame, cores)
            dec = decode_only(frame)
            scipy_s, soxr_s = resampling_only(frame)
            print(
                f"| {n} x {name} | {n / nb:,.0f} clips/s | {n / one:,.0f} clips/s | "
                f"{nb / one:,.1f}x | {n / many:,.0f} clips/s ({cores} cores) | "
                f"{n / dec:,.0f} clips/s | {scipy_s / soxr_s:,.0f}x |"
            )
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
