"""Grouping specs: ``gender`` names one column, ``gender*age`` the intersection of two.

Every stage that reads a spec (the data stage, the split, scoring, metrics, the run folder,
the CLI and the Python API) goes through these functions, so the syntax lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from asrfair.errors import AsrfairError

SEPARATOR = "*"
# Columns that hold what is scored, not who spoke: grouping by them is a mistake.
RESERVED = frozenset({"ref", "hyp", "sentence", "id", "audio"})


def parse_groupings(groups: str | Sequence[str]) -> list[str]:
    """``"gender,age*gender"`` as the CLI writes it, or ``["gender", "age*gender"]``: each spec
    once, in order, with spaces around names removed. An empty part is a typo, not a column."""
    if isinstance(groups, str):
        items = groups.split(",")
    elif isinstance(groups, list | tuple) and all(isinstance(g, str) for g in groups):
        items = [part for g in groups for part in g.split(",")]  # ["gender,age"] too
    else:
        raise AsrfairError(
            f"--groups: give column names as text ('gender,accents') or a list of them, "
            f"not {type(groups).__name__}"
        )
    specs: dict[frozenset[str], str] = {}
    for item in items:
        if item.strip():
            parts = _parts(item)
            specs.setdefault(frozenset(parts), SEPARATOR.join(parts))  # age*gender = gender*age
    return list(specs.values())


def _parts(spec: str) -> list[str]:
    """The columns of one spec, each named once and none of asrfair's own."""
    parts = [p.strip() for p in spec.split(SEPARATOR)]
    if not all(parts):
        raise AsrfairError(
            f"--groups: {spec.strip()!r} has an empty column name; write COLUMN or "
            f"COLUMN{SEPARATOR}COLUMN, e.g. gender{SEPARATOR}age"
        )
    if len(set(parts)) < len(parts):
        raise AsrfairError(f"--groups: {spec.strip()!r} names a column twice; name it once")
    reserved = [p for p in parts if p in RESERVED]
    if reserved:
        raise AsrfairError(
            f"--groups: {reserved[0]!r} is a transcript, not a group; group by a column that "
            "describes speakers (gender, age, accents...)"
        )
    return parts


def columns_of(grouping: str) -> list[str]:
    """The columns one spec reads (``gender*age`` reads gender and age)."""
    return grouping.split(SEPARATOR)


def all_columns(groupings: Iterable[str]) -> list[str]:
    """The columns behind several specs, each once, in order of first use."""
    return list(dict.fromkeys(part for g in groupings for part in columns_of(g)))


def intersect(groupings: Sequence[str]) -> str:
    """One spec crossing several (for a split stratified by gender and age together)."""
    return SEPARATOR.join(groupings)


def group_labels(frame: pd.DataFrame, grouping: str) -> pd.Series:
    """Labels for a grouping; ``a*b`` is intersectional (``female*fr-be``). Empty -> NA."""
    labels: pd.Series | None = None
    for part in columns_of(grouping):
        values = frame[part].astype("string").str.strip()
        values = values.where(values != "")
        labels = values if labels is None else labels + SEPARATOR + values
    if labels is None:
        raise AsrfairError(f"--groups: {grouping!r} names no column")
    return labels
