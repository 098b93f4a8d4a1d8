"""The packed audio store against the old one-file-per-clip cache, on a synthetic corpus.

    .venv/bin/python benchmarks/bench_store.py [--clips 100000] [--compare 5000] [--root DIR]

Writes ``--clips`` short 16 kHz WAV clips (0.2-0.8 s, so 100,000 stay near 1.6 GB), then:
- builds the store (cold ``prepare_audio``, every core) and reports its MB per audio hour
  (shards and manifest; goal <= 120);
- times a warm ``prepare_audio`` of every clip (goal < 5 s at 100,000): one manifest read,
  one stat per source, one listing of the store;
- on ``--compare`` clips, times loading through ``load_clip`` (read, CRC, int16 to float32)
  against the old format (one .f32 file per clip: header read, then float32 samples), and the
  old warm check, which read and checksummed every entry.
Run by hand; results go in benchmarks/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from asrfair import audio
from asrfair.audio import AudioSettings, load_clip, prepare_audio

RATE = 16_000


def make_clips(folder: Path, n: int) -> pd.DataFrame:
    """Noisy tones of 0.2-0.8 s as 16-bit WAV, 1,000 to a folder."""
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate(rng.uniform(0.2, 0.8, n)):
        path = folder / f"{i // 1000:03d}" / f"c{i:06d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            t = np.arange(int(seconds * RATE)) / RATE
            wave = 0.2 * np.sin(2 * np.pi * (150 + i % 200) * t) + 0.01 * rng.standard_normal(
                len(t)
            )
            sf.write(path, wave.astype(np.float32), RATE, subtype="PCM_16")
        paths.append(str(path))
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "audio": paths})


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def store_size(cache: Path) -> int:
    return sum(p.stat().st_size for p in (cache / "store").rglob("*") if p.is_file())


def old_load(path: Path) -> np.ndarray:
    """The old ``load_clip``: the 32-byte header, then the float32 samples (no CRC)."""
    n_samples = int.from_bytes(path.read_bytes()[8:16], "little")
    return np.array(np.memmap(path, dtype="<f4", mode="r", offset=32, shape=(n_samples,)))


def compare_loads(prepared: audio.PreparedAudio, frame: pd.DataFrame, root: Path, n: int) -> None:
    """Load throughput, new against old, on the same ``n`` clips (shuffled, as a sampler reads)."""
    rows = np.random.default_rng(1).permutation(len(prepared.table))[:n]
    caches = prepared.table["cache"].iloc[rows].tolist()
    sources = frame.set_index("id").loc[prepared.table["id"].iloc[rows], "audio"].tolist()
    old = [audio.legacy_path(root / "old", Path(s), RATE) for s in sources]
    for path, cache in zip(old, caches, strict=True):
        audio.write_legacy_clip(path, load_clip(cache))
    seconds = float(prepared.table["seconds"].iloc[rows].sum())
    os.sync()
    new_s = timed(lambda: [load_clip(c) for c in caches])
    old_s = timed(lambda: [old_load(p) for p in old])
    check_s = timed(lambda: [audio.legacy_clip(p) for p in old])
    print(f"load {n:,} clips ({seconds / 3600:.2f} h), page cache warm:")
    print(f"  store (int16, CRC on load):  {new_s:6.2f} s  {seconds / new_s:10,.0f} audio-s/s")
    print(f"  old per-clip float32 files:  {old_s:6.2f} s  {seconds / old_s:10,.0f} audio-s/s")
    print(f"  old warm check (read + CRC): {check_s:6.2f} s, {check_s / n * 1e6:.0f} us per clip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--compare", type=int, default=5_000)
    parser.add_argument("--root", type=Path, default=None, help="keep the clips here")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_store-"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, root {root}")
    made = time.perf_counter()
    frame = make_clips(root / "clips", args.clips)
    print(f"{args.clips:,} clips ready in {time.perf_counter() - made:.0f} s")
    cache = root / "cache"

    def prepare() -> audio.PreparedAudio:
        return prepare_audio(frame, AudioSettings(), cache, progress=False)

    cold = timed(prepare)
    warm_times = [timed(prepare) for _ in range(3)]
    prepared = prepare()
    hours = float(prepared.table["seconds"].sum()) / 3600
    size = store_size(cache)
    print(f"cold build: {cold:.1f} s for {hours:.2f} audio hours")
    print(f"store: {size / 1e6:.1f} MB, {size / 1e6 / hours:.1f} MB per audio hour (goal <= 120)")
    print(f"warm check of {args.clips:,} clips: " + ", ".join(f"{t:.2f} s" for t in warm_times))
    compare_loads(prepared, frame, root, min(args.compare, args.clips))


if __name__ == "__main__":
    main()
