"""Speaker-disjoint, seeded train/test splits that stay fixed across runs.

The notebook split utterances at random, so the same voices sat in train and
test: that flatters the model and hides bias. Here whole speakers go to one
side, each stratum of the group columns gets test speakers when it has at
least two, and the split depends only on the data, the columns and the seed,
never on the training subset chosen afterwards.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asrfair import files
from asrfair.errors import AsrfairError
from asrfair.groups import all_columns, group_labels, intersect


@dataclass
class Split:
    """``side`` per utterance id: ``train``, ``test`` (or ``dev`` with the official split)."""

    side: pd.Series  # index: utterance id
    method: str
    notes: list[str] = field(default_factory=list)

    def ids(self, side: str) -> list[str]:
        return sorted(self.side.index[self.side == side])


def _speaker_strata(frame: pd.DataFrame, stratify: Sequence[str]) -> pd.Series:
    """Each speaker's stratum: the most frequent value of the joined group columns."""
    if not stratify:
        return pd.Series("all", index=sorted(frame["speaker"].unique()))
    labels = group_labels(frame, intersect(stratify)).fillna("(empty)")
    per_speaker = (
        pd.DataFrame({"speaker": frame["speaker"], "label": labels})
        .groupby(["speaker", "label"])
        .size()
        .reset_index(name="n")
        .sort_values(["speaker", "n", "label"], ascending=[True, False, True])
        .drop_duplicates("speaker")
    )
    return per_speaker.set_index("speaker")["label"].sort_index()


def speaker_split(
    frame: pd.DataFrame,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: Sequence[str] = (),
) -> Split:
    """Move whole speakers to test until each stratum has ``test_fraction`` of its utterances."""
    check_split("speaker", test_fraction)
    counts = frame.groupby("speaker").size()
    strata = _speaker_strata(frame, stratify)
    test_speakers: set[str] = set()
    notes: list[str] = []
    for stratum in sorted(strata.unique()):
        speakers = np.array(sorted(strata.index[strata == stratum]))
        rng = np.random.default_rng([seed, zlib.crc32(str(stratum).encode("utf-8"))])
        order = speakers[rng.permutation(len(speakers))]
        if len(order) < 2:
            notes.append(f"{stratum}: only {len(order)} speaker, so no test speakers for it")
            continue
        target = test_fraction * counts[order].sum()
        taken = 0
        for speaker in order[:-1]:  # always leave at least one speaker to train on
            if taken >= target:
                break
            test_speakers.add(str(speaker))
            taken += int(counts[speaker])
    side = pd.Series(
        np.where(frame["speaker"].astype(str).isin(test_speakers), "test", "train"),
        index=frame["id"].values,
    )
    method = f"speaker-disjoint, test fraction {test_fraction:g}, seed {seed}"
    if stratify:
        method += f", stratified by {intersect(all_columns(stratify))}"
    return Split(side, method, notes)


def official_split(frame: pd.DataFrame) -> Split:
    """The release's own train/dev/test; rows in no official split are left out."""
    sides = frame["split"].where(frame["split"].isin(["train", "dev", "test"]), "")
    if not (sides == "test").any():
        raise AsrfairError("--split official: the dataset has no official test rows")
    kept = sides != ""
    split = Split(pd.Series(sides[kept].values, index=frame["id"][kept].values), "official")
    if (~kept).any():
        split.notes.append(f"left out {int((~kept).sum()):,} rows outside train/dev/test")
    return split


SPLITS = ("speaker", "official")


def check_split(how: str, test_fraction: float) -> None:
    """The split options, checked on their own: an audit checks them before it writes."""
    if how not in SPLITS:
        raise AsrfairError(f"--split {how!r}: choose 'speaker' (default) or 'official'")
    if not 0.0 < test_fraction < 1.0:
        raise AsrfairError(f"--test-fraction {test_fraction}: choose a value between 0 and 1")


def make_split(
    frame: pd.DataFrame,
    how: str = "speaker",
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: Sequence[str] = (),
) -> Split:
    check_split(how, test_fraction)
    if how == "official":
        split = official_split(frame)
    else:
        split = speaker_split(frame, test_fraction=test_fraction, seed=seed, stratify=stratify)
        if not split.ids("test"):
            by = f" by {intersect(all_columns(stratify))}" if stratify else ""
            raise AsrfairError(
                f"the speaker split left no test speakers: every stratum{by} has a single "
                "speaker; group by columns that many speakers share (not speaker ids)"
            )
    split.notes += _missing_test_groups(frame, split, stratify)
    return split


def _missing_test_groups(frame: pd.DataFrame, split: Split, groupings: Sequence[str]) -> list[str]:
    notes = []
    test_ids = set(split.ids("test"))
    in_test = frame["id"].isin(test_ids)
    for grouping in groupings:
        labels = group_labels(frame, grouping)
        for value in sorted(labels.dropna().unique()):
            if not (in_test & (labels == value)).any():
                notes.append(f"{grouping}={value} has no test speakers")
    return notes


def write_split(split: Split, folder: Path) -> None:
    """One id per line per side, so a run's test set can be checked and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    for side in sorted(split.side.unique()):
        files.write_text(folder / f"{side}.txt", "\n".join(split.ids(side)) + "\n")
