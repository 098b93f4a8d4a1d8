"""The packed audio store: int16 clips in length-sorted shard files, found through one manifest.

Why not one file per clip: at 1,000 hours that is 720,000 files, and a warm run that opens each
one spends minutes on the file system before any work starts. Here a warm run reads one
manifest and stats each *source* once (its size and mtime are the staleness test, as the old
cache key was); shards are stat-ed once each, never their clips. A clip's bytes are checked
(CRC-32 of its int16 samples) when it is loaded, not when a run starts.

int16 halves float32's size (115.2 MB per hour at 16 kHz) at a cost of half a quantisation
step, 1 / (2 * 32767) ~ 1.5e-5 of full scale, far below any recording's own noise floor.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrfair import files

FORMAT = 3
SAMPLE = np.dtype("<i2")
SCALE = 32767.0
SHARD_BYTES = 128 << 20  # a shard is written whole, so this is also the writer's buffer
MANIFEST = "manifest.json"
DAMAGED = "damaged.txt"  # sources whose bytes failed their CRC on load, appended by readers


@dataclass(frozen=True)
class Entry:
    """Where one source's samples are, and the source identity they were decoded from."""

    shard: str  # file name inside the store folder
    offset: int  # bytes
    n_samples: int
    crc: int
    size: int
    mtime_ns: int


def quantise(wave: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] to int16, rounded (error <= half a step); overshoot is clipped."""
    scaled = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0) * np.float32(SCALE)
    quantised: np.ndarray = np.rint(scaled).astype(SAMPLE)
    return quantised


def dequantise(samples: np.ndarray) -> np.ndarray:
    """int16 back to float32 in [-1, 1], the array every model stage reads."""
    wave: np.ndarray = np.multiply(samples, np.float32(1.0 / SCALE), dtype=np.float32)
    return wave  # one pass: an astype then a multiply would walk the clip twice


def folder(cache_dir: Path, sources: Iterable[str], sample_rate: int) -> Path:
    """One store per (set of sources, sample rate): every audit and study run on the same data
    shares it, whatever its duration filter (applied after the store), and a different corpus
    never rewrites the manifest of another."""
    ident = "\n".join([f"{FORMAT}|{sample_rate}", *sorted(set(sources))])
    return cache_dir / "store" / hashlib.sha1(ident.encode("utf-8")).hexdigest()[:16]


def read_manifest(store: Path) -> dict[str, Entry]:
    """The entries by source path; an absent or unreadable manifest is an empty store (rebuilt)."""
    try:
        data = json.loads((store / MANIFEST).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return {}
        shards = data["shards"]
        columns = zip(
            data["source"], data["shard"], data["offset"], data["n_samples"],
            data["crc"], data["size"], data["mtime_ns"], strict=True,
        )  # fmt: skip
        return {s: Entry(shards[i], o, n, c, z, m) for s, i, o, n, c, z, m in columns}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def write_manifest(store: Path, entries: dict[str, Entry]) -> None:
    """Columnar JSON (one list per field), written all or nothing: readers never take a lock."""
    shards = sorted({e.shard for e in entries.values()})
    index = {name: i for i, name in enumerate(shards)}
    values = list(entries.values())
    data = {
        "format": FORMAT,
        "shards": shards,
        "source": list(entries),
        "shard": [index[e.shard] for e in values],
        **{
            name: [getattr(e, name) for e in values]
            for name in ("offset", "n_samples", "crc", "size", "mtime_ns")
        },
    }
    with files.replacing(store / MANIFEST) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def write_shard(store: Path, clips: list[tuple[str, np.ndarray, tuple[int, int]]]) -> list[Entry]:
    """Write ``(source, int16 samples, (size, mtime_ns))`` clips, shortest first, as one new
    shard (a fresh random name, so no writer ever replaces a shard that a reader may hold)."""
    name = f"shard-{secrets.token_hex(8)}.i16"
    entries: list[tuple[str, Entry]] = []
    offset = 0
    with files.replacing(store / name) as tmp, tmp.open("wb") as handle:
        for source, samples, (size, mtime_ns) in sorted(clips, key=lambda c: len(c[1])):
            data = samples.tobytes()
            handle.write(data)
            entries.append(
                (source, Entry(name, offset, len(samples), zlib.crc32(data), size, mtime_ns))
            )
            offset += len(data)
    return [e for _, e in entries]


def locator(store: Path, entry: Entry, source: str, sample_rate: int) -> str:
    """The string a prepared table holds per clip (its ``cache`` column): all ``load`` needs,
    with no manifest lookup, including the source to decode again when the bytes are damaged."""
    shard = json.dumps(str(store / entry.shard))
    return (
        f"[{shard},{entry.offset},{entry.n_samples},{entry.crc},{json.dumps(source)},{sample_rate}]"
    )


@dataclass(frozen=True)
class Located:
    shard: Path
    offset: int
    n_samples: int
    crc: int
    source: str  # "" for a clip written on its own (tests, benchmarks): nothing to decode again
    sample_rate: int


def parse(text: str) -> Located:
    shard, offset, n_samples, crc, source, rate = json.loads(text)
    return Located(Path(shard), int(offset), int(n_samples), int(crc), str(source), int(rate))


def read(where: Located) -> tuple[np.ndarray, str]:
    """The clip's int16 samples, or why they cannot be trusted (a missing or short shard, or
    bytes that fail their CRC)."""
    want = where.n_samples * SAMPLE.itemsize
    try:
        with where.shard.open("rb") as handle:
            handle.seek(where.offset)
            data = handle.read(want)
    except OSError as exc:
        return np.zeros(0, SAMPLE), f"cannot be read ({exc.strerror or exc})"
    if len(data) < want:
        return np.zeros(0, SAMPLE), f"{len(data):,} of {want:,} bytes are left (truncated)"
    if zlib.crc32(data) != where.crc:
        return np.zeros(0, SAMPLE), "changed since it was written (checksum mismatch)"
    return np.frombuffer(data, dtype=SAMPLE), ""


def mark_damaged(where: Located) -> None:
    """Remember a source whose bytes failed on load, so the next preparation decodes it again.
    One short O_APPEND write per line: concurrent readers never interleave, no lock needed."""
    line = (json.dumps(where.source) + "\n").encode("utf-8")
    try:
        fd = os.open(where.shard.parent / DAMAGED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass  # a read-only store: the clip is still decoded again on every load


def read_damaged(store: Path) -> set[str]:
    try:
        lines = (store / DAMAGED).read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {json.loads(line) for line in lines if line.strip()}


def shard_sizes(store: Path) -> dict[str, int]:
    """Every shard's size from one directory listing: how a warm check sees a truncated or
    deleted shard without reading it or stat-ing its clips."""
    try:
        with os.scandir(store) as listing:
            return {e.name: e.stat().st_size for e in listing if e.name.endswith(".i16")}
    except FileNotFoundError:
        return {}


def problem(entry: Entry, identity: tuple[int, int], sizes: dict[str, int]) -> str | None:
    """None when the entry serves the source as it is now; "" when the source changed (decoded
    again silently, as a new file would be); otherwise why the store itself is damaged."""
    if (entry.size, entry.mtime_ns) != identity:
        return ""
    have = sizes.get(entry.shard)
    if have is None:
        return f"its shard {entry.shard} is missing"
    end = entry.offset + entry.n_samples * SAMPLE.itemsize
    if have < end:
        return f"its shard {entry.shard} holds {have:,} bytes, short of {end:,} (truncated)"
    return None


def forget_damaged(store: Path) -> None:
    """After a rewrite under the lock: the sources listed as damaged have new entries."""
    (store / DAMAGED).unlink(missing_ok=True)


def drop_unnamed_shards(store: Path, entries: dict[str, Entry]) -> None:
    """Under the lock, delete shards the manifest no longer names: a killed writer's, or ones
    whose every clip was replaced. A reader still holding an old manifest finds the shard
    gone and decodes that clip again, with a note, rather than failing."""
    named = {e.shard for e in entries.values()}
    for name in shard_sizes(store):
        if name not in named:
            (store / name).unlink(missing_ok=True)
