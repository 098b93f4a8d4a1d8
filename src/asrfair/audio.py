"""The audio stage: decode, downmix, resample to 16 kHz, filter by duration, store.

soundfile decodes MP3/FLAC/OGG/WAV without FFmpeg and soxr resamples far faster
and better than ``scipy.signal.resample``. Decoded clips go to the packed int16 store of
``asrfair.store``, one per corpus and sample rate, so a second preparation decodes nothing and
checks the manifest against one stat per source. Each clip's CRC is checked when it is loaded:
damaged bytes are decoded again from the source, with a note, instead of being trusted.
An old one-file-per-clip cache (format 2) is converted on the first preparation.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from filelock import FileLock

from asrfair import files, store
from asrfair.console import progress_bar, stderr
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
    """A format-2 entry's name: file identity (resolved path, size, mtime) plus settings. Only
    the migration reads it, to convert an old cache instead of decoding again."""
    stat = path.stat()
    ident = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
    return hashlib.sha1(ident.encode("utf-8")).hexdigest()


# A format-2 entry (one file per clip, replaced by the packed store of ``asrfair.store``): this
# header (magic, sample count, CRC-32 of the samples, the first 12 characters of its cache key),
# then the samples as little-endian float32. Kept only to migrate an existing cache.
MAGIC = b"ASRFAIR\x02"
HEADER = struct.Struct("<8sQI12s")
LEGACY_SAMPLES = np.dtype("<f4")


def legacy_path(cache_dir: Path, source: Path, sample_rate: int) -> Path:
    """Where format 2 kept ``source``'s clip (raises OSError when the source is gone)."""
    key = cache_key(source, sample_rate)
    return cache_dir / key[:2] / f"{key}.f32"


def _legacy_tag(path: Path) -> bytes:
    return path.stem[:12].encode("ascii", "replace").ljust(12, b"_")


def write_legacy_clip(path: Path, wave: np.ndarray) -> None:
    """A format-2 entry, as asrfair wrote them before the store: kept so that the migration is
    tested and benchmarked against real old entries, never called by a preparation."""
    data = np.ascontiguousarray(wave, dtype=LEGACY_SAMPLES)
    header = HEADER.pack(MAGIC, len(data), zlib.crc32(data.data), _legacy_tag(path))
    with files.replacing(path) as tmp:
        tmp.write_bytes(header + data.tobytes())


def legacy_clip(path: Path) -> np.ndarray | None:
    """A format-2 entry's samples when its header, size, key tag and CRC all hold, else None:
    a damaged old entry is decoded from its source like any missing clip."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < HEADER.size:
        return None
    magic, n_samples, crc, tag = HEADER.unpack_from(raw)
    body = raw[HEADER.size :]
    sound = magic == MAGIC and tag == _legacy_tag(path) and len(body) == n_samples * 4
    return np.frombuffer(body, dtype=LEGACY_SAMPLES) if sound and zlib.crc32(body) == crc else None


def write_clip(path: Path, wave: np.ndarray) -> str:
    """Store one clip on its own as a one-clip shard (tests and benchmarks build model inputs
    this way) and return the string ``load_clip`` reads; it has no source to decode again."""
    samples = store.quantise(wave)
    data = samples.tobytes()
    with files.replacing(path) as tmp:
        tmp.write_bytes(data)
    entry = store.Entry(path.name, 0, len(samples), zlib.crc32(data), len(data), 0)
    return store.locator(path.parent, entry, "", TARGET_RATE)


def load_clip(cache: str) -> np.ndarray:
    """A prepared clip as float32, its CRC checked on every load. Damaged bytes are not trusted:
    the clip is decoded again from its source, with a note, and the store is told, so that the
    next preparation rewrites it."""
    where = store.parse(cache)
    samples, why = store.read(where)
    if not why:
        return store.dequantise(samples)
    if not where.source:
        raise AsrfairError(
            f"{where.shard}: the clip at byte {where.offset:,} {why}; write it again"
        )
    note = f"note: the stored clip of {where.source} {why}; decoded it again"
    stderr().print(note, soft_wrap=True, markup=False, highlight=False)
    store.mark_damaged(where)
    # Quantised as the store would have it: a damaged entry never changes what a model hears.
    return store.dequantise(store.quantise(decode(where.source, where.sample_rate)))


@dataclass(frozen=True)
class ClipResult:
    id: str
    cache: str  # the clip's locator in the store (see ``load_clip``), "" on failure
    n_samples: int
    decoded: bool  # False when served from the store
    error: str  # "" on success
    note: str = ""  # a damaged store entry that was replaced


@dataclass(frozen=True)
class Decoded:
    """What a worker sends back for one source: int16 samples (half the bytes of float32 through
    the pipe), or why it failed; ``converted`` when they came from a format-2 entry."""

    source: str
    samples: np.ndarray | None
    error: str = ""
    converted: bool = False


def _decode_one(item: tuple[str, int, str]) -> Decoded:
    source, sample_rate, legacy_dir = item
    path = Path(source)
    try:
        old = legacy_clip(legacy_path(Path(legacy_dir), path, sample_rate))
    except OSError:
        return Decoded(source, None, f"missing file {source}")
    if old is not None:
        return Decoded(source, store.quantise(old), converted=True)
    try:
        return Decoded(source, store.quantise(decode(path, sample_rate)))
    except Exception as exc:  # a corrupt clip is skipped and listed, never fatal on its own
        return Decoded(source, None, f"cannot decode {source}: {exc}")


def quiet_worker() -> None:
    """libsndfile's mpg123 prints notes and warnings ("Note: Illegal Audio-MPEG-Header...")
    straight to file descriptor 2, past Python, over the progress bar. Decoding runs in worker
    processes whose descriptor 2 goes nowhere; a clip that fails is still listed with its
    reason through its ClipResult."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _run(items: list[tuple[str, int, str]], workers: int) -> Iterator[Decoded]:
    if not items:
        return
    workers = max(1, min(workers, -(-len(items) // 16)))
    with ProcessPoolExecutor(max_workers=workers, initializer=quiet_worker) as pool:
        yield from pool.map(_decode_one, items, chunksize=16 if workers > 1 else 1)


Identity = tuple[int, int] | None  # a source's (size, mtime_ns); None when it is not a file


def _identities(sources: Iterable[str]) -> dict[str, Identity]:
    """One stat per source, the whole of a warm run's file-system cost besides the manifest and
    one listing of the store: how a changed or missing source is found."""
    found: dict[str, Identity] = {}
    for source in sources:
        try:
            st = os.stat(source)
        except OSError:
            found[source] = None
            continue
        found[source] = (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None
    return found


@dataclass
class StoreState:
    """A store as a preparation finds it: the entries that serve their sources as they are now,
    and why each damaged entry cannot."""

    manifest: dict[str, store.Entry]
    fresh: dict[str, store.Entry]
    notes: dict[str, str]

    def todo(self, identities: dict[str, Identity]) -> list[str]:
        return [s for s, ident in identities.items() if ident is not None and s not in self.fresh]


def _check(folder: Path, identities: dict[str, Identity]) -> StoreState:
    manifest = store.read_manifest(folder)
    sizes = store.shard_sizes(folder)
    damaged = store.read_damaged(folder)
    state = StoreState(manifest, {}, {})
    for source, identity in identities.items():
        entry = manifest.get(source)
        if identity is None or entry is None:
            continue
        why = store.problem(entry, identity, sizes)
        if why is None and source in damaged:
            why = "changed since it was written (checksum mismatch when it was loaded)"
        if why is None:
            state.fresh[source] = entry
        elif why:
            state.notes[source] = f"store entry for {source}: {why}"
    return state


@dataclass
class Filled:
    """What a preparation added to the store."""

    errors: dict[str, str] = field(default_factory=dict)
    decoded: set[str] = field(default_factory=set)
    converted: int = 0


class _ShardWriter:
    """Buffers decoded clips into shards of ``store.SHARD_BYTES``, sorted by length, and
    checkpoints the manifest at most once a minute (rewriting it per shard would cost
    quadratic time at 1,000 hours); a killed run loses at most that minute of work."""

    def __init__(self, folder: Path, manifest: dict[str, store.Entry]) -> None:
        self.folder, self.manifest = folder, dict(manifest)
        self.pending: list[tuple[str, np.ndarray, tuple[int, int]]] = []
        self.pending_bytes = 0
        self.saved_at = time.monotonic()

    def add(self, source: str, samples: np.ndarray, identity: tuple[int, int]) -> None:
        self.pending.append((source, samples, identity))
        self.pending_bytes += samples.nbytes
        if self.pending_bytes >= store.SHARD_BYTES:
            self.flush(final=False)

    def flush(self, *, final: bool) -> None:
        if self.pending:
            written = store.write_shard(self.folder, self.pending)
            sources = sorted(self.pending, key=lambda c: len(c[1]))
            self.manifest.update(zip((c[0] for c in sources), written, strict=True))
            self.pending, self.pending_bytes = [], 0
        if final or time.monotonic() - self.saved_at > 60:
            store.write_manifest(self.folder, self.manifest)
            self.saved_at = time.monotonic()


def _fill(
    folder: Path,
    todo: list[str],
    state: StoreState,
    identities: dict[str, Identity],
    settings: AudioSettings,
    legacy_dir: Path,
    bar: Any,
) -> Filled:
    """Decode (or convert from format 2) every source in ``todo`` into new shards, then write
    the manifest and drop the shards it no longer names (a killed run's, or fully replaced)."""
    keep = {s: e for s, e in state.manifest.items() if s in identities}
    writer, filled = _ShardWriter(folder, keep), Filled()
    task = bar.add_task("audio", total=len(todo))
    items = [(s, settings.sample_rate, str(legacy_dir)) for s in todo]
    for result in _run(items, settings.n_workers()):
        identity = identities[result.source]
        if result.samples is None or identity is None:
            filled.errors[result.source] = result.error
        else:
            writer.add(result.source, result.samples, identity)
            filled.converted += result.converted
            if not result.converted:
                filled.decoded.add(result.source)
        bar.advance(task)
    writer.flush(final=True)
    store.forget_damaged(folder)
    store.drop_unnamed_shards(folder, writer.manifest)
    state.fresh = {s: writer.manifest[s] for s in identities if s in writer.manifest}
    return filled


def _store_clips(
    cache_dir: Path, identities: dict[str, Identity], settings: AudioSettings, progress: bool
) -> tuple[Path, StoreState, Filled]:
    """The warm path reads the manifest without a lock; only a store with work to do is locked,
    and checked again under the lock, so two processes on one corpus decode each clip once."""
    folder = store.folder(cache_dir, identities, settings.sample_rate)
    state = _check(folder, identities)
    if not state.todo(identities):
        return folder, state, Filled()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / "lock"), progress_bar("preparing audio", enabled=progress) as bar:
        state = _check(folder, identities)
        filled = _fill(folder, state.todo(identities), state, identities, settings, cache_dir, bar)
    return folder, state, filled


@dataclass
class PreparedAudio:
    """One row per kept utterance (id, cache, n_samples, seconds) plus what was left out."""

    table: pd.DataFrame
    failed: list[str] = field(default_factory=list)
    filtered: int = 0
    decoded: int = 0
    notes: list[str] = field(default_factory=list)

    def waveform(self, utt_id: str) -> np.ndarray:
        """The clip as float32, read from the store and checked (see ``load_clip``)."""
        return load_clip(self.table.loc[self.table["id"] == utt_id, "cache"].iloc[0])


def prepare_audio(
    corpus: pd.DataFrame,
    settings: AudioSettings = AudioSettings(),
    cache_dir: Path | None = None,
    *,
    progress: bool = True,
    skipped_file: Path | None = None,
) -> PreparedAudio:
    """Decode (or find in the store) every clip of ``corpus`` (columns ``id``, ``audio``).

    Clips that cannot be read are listed with their reasons in ``skipped_file`` (default:
    ``skipped_clips.tsv`` in the cache folder), so the notes can name the file, not one clip.
    """
    cache_dir = cache_dir or default_cache_dir()
    ids = [str(i) for i in corpus["id"]]
    sources = [os.path.abspath(str(a)) for a in corpus["audio"]]
    identities = _identities(sources)
    try:
        folder, state, filled = _store_clips(cache_dir, identities, settings, progress)
    except AsrfairError as exc:
        if "no space left" not in str(exc):
            raise
        raise files.out_of_space(cache_dir, "the clips stored before it are kept") from None
    results = [
        _result(i, s, folder, state, filled, settings.sample_rate)
        for i, s in zip(ids, sources, strict=True)
    ]
    prepared = _summarise(results, settings)
    if filled.converted:
        prepared.notes.append(
            f"converted {filled.converted:,} clip(s) from the old one-file-per-clip cache into "
            f"{folder}; the old entries (the two-letter folders of .f32 files in {cache_dir}) "
            "are no longer read and can be deleted"
        )
    listing = skipped_file or cache_dir / "skipped_clips.tsv"
    if prepared.failed:
        _write_skipped(results, listing, prepared)
    else:
        listing.unlink(missing_ok=True)  # an old listing would name clips that now read fine
    return prepared


def _result(
    utt_id: str, source: str, folder: Path, state: StoreState, filled: Filled, sample_rate: int
) -> ClipResult:
    entry = state.fresh.get(source)
    if entry is None:
        error = filled.errors.get(source) or f"missing file {source}"
        return ClipResult(utt_id, "", 0, False, error, state.notes.get(source, ""))
    cache = store.locator(folder, entry, source, sample_rate)
    decoded = source in filled.decoded
    return ClipResult(utt_id, cache, entry.n_samples, decoded, "", state.notes.get(source, ""))


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
