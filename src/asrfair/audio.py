"""The audio stage: decode, downmix, resample to 16 kHz, filter by duration, cache.

soundfile decodes MP3/FLAC/OGG/WAV without FFmpeg and soxr resamples far faster
and better than ``scipy.signal.resample``. Each decoded clip is cached as a
float32 entry keyed by the file's identity and the settings, so a second
preparation decodes nothing, and waveforms are read back memory-mapped, so a
corpus never sits in memory as a list of arrays. Each entry carries its sample
count and a CRC-32, checked whenever a preparation finds it: a truncated or
overwritten entry is decoded again, with a note, instead of being trusted.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from asrfair import files
from asrfair.console import progress_bar
from asrfair.errors import AsrfairError

TARGET_RATE = 16_000
CACHE_VERSION = "2"


@dataclass(frozen=True)
class AudioSettings:
    """What a prepared clip depends on; part of the cache key (the duration filter is not)."""

    sample_rate: int = TARGET_RATE
    min_seconds: float = 0.0
    max_seconds: float | None = None
    workers: int = 0  # 0: every core

    def n_workers(self) -> int:
        return self.workers if self.workers > 0 else os.cpu_count() or 1


_chosen_cache_dir: Path | None = None


def use_cache_dir(path: Path | None) -> None:
    """The cache for the rest of this process (``--cache-dir``): decoded clips, and the audio
    bytes that an HF dataset embeds, which are written out before any decoding."""
    global _chosen_cache_dir
    _chosen_cache_dir = path


def default_cache_dir() -> Path:
    if _chosen_cache_dir is not None:
        return _chosen_cache_dir
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


# A cache entry: this header (magic, sample count, CRC-32 of the samples, the first 12 characters
# of its cache key), then the samples as little-endian float32. The count catches a truncated or
# empty file from its size alone; the CRC catches bytes overwritten in place; the key catches an
# entry copied or renamed over another's.
MAGIC = b"ASRFAIR\x02"
HEADER = struct.Struct("<8sQI12s")
SAMPLES = np.dtype("<f4")


def _key_tag(path: Path) -> bytes:
    return path.stem[:12].encode("ascii", "replace").ljust(12, b"_")


def write_clip(path: Path, wave: np.ndarray) -> None:
    """Store one clip, all or nothing (see ``files.replacing``)."""
    data = np.ascontiguousarray(wave, dtype=SAMPLES)
    with files.replacing(path) as tmp, tmp.open("wb") as handle:
        handle.write(HEADER.pack(MAGIC, data.shape[0], zlib.crc32(data.data), _key_tag(path)))
        handle.write(data.tobytes())


def _header(path: Path) -> tuple[int, int]:
    with path.open("rb") as handle:
        raw = handle.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise ValueError(f"{len(raw)} bytes, shorter than its header")
    magic, n_samples, crc, tag = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ValueError("not an asrfair cache entry")
    if tag != _key_tag(path):
        raise ValueError("holds another clip's entry (its key does not match its name)")
    return int(n_samples), int(crc)


def load_clip(path: str | Path) -> np.ndarray:
    """The samples of a cache entry, memory-mapped read-only (nothing is copied until used)."""
    n_samples, _ = _header(Path(path))
    wave: np.ndarray = np.memmap(
        path, dtype=SAMPLES, mode="r", offset=HEADER.size, shape=(n_samples,)
    )
    return wave


def check_clip(path: Path) -> tuple[int, str]:
    """The entry's sample count, and why it cannot be trusted ("" when its size and checksum
    match its header): one read of the header serves both."""
    try:
        n_samples, crc = _header(path)
    except ValueError as exc:
        return 0, str(exc)
    expected = HEADER.size + n_samples * SAMPLES.itemsize
    size = path.stat().st_size
    if size != expected:
        return n_samples, f"{size:,} bytes where its header promises {expected:,} (truncated)"
    if n_samples and zlib.crc32(load_clip(path).data) != crc:
        return n_samples, "changed since it was written (checksum mismatch)"
    return n_samples, ""


@dataclass(frozen=True)
class ClipResult:
    id: str
    cache: str  # path of the cache entry, "" on failure
    n_samples: int
    decoded: bool  # False when served from the cache
    error: str  # "" on success
    note: str = ""  # a damaged cache entry that was replaced
    out_of_space: bool = False


def _prepare_one(item: tuple[str, str, str, int]) -> ClipResult:
    utt_id, audio, cache_dir, sample_rate = item
    path = Path(audio)
    if not path.is_file():
        return ClipResult(utt_id, "", 0, False, f"missing file {audio}")
    key = cache_key(path, sample_rate)
    target = Path(cache_dir) / key[:2] / f"{key}.f32"
    note = ""
    if target.is_file():
        n_samples, problem = check_clip(target)
        if not problem:
            return ClipResult(utt_id, str(target), n_samples, False, "")
        note = f"cache entry {target} for {audio}: {problem}"
    try:
        wave = decode(path, sample_rate)
    except Exception as exc:  # a corrupt clip is skipped and listed, never fatal on its own
        return ClipResult(utt_id, "", 0, False, f"cannot decode {audio}: {exc}", note)
    try:
        write_clip(target, wave)
    except AsrfairError:  # files.replacing turns a full disk into this
        return ClipResult(utt_id, "", 0, False, f"cannot write {target}", note, out_of_space=True)
    return ClipResult(utt_id, str(target), int(wave.shape[0]), True, "", note)


def quiet_worker() -> None:
    """libsndfile's mpg123 prints notes and warnings ("Note: Illegal Audio-MPEG-Header...")
    straight to file descriptor 2, past Python, over the progress bar. Decoding runs in worker
    processes whose descriptor 2 goes nowhere; a clip that fails is still listed with its
    reason through its ClipResult."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _run(items: list[tuple[str, str, str, int]], workers: int) -> Iterator[ClipResult]:
    if not items:
        return
    workers = max(1, min(workers, -(-len(items) // 16)))
    with ProcessPoolExecutor(max_workers=workers, initializer=quiet_worker) as pool:
        yield from pool.map(_prepare_one, items, chunksize=16 if workers > 1 else 1)


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
        return load_clip(self.table.loc[self.table["id"] == utt_id, "cache"].iloc[0])


def prepare_audio(
    corpus: pd.DataFrame,
    settings: AudioSettings = AudioSettings(),
    cache_dir: Path | None = None,
    *,
    progress: bool = True,
    skipped_file: Path | None = None,
) -> PreparedAudio:
    """Decode (or find cached) every clip of ``corpus`` (columns ``id``, ``audio``).

    Clips that cannot be read are listed with their reasons in ``skipped_file`` (default:
    ``skipped_clips.tsv`` in the cache folder), so the notes can name the file, not one clip.
    """
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
    full = [r for r in results if r.out_of_space]
    if full:
        raise files.out_of_space(
            cache_dir, f"{len(results) - len(full):,} of {len(results):,} clips are cached"
        )
    prepared = _summarise(results, settings)
    listing = skipped_file or cache_dir / "skipped_clips.tsv"
    if prepared.failed:
        _write_skipped(results, listing, prepared)
    else:
        listing.unlink(missing_ok=True)  # an old listing would name clips that now read fine
    return prepared


def _write_skipped(results: list[ClipResult], path: Path, prepared: PreparedAudio) -> None:
    rows = [(r.id, r.error) for r in results if r.error]
    text = "id\treason\n" + "".join(f"{i}\t{' '.join(reason.split())}\n" for i, reason in rows)
    files.write_text(path, text)
    prepared.notes.append(
        f"skipped {len(rows):,} clip(s) that could not be read, each listed with its reason "
        f"in {path}; first: {rows[0][1]}"
    )


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
    damaged = [r.note for r in rows if r.note]
    if damaged:
        prepared.notes.append(
            f"{len(damaged):,} cached clip(s) were damaged and were decoded again; "
            f"first: {damaged[0]}"
        )
    if prepared.filtered:
        prepared.notes.append(
            f"dropped {prepared.filtered:,} clip(s) outside {settings.min_seconds:g}-"
            f"{settings.max_seconds if settings.max_seconds is not None else 'inf'} s"
        )
    return prepared
