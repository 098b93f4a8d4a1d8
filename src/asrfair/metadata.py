"""The metadata stage: a corpus table loaded, its sentences normalised, rows without a group
value dropped, clip durations read; and ``asrfair data inspect`` on top of it.

``corpus.py`` says what a corpus table is, ``default_plugins/datasets.py`` reads each format into
one, and this module prepares one for a run. ``data inspect`` gives the "dataset" table of a paper
(utterances, speakers, hours) and the first check that a grouping has enough speakers on the test
side to say anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from asrfair import __version__
from asrfair.audio import quiet_worker
from asrfair.corpus import (
    Corpus,
    DatasetLoader,
    drop_empty_groups,
    load_corpus,
    normalise_sentences,
    speakers_unknown,
)
from asrfair.groups import group_labels
from asrfair.registry import Registry
from asrfair.report import Report, speakers_method
from asrfair.split import Split, make_split


def prepare_metadata(
    spec: str,
    normalizer: Callable[[str], str],
    groupings: Sequence[str],
    columns: dict[str, str] | None = None,
    *,
    datasets: Registry[DatasetLoader],
) -> Corpus:
    """Load, normalise sentences, and drop rows without a value for a requested group."""
    corpus = normalise_sentences(load_corpus(spec, datasets, columns), normalizer)
    return drop_empty_groups(corpus, list(groupings))


def _seconds(path: str) -> float:
    try:
        return float(sf.info(path).duration)
    except Exception:  # missing or unreadable: counted by the caller, not fatal here
        return float("nan")


def clip_seconds(corpus: Corpus, workers: int = 8) -> np.ndarray:
    """Durations from CV's ``clip_durations.tsv`` when present, else from file headers."""
    frame = corpus.frame
    durations_tsv = Path(frame["audio"].iloc[0]).parent.parent / "clip_durations.tsv"
    if len(frame) and durations_tsv.is_file():
        try:
            table = pd.read_csv(durations_tsv, sep="\t", dtype={"clip": str})
            ms = dict(zip(table["clip"], pd.to_numeric(table.iloc[:, 1]), strict=True))
            found = np.array([ms.get(Path(a).name, np.nan) for a in frame["audio"]], dtype=float)
        except (ValueError, KeyError, IndexError, pd.errors.ParserError):
            found = np.array([np.nan])  # a damaged table: read the clips' own headers instead
        if not np.isnan(found).any():
            return found / 1000.0
    # Worker processes whose stderr is silenced: mpg123 warns on fd 2 while reading headers.
    processes = min(workers, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=processes, initializer=quiet_worker) as pool:
        return np.array(list(pool.map(_seconds, frame["audio"], chunksize=64)), dtype=float)


def size_summary(part: pd.DataFrame) -> dict[str, Any]:
    """Utterances, speakers and hours of some rows (``seconds`` may hold NaN for unread clips)."""
    return {
        "n_utterances": len(part),
        "n_speakers": int(part["speaker"].nunique()),
        "hours": round(float(np.nansum(part["seconds"])) / 3600.0, 4),
    }


def _summary_rows(frame: pd.DataFrame, labels: pd.Series | None) -> list[dict[str, Any]]:
    rows = []
    keys = ["side"] if labels is None else ["label", "side"]
    data = frame.assign(label=labels) if labels is not None else frame
    for key, part in data.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = {} if labels is None else {"group": str(key[0])}
        row["split"] = str(key[-1])
        rows.append(row | size_summary(part))
    return rows


def inspect_report(
    corpus: Corpus, split: Split, groupings: Sequence[str], seconds: np.ndarray
) -> Report:
    frame = corpus.frame.assign(seconds=seconds)
    frame = frame.loc[frame["id"].isin(split.side.index)].copy()
    frame["side"] = split.side.loc[frame["id"]].to_numpy()
    warnings = list(corpus.notes) + list(split.notes)
    unreadable = int(np.isnan(seconds).sum())
    if unreadable:
        warnings.append(f"{unreadable:,} clip(s) missing or unreadable: no duration counted")
    data: dict[str, Any] = {
        "dataset": corpus.name,
        "splits": _summary_rows(frame, None),
        "groups": {g: _summary_rows(frame, group_labels(frame, g)) for g in groupings},
        "method": {"split": split.method, **speakers_method(speakers_unknown(corpus.frame))},
        "warnings": warnings,
        "config": {"asrfair_version": __version__, "dataset": corpus.name, "groups": groupings},
    }
    return Report("inspect", data)


def inspect_dataset(
    spec: str,
    normalizer: Callable[[str], str],
    groupings: Sequence[str],
    *,
    how: str = "speaker",
    test_fraction: float = 0.2,
    seed: int = 0,
    columns: dict[str, str] | None = None,
    datasets: Registry[DatasetLoader],
) -> Report:
    corpus = prepare_metadata(spec, normalizer, groupings, columns, datasets=datasets)
    split = make_split(
        corpus.frame, how, test_fraction=test_fraction, seed=seed, stratify=list(groupings)
    )
    return inspect_report(corpus, split, groupings, clip_seconds(corpus))
