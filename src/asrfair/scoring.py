"""The score stage: align each reference with its hypothesis once, keep the counts.

Everything after this (rates, intervals, gaps, tests) is arithmetic on the
per-utterance S/D/I/N counts, so no statistic ever re-aligns text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein

from asrfair.corpus import speakers_unknown
from asrfair.text import collapse_spaces
from asrfair.transcripts import NOTES

WORD_COUNTS = ("w_sub", "w_del", "w_ins", "w_n")
CHAR_COUNTS = ("c_sub", "c_del", "c_ins", "c_n")
COUNT_COLUMNS = WORD_COUNTS + CHAR_COUNTS
RESERVED = ("id", "speaker", "ref", "hyp", *COUNT_COLUMNS)
# An audit's predictions carry each clip's length in seconds under this name, for metrics that
# take it as a covariate; transcripts given to `score` may have a column of that name too.
DURATION_COLUMN = "duration"


def edit_counts(ref: Sequence[str] | str, hyp: Sequence[str] | str) -> tuple[int, int, int, int]:
    """Substitutions, deletions, insertions and reference length of one minimum alignment.

    An empty reference yields its hypothesis as insertions and 0 reference tokens.
    """
    sub = dele = ins = 0
    for op in Levenshtein.editops(ref, hyp):
        if op.tag == "replace":
            sub += 1
        elif op.tag == "delete":
            dele += 1
        else:
            ins += 1
    return sub, dele, ins, len(ref)


def utterance_counts(ref: str, hyp: str) -> tuple[int, ...]:
    """Word then character counts; characters include the single spaces between words."""
    ref, hyp = collapse_spaces(ref), collapse_spaces(hyp)
    return edit_counts(ref.split(), hyp.split()) + edit_counts(ref, hyp)


@dataclass(frozen=True)
class ScoreTable:
    """One row per utterance: id, speaker, group columns, ref, hyp and the eight counts.

    ``speaker`` is absent when the input named no speakers; statistics then fall back to
    resampling utterances and say so.
    """

    frame: pd.DataFrame
    # Grouping specs, not columns: "gender*age" has no column of its own; read its labels with
    # asrfair.groups.group_labels (or MetricContext.labels) instead of frame[grouping].
    groupings: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what reading the rows left out, for the report's warnings

    @property
    def group_columns(self) -> tuple[str, ...]:
        """The old name of ``groupings``, kept for plugins written against 0.1."""
        return self.groupings

    @property
    def has_speakers(self) -> bool:
        return "speaker" in self.frame.columns

    @property
    def speakers_unknown(self) -> bool:
        """No speakers, or an audit corpus's stand-ins (asrfair.corpus.speakers_unknown)."""
        return speakers_unknown(self.frame)

    @property
    def word_errors(self) -> np.ndarray:
        errors: np.ndarray = self.frame[["w_sub", "w_del", "w_ins"]].to_numpy().sum(axis=1)
        return errors

    @property
    def char_errors(self) -> np.ndarray:
        errors: np.ndarray = self.frame[["c_sub", "c_del", "c_ins"]].to_numpy().sum(axis=1)
        return errors

    @property
    def blank_speakers(self) -> np.ndarray:
        """Rows whose speaker id is missing or blank (all rows when there is no column)."""
        if not self.has_speakers:
            return np.ones(len(self.frame), dtype=bool)
        speaker = self.frame["speaker"]
        blank: np.ndarray = (speaker.isna() | speaker.astype(str).str.strip().eq("")).to_numpy()
        return blank

    def units(self) -> np.ndarray:
        """The resampling unit of each row: its speaker, or the utterance itself.

        A blank speaker id is missing, not one speaker called "": such a row is its own
        unit (as without a speaker column), so blanks are never pooled across groups.
        """
        ids = "utterance:" + self.frame["id"].astype(str)
        if not self.has_speakers:
            return ids.to_numpy()
        speakers = self.frame["speaker"].astype(str).str.strip()
        return speakers.where(~self.blank_speakers, ids).to_numpy()


def score(
    transcripts: pd.DataFrame,
    normalizer: Callable[[str], str],
    *,
    groupings: Sequence[str] = (),
) -> ScoreTable:
    """Normalise ``ref``/``hyp`` alike, align each pair once, and return the ScoreTable."""
    frame = transcripts.copy()
    frame["ref"] = [normalizer(str(text)) for text in frame["ref"]]
    frame["hyp"] = [normalizer(str(text)) for text in frame["hyp"]]
    counts = np.array(
        [utterance_counts(r, h) for r, h in zip(frame["ref"], frame["hyp"], strict=True)],
        dtype=np.int64,
    ).reshape(len(frame), len(COUNT_COLUMNS))
    for i, name in enumerate(COUNT_COLUMNS):
        frame[name] = counts[:, i]
    notes = tuple(transcripts.attrs.get(NOTES, ()))
    return ScoreTable(frame.reset_index(drop=True), tuple(groupings), notes)
