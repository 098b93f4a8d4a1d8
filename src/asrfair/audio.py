"""The audio stage: decode, downmix, resample to 16 kHz, filter by duration, cache.

soundfile decodes MP3/FLAC/OGG/WAV without FFmpeg and soxr resamples far faster
and better than ``scipy.signal.resample``. Each decoded clip is cached as a
float32 ``.npy`` keyed by the file's identity and the settings, so a second
preparation decodes nothing, and waveforms are read back memory-mapped, so a
corpus never sits in memory as a list of arrays.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from asrfair.console import progress_bar
from asrfair.errors import AsrfairError

TARGET_RATE = 16_000
CACHE_VERSION = "1"


@dataclass(frozen=True)
class AudioSettings:
    """What a prepared clip depends on; part of the cache key (the duration filter is not)."""

    sample_rate: int = TARGET_RATE
    min_seconds: float = 0.0
    max_seconds: float | None = None
    workers: int = 0  # 0: every core

    def n_workers(self) -> int:
        return self.workers if self.workers > 0 else os.cpu_count() or 1


def default_cache_dir() -> Path:
    base = os.environ.get("ASRFAIR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "asrfair"
    )
    return Path(base) / "audio"


def decode(path: str | Path, sample_rate: int = TARGET_RATE) -> np.ndarray:
    """Mono float32 at ``sample_rate``: channels are averaged, then soxr resamples."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def cache_key(path: Path, sample_rate: int) -> str:
    """File identity (resolved path, size, mtime) plus settings: a changed file is re-decoded."""
    stat = path.stat()
    ident = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
    return hashlib.sha1(ident.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ClipResult:
    id: str
    cache: str  # path of the cached .npy, "" on failure
    n_samples: int
    decoded: bool  # False when served from the cache
    error: str  # "" on success


def _prepare_one(item: tuple[str, str, str, int]) -> ClipResult:
    utt_id, audio, cache_dir, sample_rate = item
    path = Path(audio)
    if not path.is_file():
        return ClipResult(utt_id, "", 0, False, f"missing file {audio}")
    try:
        key = cache_key(path, sample_rate)
        target = Path(cache_dir) / key[:2] / f"{key}.npy"
        if target.is_file():
            n = int(np.load(target, mmap_mode="r").shape[0])
            return ClipResult(utt_id, str(target), n, False, "")
        wave = decode(path, sample_rate)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, wave)
        tmp.replace(target)  # atomic: an interrupted run leaves no half-written clip
        return ClipResult(utt_id, str(target), int(wave.shape[0]), True, "")
    except Exception as exc:  # a corrupt clip is skipped and listed, never fatal on its own
        return ClipResult(utt_id, "", 0, False, f"cannot decode {audio}: {exc}")


def _run(items: list[tuple[str, str, str, int]], workers: int) -> Iterator[ClipResult]:
    if workers <= 1 or len(items) < 32:
        yield from map(_prepare_one, items)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_prepare_one, items, chunksize=16)


@dataclass
class PreparedAudio:
    """One row per kept utterance (id, cache, n_samples, seconds) plus what was left out."""

    table: pd.DataFrame
    failed: list[str] = field(default_factory=list)
    filtered: int = 0
    decoded: int = 0
    notes: list[str] = field(default_factory=list)

    def waveform(self, utt_id: str) -> np.ndarray:
        """The clip, memory-mapped from the cache."""
        path = self.table.loc[self.table["id"] == utt_id, "cache"].iloc[0]
        wave: np.ndarray = np.load(path, mmap_mode="r")
        return wave


def prepare_audio(
    corpus: pd.DataFrame,
    settings: AudioSettings = AudioSettings(),
    cache_dir: Path | None = None,
    *,
    progress: bool = True,
) -> PreparedAudio:
    """Decode (or find cached) every clip of ``corpus`` (columns ``id``, ``audio``)."""
    cache_dir = cache_dir or default_cache_dir()
    items = [
        (str(i), str(a), str(cache_dir), settings.sample_rate)
        for i, a in zip(corpus["id"], corpus["audio"], strict=True)
    ]
    results: list[ClipResult] = []
    with progress_bar("preparing audio", enabled=progress) as bar:
        task = bar.add_task("audio", total=len(items))
        for result in _run(items, settings.n_workers()):
            results.append(result)
            bar.advance(task)
    return _summarise(results, settings)


def _summarise(results: Iterable[ClipResult], settings: AudioSettings) -> PreparedAudio:
    rows = list(results)
    failed = [r.error for r in rows if r.error]
    ok = [r for r in rows if not r.error]
    if rows and not ok:
        raise AsrfairError(
            f"every one of {len(rows):,} clips failed to load; first: {failed[0]}. "
            "Check the dataset's audio paths"
        )
    table = pd.DataFrame(
        {
            "id": [r.id for r in ok],
            "cache": [r.cache for r in ok],
            "n_samples": np.array([r.n_samples for r in ok], dtype=np.int64),
        }
    )
    table["seconds"] = table["n_samples"] / settings.sample_rate
    keep = table["seconds"] >= settings.min_seconds
    if settings.max_seconds is not None:
        keep &= table["seconds"] <= settings.max_seconds
    prepared = PreparedAudio(
        table.loc[keep].reset_index(drop=True),
        failed=failed,
        filtered=int((~keep).sum()),
        decoded=sum(r.decoded for r in ok),
    )
    if failed:
        prepared.notes.append(
            f"skipped {len(failed):,} clip(s) that could not be read; first: {failed[0]}"
        )
    if prepared.filtered:
        prepared.notes.append(
            f"dropped {prepared.filtered:,} clip(s) outside {settings.min_seconds:g}-"
            f"{settings.max_seconds if settings.max_seconds is not None else 'inf'} s"
        )
    return prepared
